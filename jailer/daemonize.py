"""Double-fork daemonizing (reference §2.7, §2.10).

The first fork makes sure the process calling setsid() is not a process-group leader (setsid
would fail with EPERM); the second makes sure the daemon is not a session leader and can never
acquire a controlling terminal. Each parent exits 0 at once.
"""

from __future__ import annotations

import os

from jailer.errors import ErrorKind, JailerError, os_error_text


def open_dev_null() -> int:
    """Opened read-only before pivot_root, as the reference does (it is only dup2'ed)."""
    try:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise JailerError(ErrorKind.OPEN, path="/dev/null", error=os_error_text(error)) from None


def _continue_in_child() -> None:
    try:
        pid = os.fork()
    except OSError as error:
        raise JailerError(ErrorKind.DAEMONIZE, error=os_error_text(error)) from None
    if pid:
        os._exit(0)


def daemonize(dev_null: int) -> None:
    _continue_in_child()
    try:
        os.setsid()
    except OSError as error:
        raise JailerError(ErrorKind.SETSID, error=os_error_text(error)) from None
    _continue_in_child()
    for target in (0, 1, 2):
        try:
            os.dup2(dev_null, target)
        except OSError as error:
            raise JailerError(ErrorKind.DUP2, error=os_error_text(error)) from None
    os.close(dev_null)
