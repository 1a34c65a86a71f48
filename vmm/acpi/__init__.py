"""ACPI tables for the guest: RSDP -> XSDT -> FADT (hardware-reduced, -> DSDT) and MADT.

A stock kernel without MP-table parsing learns its CPUs and IOAPIC only from the MADT, and
finds virtio-mmio devices only through `LNRO0005` nodes in the DSDT, so these are written
for every boot. The VMM builder calls this before the loader and passes the RSDP address on.
`MmioDeviceInfo` is a plain class (start-up path: see `vmm`).
"""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from vmm.loader.ram import GuestMemoryLike

__all__ = ["AcpiError", "MmioDeviceInfo", "build_acpi_tables"]


class AcpiError(ValueError):
    """The requested machine cannot be described (too many vCPUs or devices, too little RAM)."""


class MmioDeviceInfo:
    """A memory-mapped device the guest must discover: its window and its interrupt."""

    __slots__ = ("name", "base", "size", "gsi", "hid")

    def __init__(self, name: str, base: int, size: int, gsi: int, hid: str = "LNRO0005") -> None:
        self.name = name
        self.base = base
        self.size = size
        self.gsi = gsi
        self.hid = hid


def build_acpi_tables(memory: GuestMemoryLike, *, vcpu_count: int, mmio_devices: Sequence[MmioDeviceInfo]) -> int:
    """Write the tables into the reserved BIOS area of guest memory; return the RSDP address."""
    from vmm.acpi.build import write_tables

    return write_tables(memory, vcpu_count=vcpu_count, mmio_devices=mmio_devices)
