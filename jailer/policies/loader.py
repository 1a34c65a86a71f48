"""Install a compiled filter into the running process: the hot-path half of the toolchain.

Imported by the jailer right before exec and by every VMM thread as it starts, so it imports
nothing but `jailer.native` (ctypes without the package's import cost) and does no work
beyond two system calls: PR_SET_NO_NEW_PRIVS (so no CAP_SYS_ADMIN is needed) and
seccomp(SECCOMP_SET_MODE_FILTER). With `all_threads` the kernel synchronises every thread of
the process to the caller's filters (TSYNC); without it only the calling thread gets the
filter, which is how each VMM thread adds its own category.
"""

from __future__ import annotations

from jailer.native import Library, Structure, addressof, byref, c_char, c_int, c_long, c_ushort, c_void_p, get_errno

PR_SET_NO_NEW_PRIVS = 38
SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
SOCK_FILTER_SIZE = 8
BPF_MAXINSNS = 4096


class FilterInstallError(OSError):
    """The kernel refused the filter; the message says why in one line."""


class _SockFprog(Structure):
    _fields_ = [("len", c_ushort), ("filter", c_void_p)]


_libc: Library | None = None
_sys_seccomp: int | None = None


def prepare() -> None:
    """Resolve libc's entry points now, so the first install_filter does only the two syscalls.

    Worth calling once at start-up in a process that will install filters later (the VMM
    before starting its threads): the first resolution costs ~0.8 ms in a freshly forked child.
    """
    _init()


def _init() -> tuple[Library, int]:
    global _libc, _sys_seccomp
    if _libc is None or _sys_seccomp is None:
        import os

        machine = os.uname().machine
        if machine not in SYS_SECCOMP:
            raise FilterInstallError(95, f"seccomp filters are not supported on {machine} by this loader")
        _libc = Library(None)
        _libc.syscall.restype = c_long
        _libc.prctl.restype = c_int
        _sys_seccomp = SYS_SECCOMP[machine]
    return _libc, _sys_seccomp


def install_filter(program: bytes, *, all_threads: bool) -> None:
    """Install `program` (a raw sock_filter array) on the calling thread, or on all threads."""
    count, remainder = divmod(len(program), SOCK_FILTER_SIZE)
    if remainder or not 1 <= count <= BPF_MAXINSNS:
        raise FilterInstallError(
            22, f"not a seccomp program: {len(program)} bytes (need 1 to {BPF_MAXINSNS} 8-byte instructions)"
        )
    libc, sys_seccomp = _init()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        number = get_errno()
        raise FilterInstallError(number, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {_strerror(number)}")
    buffer = (c_char * len(program)).from_buffer_copy(program)
    fprog = _SockFprog(count, addressof(buffer))
    flags = SECCOMP_FILTER_FLAG_TSYNC if all_threads else 0
    result = libc.syscall(sys_seccomp, SECCOMP_SET_MODE_FILTER, flags, byref(fprog))
    if result < 0:
        number = get_errno()
        raise FilterInstallError(number, f"seccomp(SECCOMP_SET_MODE_FILTER) failed: {_strerror(number)}")
    if result > 0:
        raise FilterInstallError(
            16,
            f"seccomp TSYNC failed: thread {result} has diverging filters of its own and cannot be "
            "synchronised; nothing was installed",
        )


def _strerror(number: int) -> str:
    import os

    return os.strerror(number)
