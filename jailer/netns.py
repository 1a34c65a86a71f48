"""Join an existing network namespace by path (reference §2.4; symlinked paths allowed)."""

from __future__ import annotations

import os

from jailer.errors import ErrorKind, JailerError, os_error_text


def join_netns(path: str) -> None:
    from jailer import libc

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise JailerError(ErrorKind.FILE_OPEN, path=path, error=os_error_text(error)) from None
    try:
        libc.setns(fd, libc.CLONE_NEWNET)
    except OSError as error:
        raise JailerError(ErrorKind.SETNS, error=os_error_text(error)) from None
    finally:
        os.close(fd)
