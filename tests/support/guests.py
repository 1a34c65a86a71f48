"""Boot-area test helpers: a bytearray-backed guest memory for loader/ACPI unit tests, and
the builder of the freestanding test guests in tests/guests (built with the system gcc at
test time, cached per session; never committed)."""

from __future__ import annotations

import atexit
import re
import shutil
import struct
import subprocess
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

GUEST_CFLAGS = (
    "-m64", "-march=x86-64", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11",
    "-ffreestanding", "-fno-builtin", "-nostdlib", "-nostartfiles", "-static", "-fno-pic", "-no-pie",
    "-mno-red-zone", "-mgeneral-regs-only", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
    "-fcf-protection=none", "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,-z,max-page-size=0x1000",
)
C_GUESTS = ("report", "violation", "pioloop")
ASM_ONLY_GUESTS = ("minimal",)
COMMON_SOURCES = ("entry.S", "lib.c", "acpi.c")

_build_root: Path | None = None


def _build_directory() -> Path:
    """One directory per test session (pytest imports this module once per session)."""
    global _build_root
    if _build_root is None:
        _build_root = Path(tempfile.mkdtemp(prefix="stockade-guests-"))
        atexit.register(shutil.rmtree, _build_root, True)
    return _build_root


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"guest build failed: {' '.join(command)}\n{result.stdout}{result.stderr}")


def _link_elf(name: str, output: Path, *, pvh_note: bool) -> Path:
    if name in ASM_ONLY_GUESTS:
        sources = [GUESTS_DIR / f"{name}.S"]
        entry = "pvh_start"
    else:
        sources = [GUESTS_DIR / source for source in COMMON_SOURCES] + [GUESTS_DIR / f"{name}.c"]
        entry = "startup_64"
    if pvh_note:
        sources.append(GUESTS_DIR / "pvh_note.S")
    _run(["gcc", *GUEST_CFLAGS, f"-Wl,-e,{entry}", "-T", str(GUESTS_DIR / "guest.ld"), "-I", str(GUESTS_DIR), "-o", str(output), *map(str, sources)])
    return output


def _elf_end_address(elf: Path) -> int:
    result = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        address, _kind, symbol = line.split()
        if symbol == "_end":
            return int(address, 16)
    raise AssertionError(f"{elf} has no _end symbol")


def _make_bzimage(name: str, directory: Path) -> Path:
    """setup sectors (a real boot-protocol header) + the protected-mode part, which is the
    guest linked at 1 MiB with its 64-bit entry at +0x200; syssize and init_size are filled
    in as the kernel's arch/x86/boot/tools/build does."""
    kernel_elf = _link_elf(name, directory / f"{name}-bz.elf", pvh_note=False)
    payload = directory / f"{name}-bz.bin"
    _run(["objcopy", "-O", "binary", str(kernel_elf), str(payload)])
    setup_object = directory / "setup.o"
    _run(["gcc", "-c", "-o", str(setup_object), str(GUESTS_DIR / "setup.S")])
    setup_binary = directory / "setup.bin"
    _run(["objcopy", "-O", "binary", "-j", ".text", str(setup_object), str(setup_binary)])
    setup = bytearray(setup_binary.read_bytes())
    kernel = payload.read_bytes()
    if (
        len(setup) != (setup[0x1F1] + 1) * 512
        or setup[0x202:0x206] != b"HdrS"
        or setup[0x201] != 0x26C - 0x202
        or struct.unpack_from("<HH", setup, 0x234) != (21 << 8, 1)  # min_alignment, xloadflags
    ):
        raise AssertionError(f"setup.S produced {len(setup)} bytes without a valid header")
    struct.pack_into("<I", setup, 0x1F4, (len(kernel) + 15) // 16)  # syssize in 16-byte units
    struct.pack_into("<I", setup, 0x260, _elf_end_address(kernel_elf) - 0x100000)  # init_size
    image = directory / f"{name}.bzImage"
    image.write_bytes(bytes(setup) + kernel)
    return image


def build_guest(name: str, image: ImageKind) -> Path:
    """Build tests/guests/<name> as a PVH ELF, a bzImage or an ELF64 vmlinux-style image."""
    if shutil.which("gcc") is None or shutil.which("objcopy") is None:
        import pytest

        pytest.skip("gcc/binutils are not installed: the test guests are built at test time")
    if name not in C_GUESTS + ASM_ONLY_GUESTS:
        raise ValueError(f"unknown test guest {name!r}")
    if name in ASM_ONLY_GUESTS and image != "pvh":
        raise ValueError(f"guest {name!r} exists only as a PVH image")
    directory = _build_directory()
    target = directory / {"pvh": f"{name}.pvh.elf", "elf64": f"{name}.elf64", "bzimage": f"{name}.bzImage"}[image]
    if target.exists():
        return target
    if image == "bzimage":
        return _make_bzimage(name, directory)
    return _link_elf(name, target, pvh_note=image == "pvh")


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
