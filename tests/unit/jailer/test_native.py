"""`jailer.native` against `ctypes` itself: same sizes, layouts, calls, errno and callbacks,
and none of the `ctypes` package loaded by importing it."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
import sys

import pytest

from jailer import native
from support import PROJECT_ROOT

SIMPLE_TYPES = [
    ("c_char", "c_char"),
    ("c_char_p", "c_char_p"),
    ("c_void_p", "c_void_p"),
    ("c_ushort", "c_ushort"),
    ("c_int", "c_int"),
    ("c_uint", "c_uint"),
    ("c_long", "c_long"),
    ("c_ulong", "c_ulong"),
    ("c_size_t", "c_size_t"),
    ("c_uint8", "c_uint8"),
    ("c_uint16", "c_uint16"),
    ("c_uint32", "c_uint32"),
    ("c_uint64", "c_uint64"),
]


@pytest.mark.parametrize(("ours", "theirs"), SIMPLE_TYPES)
def test_simple_types_match_ctypes(ours: str, theirs: str) -> None:
    mine, reference = getattr(native, ours), getattr(ctypes, theirs)
    assert mine._type_ == reference._type_
    assert native.sizeof(mine) == ctypes.sizeof(reference)
    assert ctypes.alignment(mine) == ctypes.alignment(reference)


def test_a_structure_has_the_layout_ctypes_gives_it() -> None:
    def layout(module: object) -> type:
        class Segment(module.Structure):  # type: ignore[name-defined, misc]
            _fields_ = [
                ("base", module.c_uint64),  # type: ignore[attr-defined]
                ("limit", module.c_uint32),  # type: ignore[attr-defined]
                ("selector", module.c_uint16),  # type: ignore[attr-defined]
                ("flags", module.c_uint8 * 9),  # type: ignore[attr-defined]
                ("address", module.c_void_p),  # type: ignore[attr-defined]
            ]

        return Segment

    mine, reference = layout(native), layout(ctypes)
    assert native.sizeof(mine) == ctypes.sizeof(reference) == 32
    for name, _ in reference._fields_:
        assert getattr(mine, name).offset == getattr(reference, name).offset
    value = mine(base=0xFFFF_0000_1234_5678, limit=0xFFFF, selector=8, address=0x1000)
    value.flags[8] = 7
    copy = reference.from_buffer_copy(bytes(value))
    assert (copy.base, copy.limit, copy.selector, copy.flags[8], copy.address) == (0xFFFF_0000_1234_5678, 0xFFFF, 8, 7, 0x1000)


def test_library_functions_return_int_and_keep_errno() -> None:
    libc = native.Library(None)
    assert libc.getpid() == os.getpid()
    assert libc.close(-1) == -1
    assert native.get_errno() == errno.EBADF
    assert libc.getpid is libc.getpid  # looked up once: prototypes set on it stay set


def test_each_library_has_its_own_prototypes() -> None:
    # jailer.libc declares prctl's arguments as numbers, vmm.threads passes it a string:
    # two instances must not share one function object.
    first, second = native.Library(None), native.Library(None)
    first.strlen.argtypes = [native.c_char_p]
    first.strlen.restype = native.c_size_t
    assert first.strlen(b"stockade") == 8
    assert second.strlen.argtypes is None
    assert not hasattr(native.Library(None), "__wrapped__")


def test_prototypes_bind_functions_and_make_callbacks() -> None:
    prototype = native.CFUNCTYPE(native.c_long, native.c_long, native.c_long, use_errno=True)
    assert native.CFUNCTYPE(native.c_long, native.c_long, native.c_long, use_errno=True) is prototype
    assert native.CFUNCTYPE(native.c_long, native.c_long, native.c_long) is not prototype
    labs = native.CFUNCTYPE(native.c_long, native.c_long)(("labs", native.Library(None)))
    assert labs(-(1 << 40)) == 1 << 40

    seen = []
    callback = native.CFUNCTYPE(None, native.c_int, native.c_void_p)(lambda number, pointer: seen.append((number, pointer)))
    address = native.c_void_p.from_buffer(callback).value  # what vmm.seccomp hands sigaction
    assert address == ctypes.cast(callback, ctypes.c_void_p).value
    ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)(address)(5, 0x1234)
    assert seen == [(5, 0x1234)]


def test_buffers_and_references() -> None:
    program = bytes(range(16))
    buffer = (native.c_char * len(program)).from_buffer_copy(program)  # jailer.policies.loader's copy
    assert ctypes.string_at(native.addressof(buffer), len(program)) == program
    value = native.c_uint64(0)
    ctypes.memmove(ctypes.addressof(value), (42).to_bytes(8, "little"), 8)
    assert value.value == 42 and native.byref(value)._obj is value


def test_importing_it_loads_no_part_of_the_ctypes_package() -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import jailer.native; "
        "print(sorted(name for name in sys.modules if name == 'ctypes' or name.startswith('ctypes.')))"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(PROJECT_ROOT)],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert result.stdout.strip() == "[]"


def test_calls_release_the_gil() -> None:
    # vCPU threads sit in KVM_RUN through these calls: other threads must run meanwhile.
    import threading
    import time

    libc = native.Library(None)
    window: list[float] = []

    def sleep() -> None:
        window.append(time.monotonic())
        libc.usleep(300_000)
        window.append(time.monotonic())

    sleeper = threading.Thread(target=sleep)
    sleeper.start()
    ticks = []
    while sleeper.is_alive():
        ticks.append(time.monotonic())
    sleeper.join()
    start, end = window
    # Well inside the call: a call holding the GIL would leave no tick there at all.
    assert any(start + 0.05 < tick < end - 0.05 for tick in ticks)
