"""The guest's physical memory map, as both the zero page (e820) and PVH (memmap) carry it."""

from __future__ import annotations

import struct

from vmm.loader.layout import EBDA_START, SYSTEM_AREA_END
from vmm.value import Value

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Iterable

E820_RAM = 1
E820_RESERVED = 2
E820_MAX_ENTRIES_ZEROPAGE = 128


class E820Entry(Value):
    __slots__ = ("address", "size", "kind")

    def __init__(self, address: int, size: int, kind: int) -> None:
        self.address = address
        self.size = size
        self.kind = kind

    @property
    def end(self) -> int:
        return self.address + self.size

    def pack_e820(self) -> bytes:
        """20-byte `struct boot_e820_entry`."""
        return struct.pack("<QQI", self.address, self.size, self.kind)

    def pack_pvh(self) -> bytes:
        """24-byte `struct hvm_memmap_table_entry` (the type values are the same)."""
        return struct.pack("<QQII", self.address, self.size, self.kind, 0)


def build_memory_map(regions: Iterable[tuple[int, int]]) -> list[E820Entry]:
    """RAM below the EBDA, the reserved system area up to 1 MiB, then RAM from 1 MiB on.

    The kernel must never treat 0x9FC00..1 MiB as RAM: the ACPI tables live there and
    the legacy VGA/BIOS window is in it. Every other byte of every RAM region is RAM.
    """
    entries: list[E820Entry] = []
    reserved_added = False
    for start, length in sorted(regions):
        end = start + length
        if start < EBDA_START:
            entries.append(E820Entry(start, min(end, EBDA_START) - start, E820_RAM))
        if start < SYSTEM_AREA_END and not reserved_added:
            entries.append(E820Entry(EBDA_START, SYSTEM_AREA_END - EBDA_START, E820_RESERVED))
            reserved_added = True
        ram_start = max(start, SYSTEM_AREA_END)
        if ram_start < end:
            entries.append(E820Entry(ram_start, end - ram_start, E820_RAM))
    return entries
