"""Xen PVH boot information: `struct hvm_start_info`, its module list and memory map
(xen/include/public/arch-x86/hvm/start_info.h, version 1)."""

from __future__ import annotations

import struct

from vmm.loader.errors import LoaderError
from vmm.loader.layout import (
    PVH_MEMMAP_ADDRESS,
    PVH_MEMMAP_MAX_ENTRIES,
    PVH_MODLIST_ADDRESS,
    PVH_START_INFO_ADDRESS,
)

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from vmm.loader.e820 import E820Entry

START_INFO_MAGIC = 0x336EC578
START_INFO_VERSION = 1
START_INFO_FORMAT = "<IIIIQQQQII"  # 56 bytes
MODLIST_ENTRY_FORMAT = "<QQQQ"  # 32 bytes


def build_pvh_boot_info(
    *,
    cmdline_address: int,
    initrd: tuple[int, int] | None,
    rsdp_address: int | None,
    memory_map: Sequence[E820Entry],
) -> dict[int, bytes]:
    """The blobs to write, keyed by guest address: start_info, modlist (if any), memmap."""
    if len(memory_map) > PVH_MEMMAP_MAX_ENTRIES:
        raise LoaderError(f"memory map has {len(memory_map)} entries; at most {PVH_MEMMAP_MAX_ENTRIES} fit")
    blobs: dict[int, bytes] = {}
    if initrd is not None:
        blobs[PVH_MODLIST_ADDRESS] = struct.pack(MODLIST_ENTRY_FORMAT, initrd[0], initrd[1], 0, 0)
    blobs[PVH_MEMMAP_ADDRESS] = b"".join(entry.pack_pvh() for entry in memory_map)
    start_info = struct.pack(
        START_INFO_FORMAT,
        START_INFO_MAGIC,
        START_INFO_VERSION,
        0,
        1 if initrd is not None else 0,
        PVH_MODLIST_ADDRESS if initrd is not None else 0,
        cmdline_address,
        rsdp_address or 0,
        PVH_MEMMAP_ADDRESS,
        len(memory_map),
        0,
    )
    blobs[PVH_START_INFO_ADDRESS] = start_info
    return blobs
