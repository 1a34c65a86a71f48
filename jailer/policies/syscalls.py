"""Syscall names and numbers per architecture, from libseccomp's own tables.

Resolution goes straight to libseccomp through ctypes (two functions), so parsing a policy does
not pay for importing pyseccomp. Results are cached: the same few hundred names recur. The
caches are plain dicts, not `functools.cache`: the VMM imports this module on its start path,
where `functools` (and the `collections` it brings) would cost memory for the VMM's lifetime.
"""

from __future__ import annotations

import ctypes

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
ARCHES = tuple(AUDIT_ARCH)
X32_SYSCALL_BIT = 0x40000000

_library: ctypes.CDLL | None = None
_numbers: dict[tuple[str, str], int | None] = {}
_names: dict[tuple[int, str], str | None] = {}
_free_function: ctypes._CFuncPtr | None = None


def _libseccomp() -> ctypes.CDLL:
    global _library
    if _library is not None:
        return _library
    from jailer.policies.errors import PolicyError

    try:
        # The soname first: find_library would spawn ldconfig, slow on the jailer's start-up path.
        library = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        from ctypes.util import find_library

        name = find_library("seccomp")
        if name is None:
            raise PolicyError("libseccomp is not installed (libseccomp.so.2 not found)") from None
        library = ctypes.CDLL(name)
    library.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    library.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    library.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    library.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    _library = library
    return library


def _preload() -> None:
    """Load libseccomp when this module is imported: every policy parse needs it right after,
    and a library mapped at import is one `jailer.runtime` sees when it computes what the
    jailed VMM needs (a lazy dlopen would leave it out of the jail). A missing library is
    reported later, as a PolicyError, by the call that needs it."""
    from jailer.policies.errors import PolicyError

    try:
        _libseccomp()
    except PolicyError:
        pass


_preload()


def check_arch(arch: str) -> int:
    try:
        return AUDIT_ARCH[arch]
    except KeyError:
        from jailer.policies.errors import PolicyError

        raise PolicyError(f"unsupported architecture {arch!r} (supported: {', '.join(ARCHES)})") from None


def number(name: str, arch: str = "x86_64") -> int | None:
    """The syscall's number on `arch`, or None when the arch has no such syscall."""
    if not name.isascii() or "\0" in name:
        # No syscall's name has either; libseccomp would read "read\0x" as "read", and a
        # surrogate (from undecodable argv bytes) cannot even be encoded for it.
        return None
    key = (name, arch)
    if key not in _numbers:
        nr = _libseccomp().seccomp_syscall_resolve_name_arch(check_arch(arch), name.encode())
        _numbers[key] = nr if nr >= 0 else None
    return _numbers[key]


def name(nr: int, arch: str = "x86_64") -> str | None:
    """The syscall's name for a number on `arch`, or None."""
    key = (nr, arch)
    if key not in _names:
        pointer = _libseccomp().seccomp_syscall_resolve_num_arch(check_arch(arch), nr)
        text = None
        if pointer:
            text = ctypes.string_at(pointer).decode()
            _free()(pointer)
        _names[key] = text
    return _names[key]


def _free() -> ctypes._CFuncPtr:
    """libc's free, for the names libseccomp allocates (resolved once, not per name)."""
    global _free_function
    if _free_function is None:
        _free_function = ctypes.CDLL(None).free
        _free_function.argtypes = [ctypes.c_void_p]
        _free_function.restype = None
    return _free_function


def is_known(name_: str) -> bool:
    """Known on at least one supported arch (open exists on x86_64 only, for example)."""
    return any(number(name_, arch) is not None for arch in ARCHES)
