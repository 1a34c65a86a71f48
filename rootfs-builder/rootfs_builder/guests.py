"""Freestanding test guests (kvm-unit-tests style), built from `tests/guests` with the system gcc.

They are what the VMM boots where stock Linux kernels cannot run (PVM hosts), in the tests,
the benchmarks and the main job. Each guest links the small shared runtime (`entry.S`,
`lib.c`, `acpi.c`) with its own `<name>.c`; `minimal` is a few instructions of assembly.
Three image kinds exercise the VMM's three entry protocols:

* ``pvh``: an ELF with a Xen PHYS32_ENTRY note (32-bit protected-mode entry);
* ``elf64``: an ELF vmlinux-style image entered in 64-bit long mode at e_entry;
* ``bzimage``: real boot-protocol setup sectors (``HdrS``, XLF_KERNEL_64) followed by the
  guest linked at 1 MiB with its 64-bit entry at +0x200, sized as the kernel's own build
  tool sizes a bzImage (syssize, init_size).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path
from typing import Literal

from rootfs_builder.errors import BuildError

GUEST_SOURCES = Path(__file__).resolve().parents[2] / "tests" / "guests"
ImageKind = Literal["pvh", "bzimage", "elf64"]

GUEST_CFLAGS = (
    "-m64", "-march=x86-64", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11",
    "-ffreestanding", "-fno-builtin", "-nostdlib", "-nostartfiles", "-static", "-fno-pic", "-no-pie",
    "-mno-red-zone", "-mgeneral-regs-only", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
    "-fcf-protection=none", "-Wl,--build-id=none", "-Wl,-z,noexecstack", "-Wl,-z,max-page-size=0x1000",
)
C_GUESTS = ("report", "violation", "pioloop")
ASM_ONLY_GUESTS = ("minimal",)
COMMON_SOURCES = ("entry.S", "lib.c", "acpi.c")
HIGH_MEMORY_START = 0x100000


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"guest build failed: {' '.join(command)}: {(result.stdout + result.stderr).strip()}")


def _link_elf(name: str, output: Path, *, pvh_note: bool) -> Path:
    if name in ASM_ONLY_GUESTS:
        sources = [GUEST_SOURCES / f"{name}.S"]
        entry = "pvh_start"
    else:
        sources = [GUEST_SOURCES / source for source in COMMON_SOURCES] + [GUEST_SOURCES / f"{name}.c"]
        entry = "startup_64"
    if pvh_note:
        sources.append(GUEST_SOURCES / "pvh_note.S")
    _run(["gcc", *GUEST_CFLAGS, f"-Wl,-e,{entry}", "-T", str(GUEST_SOURCES / "guest.ld"),
          "-I", str(GUEST_SOURCES), "-o", str(output), *map(str, sources)])
    return output


def _elf_end_address(elf: Path) -> int:
    result = subprocess.run(["nm", str(elf)], capture_output=True, text=True, check=True)
    for line in result.stdout.splitlines():
        address, _kind, symbol = line.split()
        if symbol == "_end":
            return int(address, 16)
    raise BuildError(f"{elf} has no _end symbol")


def _make_bzimage(name: str, directory: Path) -> Path:
    kernel_elf = _link_elf(name, directory / f"{name}-bz.elf", pvh_note=False)
    payload = directory / f"{name}-bz.bin"
    _run(["objcopy", "-O", "binary", str(kernel_elf), str(payload)])
    setup_object = directory / f"{name}-setup.o"
    _run(["gcc", "-c", "-o", str(setup_object), str(GUEST_SOURCES / "setup.S")])
    setup_binary = directory / f"{name}-setup.bin"
    _run(["objcopy", "-O", "binary", "-j", ".text", str(setup_object), str(setup_binary)])
    setup = bytearray(setup_binary.read_bytes())
    kernel = payload.read_bytes()
    if (
        len(setup) != (setup[0x1F1] + 1) * 512
        or setup[0x202:0x206] != b"HdrS"
        or setup[0x201] != 0x26C - 0x202
        or struct.unpack_from("<HH", setup, 0x234) != (21 << 8, 1)  # min_alignment, xloadflags
    ):
        raise BuildError(f"setup.S produced {len(setup)} bytes without a valid boot-protocol header")
    struct.pack_into("<I", setup, 0x1F4, (len(kernel) + 15) // 16)  # syssize in 16-byte units
    struct.pack_into("<I", setup, 0x260, _elf_end_address(kernel_elf) - HIGH_MEMORY_START)  # init_size
    image = directory / f"{name}.bzImage"
    image.write_bytes(bytes(setup) + kernel)
    for intermediate in (kernel_elf, payload, setup_object, setup_binary):
        intermediate.unlink()
    return image


def guest_image_name(name: str, image: ImageKind) -> str:
    return {"pvh": f"{name}.pvh.elf", "elf64": f"{name}.elf64", "bzimage": f"{name}.bzImage"}[image]


def build_guest(name: str, image: ImageKind, directory: Path) -> Path:
    """Build guest `name` as `image` into `directory` (reused when already there)."""
    if not GUEST_SOURCES.is_dir():
        raise BuildError(f"the test guest sources are not here: {GUEST_SOURCES} (run from a clone of the repository)")
    for tool in ("gcc", "objcopy", "nm"):
        if shutil.which(tool) is None:
            raise BuildError(f"{tool} is not installed: the test guests are built with the system toolchain")
    if name not in C_GUESTS + ASM_ONLY_GUESTS:
        raise BuildError(f"unknown test guest {name!r} (known: {', '.join(C_GUESTS + ASM_ONLY_GUESTS)})")
    if name in ASM_ONLY_GUESTS and image != "pvh":
        raise BuildError(f"guest {name!r} exists only as a PVH image")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / guest_image_name(name, image)
    if target.exists():
        return target
    if image == "bzimage":
        return _make_bzimage(name, directory)
    return _link_elf(name, target, pvh_note=image == "pvh")
