"""`struct boot_params` (the zero page) for the Linux 64-bit boot protocol.

Offsets are those of arch/x86/include/uapi/asm/bootparam.h.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from vmm.loader.e820 import E820_MAX_ENTRIES_ZEROPAGE, E820Entry
from vmm.loader.errors import LoaderError
from vmm.loader.layout import ZERO_PAGE_SIZE

ACPI_RSDP_ADDR = 0x070
EXT_RAMDISK_IMAGE = 0x0C0
EXT_RAMDISK_SIZE = 0x0C4
EXT_CMD_LINE_PTR = 0x0C8
E820_ENTRIES = 0x1E8
SETUP_HEADER = 0x1F1
BOOT_FLAG = 0x1FE
HEADER = 0x202
TYPE_OF_LOADER = 0x210
LOADFLAGS = 0x211
RAMDISK_IMAGE = 0x218
RAMDISK_SIZE = 0x21C
HEAP_END_PTR = 0x224
CMD_LINE_PTR = 0x228
KERNEL_ALIGNMENT = 0x230
E820_TABLE = 0x2D0

LOADER_UNDEFINED = 0xFF  # boot.rst: "0xFF: undefined" for a boot loader without an assigned id
CAN_USE_HEAP = 0x80
HEAP_END = 0xFE00 - 0x200  # what 16-bit setup would use; harmless and expected by tools
ELF_KERNEL_ALIGNMENT = 0x1000000


def build_zero_page(
    *,
    setup_header: bytes | None,
    cmdline_address: int,
    initrd: tuple[int, int] | None,
    rsdp_address: int | None,
    memory_map: Sequence[E820Entry],
) -> bytes:
    """The 4 KiB zero page; `setup_header` is the image's own header (bzImage) or None (ELF)."""
    if len(memory_map) > E820_MAX_ENTRIES_ZEROPAGE:
        raise LoaderError(f"memory map has {len(memory_map)} entries; the zero page holds 128")
    page = bytearray(ZERO_PAGE_SIZE)
    if setup_header is not None:
        page[SETUP_HEADER : SETUP_HEADER + len(setup_header)] = setup_header
        page[LOADFLAGS] |= CAN_USE_HEAP
        struct.pack_into("<H", page, HEAP_END_PTR, HEAP_END)
    else:
        struct.pack_into("<I", page, KERNEL_ALIGNMENT, ELF_KERNEL_ALIGNMENT)
    struct.pack_into("<H", page, BOOT_FLAG, 0xAA55)
    page[HEADER : HEADER + 4] = b"HdrS"
    page[TYPE_OF_LOADER] = LOADER_UNDEFINED
    _pack_split(page, CMD_LINE_PTR, EXT_CMD_LINE_PTR, cmdline_address)
    if initrd is not None:
        _pack_split(page, RAMDISK_IMAGE, EXT_RAMDISK_IMAGE, initrd[0])
        _pack_split(page, RAMDISK_SIZE, EXT_RAMDISK_SIZE, initrd[1])
    if rsdp_address is not None:
        struct.pack_into("<Q", page, ACPI_RSDP_ADDR, rsdp_address)
    page[E820_ENTRIES] = len(memory_map)
    for index, entry in enumerate(memory_map):
        offset = E820_TABLE + 20 * index
        page[offset : offset + 20] = entry.pack_e820()
    return bytes(page)


def _pack_split(page: bytearray, low_offset: int, high_offset: int, value: int) -> None:
    """A 64-bit value stored as the header's u32 plus its ext_* high half."""
    struct.pack_into("<I", page, low_offset, value & 0xFFFF_FFFF)
    struct.pack_into("<I", page, high_offset, value >> 32)
