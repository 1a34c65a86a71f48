"""ELF64 kernels: a vmlinux (64-bit entry at e_entry) or an ELF carrying a PVH note.

Segments are loaded at their physical addresses (p_paddr), as a vmlinux's PT_LOADs are
linked to run there before the kernel sets up its own mappings.
"""

from __future__ import annotations

import struct

from vmm.loader.errors import LoaderError
from vmm.loader.layout import KERNEL_LOAD_ADDRESS, MMIO32_END
from vmm.loader.ram import require_ram

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from os import PathLike

    from vmm.loader.ram import GuestMemoryLike

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EM_X86_64 = 62
PT_LOAD = 1
PT_NOTE = 4
XEN_NOTE_NAME = b"Xen"
XEN_ELFNOTE_PHYS32_ENTRY = 18


class LoadedElf:
    __slots__ = ("entry_address", "pvh_entry_address", "kernel_end")

    def __init__(self, entry_address: int, pvh_entry_address: int | None, kernel_end: int) -> None:
        self.entry_address = entry_address  # e_entry: the 64-bit entry
        self.pvh_entry_address = pvh_entry_address  # from the Xen PHYS32_ENTRY note, if any
        self.kernel_end = kernel_end


def is_elf(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


class _ProgramHeader:
    __slots__ = ("kind", "offset", "paddr", "filesz", "memsz")

    def __init__(self, kind: int, offset: int, paddr: int, filesz: int, memsz: int) -> None:
        self.kind = kind
        self.offset = offset
        self.paddr = paddr
        self.filesz = filesz
        self.memsz = memsz


def _program_headers(image: bytes, path: str | PathLike[str]) -> tuple[int, list[_ProgramHeader]]:
    if len(image) < 64:
        raise LoaderError(f"ELF kernel {path} is truncated")
    if image[4] != ELFCLASS64 or image[5] != ELFDATA2LSB:
        raise LoaderError(f"ELF kernel {path} is not a 64-bit little-endian ELF")
    (machine,) = struct.unpack_from("<H", image, 18)
    if machine != EM_X86_64:
        raise LoaderError(f"ELF kernel {path} is for machine {machine}, not x86-64")
    entry, phoff = struct.unpack_from("<QQ", image, 24)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    if phnum == 0 or phentsize < 56 or phoff + phnum * phentsize > len(image):
        raise LoaderError(f"ELF kernel {path} has no valid program headers")
    headers = []
    for index in range(phnum):
        kind, _flags, offset, _vaddr, paddr, filesz, memsz = struct.unpack_from(
            "<IIQQQQQ", image, phoff + index * phentsize
        )
        if kind in (PT_LOAD, PT_NOTE) and offset + filesz > len(image):
            raise LoaderError(f"ELF kernel {path} is truncated: segment {index} beyond the file")
        headers.append(_ProgramHeader(kind, offset, paddr, filesz, memsz))
    return entry, headers


def _pvh_entry(image: bytes, notes: list[_ProgramHeader]) -> int | None:
    for note in notes:
        position, end = note.offset, note.offset + note.filesz
        while position + 12 <= end:
            namesz, descsz, kind = struct.unpack_from("<III", image, position)
            name_at = position + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            position = desc_at + (descsz + 3) // 4 * 4
            name = image[name_at : name_at + namesz].rstrip(b"\0")
            if name == XEN_NOTE_NAME and kind == XEN_ELFNOTE_PHYS32_ENTRY and descsz in (4, 8):
                # Linux emits the entry as a pointer-sized value; only the low 32 bits matter.
                return struct.unpack_from("<I", image, desc_at)[0]
    return None


def load_elf(memory: GuestMemoryLike, image: bytes, path: str | PathLike[str]) -> LoadedElf:
    entry, headers = _program_headers(image, path)
    loads = [header for header in headers if header.kind == PT_LOAD and header.memsz]
    if not loads:
        raise LoaderError(f"ELF kernel {path} has no loadable segments")
    pvh_entry = _pvh_entry(image, [header for header in headers if header.kind == PT_NOTE])
    for segment in loads:
        if segment.paddr < KERNEL_LOAD_ADDRESS:
            raise LoaderError(
                f"ELF kernel {path} loads a segment at {segment.paddr:#x}, inside the boot area "
                f"below 1 MiB (zero page, command line, ACPI)"
            )
        end = segment.paddr + segment.memsz
        require_ram(memory, segment.paddr, end, f"kernel {path} segment")
        memory.write(segment.paddr, image[segment.offset : segment.offset + segment.filesz])
        if segment.memsz > segment.filesz:
            memory.write(segment.paddr + segment.filesz, bytes(segment.memsz - segment.filesz))
    if pvh_entry is not None and pvh_entry >= MMIO32_END:
        raise LoaderError(f"ELF kernel {path} has a PVH entry above 4 GiB: {pvh_entry:#x}")
    kernel_end = max(segment.paddr + segment.memsz for segment in loads)
    return LoadedElf(entry, pvh_entry, kernel_end)
