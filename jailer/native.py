"""Calls into the C library for the jailer and the VMM: the part of `ctypes` they use, built
directly on its C core, `_ctypes`.

Why not `import ctypes`: the package defines some thirty types, byte-swapped structure
variants (`ctypes._endian`) and imports `types`; on our PVM hosts (a page fault costs ~5 µs)
that is ~3.5 ms before the first call, about a tenth of the VMM's start-up, which is a
product target, and of the jailer's. These are the same C classes `ctypes` itself derives
from, so the objects behave exactly like ctypes' own (and mix with them: a `Structure` here
is `ctypes.Structure`); `tests/unit/jailer/test_native.py` checks the two against each other.

64-bit Linux only (x86_64, aarch64): `c_long`, `c_size_t` and pointers are 8 bytes there,
which the import checks.
"""

from __future__ import annotations

import _ctypes
from _ctypes import Array, Structure, addressof, byref, get_errno, sizeof  # noqa: F401 - re-exported

__all__ = [
    "Array",
    "CFUNCTYPE",
    "Library",
    "Structure",
    "addressof",
    "byref",
    "c_char",
    "c_char_p",
    "c_int",
    "c_long",
    "c_size_t",
    "c_uint",
    "c_uint8",
    "c_uint16",
    "c_uint32",
    "c_uint64",
    "c_ulong",
    "c_ushort",
    "c_void_p",
    "get_errno",
    "sizeof",
]


def _simple_type(name: str, code: str) -> type:
    """A fundamental C type: `_ctypes` reads its `_type_` code (struct module letters)."""
    return type(name, (_ctypes._SimpleCData,), {"_type_": code, "__module__": __name__})


c_char = _simple_type("c_char", "c")
c_char_p = _simple_type("c_char_p", "z")
c_void_p = _simple_type("c_void_p", "P")
c_ubyte = _simple_type("c_ubyte", "B")
c_ushort = _simple_type("c_ushort", "H")
c_int = _simple_type("c_int", "i")
c_uint = _simple_type("c_uint", "I")
c_long = _simple_type("c_long", "l")
c_ulong = _simple_type("c_ulong", "L")
c_uint8, c_uint16, c_uint32, c_uint64 = c_ubyte, c_ushort, c_uint, c_ulong
c_size_t = c_ulong

if not sizeof(c_ulong) == sizeof(c_void_p) == 8 or sizeof(c_uint) != 4 or sizeof(c_ushort) != 2:
    raise ImportError("jailer.native supports 64-bit Linux (LP64) only")

_CDECL = _ctypes.FUNCFLAG_CDECL
_USE_ERRNO = _ctypes.FUNCFLAG_USE_ERRNO
_prototypes: dict[tuple[object, ...], type] = {}


def CFUNCTYPE(restype: type | None, *argtypes: type, use_errno: bool = False) -> type:  # noqa: N802 - ctypes' name
    """A C function prototype, as `ctypes.CFUNCTYPE`: called with a Python callable it makes a
    C callback; called with ``(name, library)`` it binds that library's function."""
    flags = _CDECL | (_USE_ERRNO if use_errno else 0)
    key = (restype, argtypes, flags)
    prototype = _prototypes.get(key)
    if prototype is None:

        class prototype(_ctypes.CFuncPtr):  # noqa: N801 - a ctypes type
            _argtypes_ = argtypes
            _restype_ = restype
            _flags_ = flags

        _prototypes[key] = prototype
    return prototype


class _Function(_ctypes.CFuncPtr):
    """A libc function as `ctypes.CDLL(..., use_errno=True)` hands it out: returns int, keeps
    errno for `get_errno`; callers set `argtypes`/`restype` where int is not enough."""

    _flags_ = _CDECL | _USE_ERRNO
    _restype_ = c_int


class Library:
    """A loaded shared object (None: the process itself, as `ctypes.CDLL(None)`); its functions
    are attributes, looked up once (so prototypes set on them stay set). Like CDLL objects,
    each instance has functions of its own: modules that set different prototypes for one
    function (prctl with a string or with numbers) each keep their own instance."""

    def __init__(self, name: str | None = None) -> None:
        self._name = name
        self._handle = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)

    def __getattr__(self, name: str) -> _Function:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        function = _Function((name, self))
        function.__name__ = name
        setattr(self, name, function)
        return function

