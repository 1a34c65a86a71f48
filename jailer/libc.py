"""Thin ctypes bindings (`jailer.native`) for the system calls Python 3.11's `os` module lacks.

Loaded on first use only: the jailer's start-up time is a product feature, and `--help` or a
validation error never needs libc.
"""

from __future__ import annotations

import os

from jailer.native import (
    Library,
    Structure,
    byref,
    c_char_p,
    c_int,
    c_long,
    c_size_t,
    c_uint,
    c_uint32,
    c_ulong,
    c_void_p,
    get_errno,
)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_SLAVE = 1 << 19
MNT_DETACH = 2

SYS_PIVOT_ROOT = 155
SYS_CLOSE_RANGE = 436
CLOSE_RANGE_UNSHARE = 2

PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


_LIBC: Library | None = None


def _libc() -> Library:
    """libc with the prototypes below, loaded once (a global, not `functools.cache`: functools
    is not otherwise imported on the jailer's start-up path)."""
    global _LIBC
    if _LIBC is not None:
        return _LIBC
    libc = Library(None)
    libc.syscall.restype = c_long
    libc.mount.argtypes = [c_char_p, c_char_p, c_char_p, c_ulong, c_void_p]
    libc.umount2.argtypes = [c_char_p, c_int]
    libc.unshare.argtypes = [c_int]
    libc.setns.argtypes = [c_int, c_int]
    libc.sethostname.argtypes = [c_char_p, c_size_t]
    libc.prctl.argtypes = [c_int, c_ulong, c_ulong, c_ulong, c_ulong]
    _LIBC = libc
    return libc


def _check(result: int) -> int:
    if result < 0:
        number = get_errno()
        raise OSError(number, "")
    return result


def _encode(path: str | bytes | None) -> bytes | None:
    # os.fsencode: arguments reach us with undecodable bytes as surrogates, which must go
    # back to the kernel as the bytes they were.
    return os.fsencode(path) if isinstance(path, str) else path


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc().mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data)))


def umount2(target: str, flags: int) -> None:
    _check(_libc().umount2(_encode(target), flags))


def unshare(flags: int) -> None:
    _check(_libc().unshare(flags))


def setns(fd: int, nstype: int) -> None:
    _check(_libc().setns(fd, nstype))


def sethostname(name: str) -> None:
    encoded = name.encode()
    _check(_libc().sethostname(encoded, len(encoded)))


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_libc().syscall(SYS_PIVOT_ROOT, _encode(new_root), _encode(put_old)))


def close_range(first: int, last: int, flags: int) -> None:
    libc = _libc()
    _check(libc.syscall(SYS_CLOSE_RANGE, c_uint(first), c_uint(last), c_uint(flags)))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc().prctl(option, arg2, arg3, arg4, arg5))


class _CapHeader(Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class _CapData(Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32), ("inheritable", c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_CAPSET = 126


def clear_capability_sets() -> None:
    """capset(2) with every set empty: effective, permitted and inheritable all become 0."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc().syscall(SYS_CAPSET, byref(header), byref(data)))


SYS_CAPGET = 125


def get_capability_sets() -> dict[str, int]:
    """capget(2) for this thread: {"CapEff", "CapPrm", "CapInh"} as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc().syscall(SYS_CAPGET, byref(header), byref(data)))
    return {
        "CapEff": data[0].effective | data[1].effective << 32,
        "CapPrm": data[0].permitted | data[1].permitted << 32,
        "CapInh": data[0].inheritable | data[1].inheritable << 32,
    }
