"""Boot-area test helpers: a bytearray-backed guest memory for loader/ACPI unit tests, and
the builder of the freestanding test guests in tests/guests (built with the system gcc at
test time, cached per session; never committed)."""

from __future__ import annotations

import atexit
import re
import shutil
import struct
import tempfile
from pathlib import Path
from dataclasses import dataclass, field
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


# --- building the freestanding guests --------------------------------------------------------
# The builder itself is product code (the main job boots these guests too): rootfs_builder.guests.

_build_root: Path | None = None


def _build_directory() -> Path:
    """One directory per test session (pytest imports this module once per session)."""
    global _build_root
    if _build_root is None:
        _build_root = Path(tempfile.mkdtemp(prefix="stockade-guests-"))
        atexit.register(shutil.rmtree, _build_root, True)
    return _build_root


def build_guest(name: str, image: ImageKind) -> Path:
    """Build tests/guests/<name> as a PVH ELF, a bzImage or an ELF64 vmlinux-style image."""
    if shutil.which("gcc") is None or shutil.which("objcopy") is None:
        import pytest

        pytest.skip("gcc/binutils are not installed: the test guests are built at test time")
    from rootfs_builder.errors import BuildError
    from rootfs_builder.guests import build_guest as build

    try:
        return build(name, image, _build_directory())
    except BuildError as error:
        if str(error).startswith("unknown test guest") or "exists only as" in str(error):
            raise ValueError(str(error)) from None
        raise AssertionError(str(error)) from None


# --- running guests and reading what they report -------------------------------------------

@dataclass
class GuestReport:
    """What a guest printed on COM1, split into the machine-checkable lines."""

    serial: str
    values: dict[str, str] = field(default_factory=dict)  # single `key=value` lines
    memory_map: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, type)
    cpus: list[tuple[int, int]] = field(default_factory=list)  # (uid, apic id)
    devices: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (_HID, resources)
    records: dict[str, dict[str, str]] = field(default_factory=dict)  # `word k=v k=v` lines

    @property
    def done(self) -> bool:
        return "guest: done" in self.serial.splitlines()


_PAIRS = re.compile(r"(\w+)=(\S+)")


def parse_report(serial: str) -> GuestReport:
    report = GuestReport(serial)
    for line in serial.replace("\r", "").splitlines():
        if match := re.fullmatch(r"e820: (0x[0-9a-f]+)-(0x[0-9a-f]+) (\w+)", line):
            report.memory_map.append((int(match[1], 16), int(match[2], 16), match[3]))
        elif match := re.fullmatch(r"cpu uid=(\d+) apic_id=(\d+)", line):
            report.cpus.append((int(match[1]), int(match[2])))
        elif match := re.fullmatch(r"device (\S+)(.*)", line):
            resources: dict[str, str] = {}
            for key, value in _PAIRS.findall(match[2]):  # repeated keys (two IO ranges) join with ","
                resources[key] = f"{resources[key]},{value}" if key in resources else value
            report.devices.append((match[1], resources))
        elif match := re.fullmatch(r"(\w+)=(.*)", line):
            report.values[match[1]] = match[2]
        elif match := re.fullmatch(r"(\w+(?: \w+)?) (\w+=.*)", line):
            record = dict(_PAIRS.findall(match[2]))
            key = f"{match[1]} {record['table']}" if "table" in record else match[1]
            report.records[key] = record
    return report


def qemu_command(
    kernel: Path,
    *,
    memory_mib: int,
    vcpus: int = 1,
    cmdline: str = "",
    initrd: Path | None = None,
    with_i8042: bool = False,
) -> list[str]:
    """QEMU's microvm booting a PVH guest: the peer the guests are checked against, and the
    benchmark's baseline. `-display none` (not -nographic, which takes over the terminal)."""
    command = [
        "qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-nodefaults", "-no-user-config",
        "-display", "none", "-m", str(memory_mib), "-smp", str(vcpus), "-serial", "stdio",
        "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", str(kernel), "-append", cmdline,
    ]
    if initrd is not None:
        command += ["-initrd", str(initrd)]
    if with_i8042:
        command += ["-device", "i8042", "-no-reboot"]  # a reset then ends QEMU with status 0
    return command
