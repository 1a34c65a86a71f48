"""Boot-area test helpers: a bytearray-backed guest memory for loader/ACPI unit tests, and
the builder of the freestanding test guests in tests/guests (built with the system gcc at
test time, cached per session; never committed)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Literal

from support import PROJECT_ROOT

GUESTS_DIR = PROJECT_ROOT / "tests" / "guests"
ImageKind = Literal["pvh", "bzimage", "elf64"]


class FakeGuestMemoryError(Exception):
    pass


class FakeGuestMemory:
    """The GuestMemory interface over a bytearray, with the project's memory-map rule:
    RAM up to min(size, 3 GiB) at 0, the rest from 4 GiB. Only the low part is backed
    (unit tests stay small); writes above it must not happen in those tests."""

    def __init__(self, size: int, *, backed: int | None = None) -> None:
        self.size = size
        low = min(size, 0xC000_0000)
        self.regions: list[tuple[int, int]] = [(0, low)]
        if size > low:
            self.regions.append((1 << 32, size - low))
        self._bytes = bytearray(backed if backed is not None else low)

    def _check(self, gpa: int, length: int) -> None:
        if not any(start <= gpa and gpa + length <= start + size for start, size in self.regions):
            raise FakeGuestMemoryError(f"{gpa:#x}+{length:#x} is outside guest RAM")
        if gpa + length > len(self._bytes):
            raise FakeGuestMemoryError(f"{gpa:#x}+{length:#x} is beyond the backed part of the fake")

    def read(self, gpa: int, length: int) -> bytes:
        self._check(gpa, length)
        return bytes(self._bytes[gpa : gpa + length])

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        self._check(gpa, len(data))
        self._bytes[gpa : gpa + len(data)] = data

    def u8(self, gpa: int) -> int:
        return self._bytes[gpa]

    def u16(self, gpa: int) -> int:
        return struct.unpack_from("<H", self._bytes, gpa)[0]

    def u32(self, gpa: int) -> int:
        return struct.unpack_from("<I", self._bytes, gpa)[0]

    def u64(self, gpa: int) -> int:
        return struct.unpack_from("<Q", self._bytes, gpa)[0]

    def cstring(self, gpa: int) -> bytes:
        end = self._bytes.index(0, gpa)
        return bytes(self._bytes[gpa:end])
