"""The few ELF64 facts the builder needs: section contents (``.modinfo``) and notes (PVH)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

from rootfs_builder.errors import BuildError

PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18  # the PVH entry point: "Xen" note type 18


def _check_elf64_le(data: bytes, what: str) -> None:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BuildError(f"{what} is not a little-endian ELF64 file")


def section(data: bytes, name: str, what: str = "ELF file") -> bytes | None:
    """The bytes of the section called `name`, or None when there is none."""
    _check_elf64_le(data, what)
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shnum == 0:
        return None

    def header(index: int) -> tuple[int, int, int]:
        base = shoff + index * shentsize
        name_offset, = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name_offset, offset, size

    _, strtab_offset, strtab_size = header(shstrndx)
    strtab = data[strtab_offset : strtab_offset + strtab_size]
    wanted = name.encode()
    for index in range(shnum):
        name_offset, offset, size = header(index)
        end = strtab.find(b"\0", name_offset)
        if strtab[name_offset:end] == wanted:
            return data[offset : offset + size]
    return None


def notes(data: bytes) -> Iterator[tuple[bytes, int, bytes]]:
    """(name, type, descriptor) of every note in the PT_NOTE segments."""
    _check_elf64_le(data, "vmlinux")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for index in range(phnum):
        base = phoff + index * phentsize
        p_type, = struct.unpack_from("<I", data, base)
        if p_type != PT_NOTE:
            continue
        offset, = struct.unpack_from("<Q", data, base + 0x08)
        size, = struct.unpack_from("<Q", data, base + 0x20)
        position, end = offset, offset + size
        while position + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", data, position)
            position += 12
            name = data[position : position + namesz].rstrip(b"\0")
            position += (namesz + 3) & ~3
            descriptor = data[position : position + descsz]
            position += (descsz + 3) & ~3
            yield name, note_type, descriptor


def pvh_entry(data: bytes) -> int | None:
    """The PVH 32-bit entry point a VMM jumps to for ELF boot, or None without CONFIG_PVH."""
    for name, note_type, descriptor in notes(data):
        if name == b"Xen" and note_type == XEN_ELFNOTE_PHYS32_ENTRY:
            size = 8 if len(descriptor) >= 8 else 4
            return int.from_bytes(descriptor[:size], "little")
    return None
