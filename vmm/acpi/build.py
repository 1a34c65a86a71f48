"""Placement of the tables in guest memory: RSDP at 0xE0000, the rest right after it, all
inside the range the loaders' e820/memmap mark reserved (0x9FC00..1 MiB)."""

from __future__ import annotations

from vmm.acpi import AcpiError
from vmm.acpi import tables
from vmm.acpi.dsdt import build_dsdt_aml
from vmm.loader.layout import ACPI_AREA_END, ACPI_RSDP_ADDRESS, IOAPIC_ADDRESS, LAPIC_ADDRESS

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from vmm.acpi import MmioDeviceInfo
    from vmm.loader.ram import GuestMemoryLike

TABLE_ALIGNMENT = 16


def _align(address: int) -> int:
    return (address + TABLE_ALIGNMENT - 1) // TABLE_ALIGNMENT * TABLE_ALIGNMENT


def write_tables(memory: GuestMemoryLike, *, vcpu_count: int, mmio_devices: Sequence[MmioDeviceInfo]) -> int:
    if memory.size < ACPI_AREA_END:
        raise AcpiError(f"guest memory of {memory.size} bytes does not reach the ACPI area at {ACPI_RSDP_ADDRESS:#x}")
    try:
        madt = tables.madt(vcpu_count=vcpu_count, lapic_address=LAPIC_ADDRESS, ioapic_address=IOAPIC_ADDRESS)
    except ValueError as error:
        raise AcpiError(str(error)) from None
    dsdt = tables.dsdt(build_dsdt_aml(mmio_devices))

    dsdt_address = _align(ACPI_RSDP_ADDRESS + 36)
    fadt_address = _align(dsdt_address + len(dsdt))
    fadt = tables.fadt(dsdt_address)
    madt_address = _align(fadt_address + len(fadt))
    xsdt_address = _align(madt_address + len(madt))
    xsdt = tables.xsdt([fadt_address, madt_address])
    if xsdt_address + len(xsdt) > ACPI_AREA_END:
        raise AcpiError(f"ACPI tables need {xsdt_address + len(xsdt) - ACPI_RSDP_ADDRESS} bytes; the BIOS area holds 128 KiB")

    for address, table in (
        (ACPI_RSDP_ADDRESS, tables.rsdp(xsdt_address)),
        (dsdt_address, dsdt),
        (fadt_address, fadt),
        (madt_address, madt),
        (xsdt_address, xsdt),
    ):
        memory.write(address, table)
    return ACPI_RSDP_ADDRESS
