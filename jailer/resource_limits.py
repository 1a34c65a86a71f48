"""rlimits set on the jailer itself so the exec'd VMM inherits them (reference §2.5).

RLIMIT_NOFILE is always set (default 2048); RLIMIT_FSIZE only when `fsize` is given.
"""

from __future__ import annotations

import resource

from jailer.errors import ErrorKind, JailerError

_RESOURCES = {
    "fsize": (resource.RLIMIT_FSIZE, "size of file"),
    "no-file": (resource.RLIMIT_NOFILE, "number of file descriptors"),
}


def install_limits(limits: dict[str, int]) -> None:
    for name in ("fsize", "no-file"):
        if name not in limits:
            continue
        which, description = _RESOURCES[name]
        value = limits[name]
        # u64::MAX is RLIM_INFINITY, as in the C ABI.
        value = resource.RLIM_INFINITY if value >= (1 << 64) - 1 else value
        try:
            resource.setrlimit(which, (value, value))
        except (OSError, ValueError):
            raise JailerError(ErrorKind.SET_RESOURCE_LIMIT, resource=description) from None
