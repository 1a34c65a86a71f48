"""ACPI table encodings (ACPI 6.5 §5.2): RSDP, the SDT header, XSDT, FADT, MADT, DSDT."""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Sequence

OEM_ID = b"STCKDE"
OEM_TABLE_ID = b"STCKVMM "
OEM_REVISION = 1
CREATOR_ID = b"STCK"
CREATOR_REVISION = 1
HYPERVISOR_VENDOR_ID = b"STCKDKVM"
SDT_HEADER_SIZE = 36

FADT_REVISION = 6
FADT_MINOR_REVISION = 5
FADT_SIZE = 276
FADT_FLAG_PWR_BUTTON = 1 << 4
FADT_FLAG_SLP_BUTTON = 1 << 5
FADT_FLAG_HW_REDUCED_ACPI = 1 << 20
IAPC_BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2

MADT_REVISION = 6
MADT_TYPE_LOCAL_APIC = 0
MADT_TYPE_IO_APIC = 1
MADT_LOCAL_APIC_ENABLED = 1

DSDT_REVISION = 2
XSDT_REVISION = 1


def checksum(data: bytes | bytearray) -> int:
    """The byte that makes the sum of all bytes zero (mod 256)."""
    return -sum(data) & 0xFF


def sdt(signature: bytes, revision: int, body: bytes) -> bytes:
    """A complete System Description Table: header (with length and checksum) + body."""
    length = SDT_HEADER_SIZE + len(body)
    table = bytearray(
        struct.pack(
            "<4sIBB6s8sI4sI",
            signature,
            length,
            revision,
            0,
            OEM_ID,
            OEM_TABLE_ID,
            OEM_REVISION,
            CREATOR_ID,
            CREATOR_REVISION,
        )
        + body
    )
    table[9] = checksum(table)
    return bytes(table)


def rsdp(xsdt_address: int) -> bytes:
    """RSDP revision 2 (ACPI 2.0+): no RSDT, only the XSDT."""
    table = bytearray(struct.pack("<8sB6sBIIQB3x", b"RSD PTR ", 0, OEM_ID, 2, 0, 36, xsdt_address, 0))
    table[8] = checksum(table[:20])
    table[32] = checksum(table)
    return bytes(table)


def xsdt(table_addresses: Sequence[int]) -> bytes:
    return sdt(b"XSDT", XSDT_REVISION, b"".join(struct.pack("<Q", address) for address in table_addresses))


def fadt(dsdt_address: int) -> bytes:
    """Hardware-reduced FADT: no PM/GPE blocks, no SCI, no legacy 8259/PIT claims to make;
    the kernel takes power/sleep buttons as absent fixed-feature hardware."""
    body = bytearray(FADT_SIZE - SDT_HEADER_SIZE)

    def put(offset: int, fmt: str, value: int | bytes) -> None:
        struct.pack_into(fmt, body, offset - SDT_HEADER_SIZE, value)

    put(109, "<H", IAPC_BOOT_ARCH_VGA_NOT_PRESENT)
    put(112, "<I", FADT_FLAG_HW_REDUCED_ACPI | FADT_FLAG_PWR_BUTTON | FADT_FLAG_SLP_BUTTON)
    put(131, "<B", FADT_MINOR_REVISION)
    put(140, "<Q", dsdt_address)
    put(268, "<8s", HYPERVISOR_VENDOR_ID)
    return sdt(b"FACP", FADT_REVISION, bytes(body))


def madt(*, vcpu_count: int, lapic_address: int, ioapic_address: int) -> bytes:
    """One IOAPIC (id 0, GSI base 0) and one enabled Local APIC per vCPU (uid = APIC id = i).

    No interrupt source overrides: KVM's default routing wires ISA IRQ n to IOAPIC pin n,
    edge/active-high, which is what the absence of overrides means to the guest.
    """
    if not 1 <= vcpu_count <= 255:
        raise ValueError(f"vcpu_count must be 1..255 for xAPIC entries, got {vcpu_count}")
    entries = struct.pack("<BBBBII", MADT_TYPE_IO_APIC, 12, 0, 0, ioapic_address, 0)
    for index in range(vcpu_count):
        entries += struct.pack("<BBBBI", MADT_TYPE_LOCAL_APIC, 8, index, index, MADT_LOCAL_APIC_ENABLED)
    return sdt(b"APIC", MADT_REVISION, struct.pack("<II", lapic_address, 0) + entries)


def dsdt(aml: bytes) -> bytes:
    return sdt(b"DSDT", DSDT_REVISION, aml)
