"""The trust rule for files Stockade takes code or filters from without having made them in
this process: the policy store (`jailer.policies.precompiled`) and the VMM's start-path
bytecode bundle (`vmm.bundle`). A module of its own, with nothing but `os` to import, so the
bundle can check itself before the modules it serves (`jailer.policies` among them) are loaded.

A trusted file is a regular file owned by root or the running euid, writable by its owner
only, opened without following a symlink (and without blocking on a FIFO).
"""

from __future__ import annotations

import os
import stat


def is_trusted(info: os.stat_result) -> bool:
    """A regular file owned by root or the running euid, writable by its owner only.

    The owner is compared with root first, then with the real uid, and only when that matches
    too with the euid: the jailed VMM runs under the `jail` category, which allows getuid(2)
    but not geteuid(2) (a violation there ends the VMM), and a store bound into a jail is
    root's. A file owned by the real but not the effective uid is refused.
    """
    return (
        stat.S_ISREG(info.st_mode)
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        and (info.st_uid == 0 or info.st_uid == os.getuid() == os.geteuid())
    )


def open_trusted(path: str, limit: int) -> tuple[int, int] | None:
    """(an fd open for reading, the size) if the file at `path` may be trusted and holds at
    most `limit` bytes, else None. The caller closes the fd."""
    try:
        # O_NONBLOCK: a FIFO put in its place must not block the open; fstat then refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    if not is_trusted(info) or info.st_size > limit:
        os.close(fd)
        return None
    return fd, info.st_size


def read_trusted(path: str, limit: int) -> bytes | None:
    """A file's bytes if it may be trusted (`is_trusted`) and holds at most `limit` bytes, else
    None; never through a symlink."""
    opened = open_trusted(path, limit)
    if opened is None:
        return None
    fd, size = opened
    try:
        return os.read(fd, size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
