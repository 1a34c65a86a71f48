"""Process sanitising, the very first step (reference §2.1): close fds >= 3 and clear the env.

Done before argument parsing, so no inherited descriptor or variable can influence the jailer
or leak into the VMM (which is exec'd with an empty environment).
"""

from __future__ import annotations

import os

from jailer.errors import ErrorKind, JailerError, os_error_text

_UINT_MAX = (1 << 32) - 1


def sanitize_process() -> None:
    from jailer import libc

    try:
        libc.close_range(3, _UINT_MAX, libc.CLOSE_RANGE_UNSHARE)
    except OSError as error:
        raise JailerError(ErrorKind.SANITIZE, error=os_error_text(error)) from None
    os.environ.clear()
