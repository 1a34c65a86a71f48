"""ACPI tables: byte-level AML encodings, checksums, and what `iasl -d` (acpica-tools)
prints when it decompiles the tables the VMM writes into guest memory."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.guests import FakeGuestMemory
from vmm.acpi import AcpiError, MmioDeviceInfo, aml, build_acpi_tables
from vmm.acpi.dsdt import _mmio_device
from vmm.acpi.tables import checksum

MIB = 1 << 20


def test_pkg_length_encodings() -> None:
    assert aml.pkg_length(0) == b"\x01"
    assert aml.pkg_length(0x3E) == b"\x3f"
    assert aml.pkg_length(0x3F) == b"\x41\x04"  # 0x41 total: 2-byte form
    assert aml.pkg_length(67) == b"\x45\x04"  # the reference device: PkgLength 69
    assert aml.pkg_length(0xFFD) == b"\x4f\xff"
    assert aml.pkg_length(0xFFE) == b"\x81\x00\x01"  # 0x1001 total: 3-byte form


@pytest.mark.parametrize(
    ("length", "expected_total"),
    [(0, 1), (62, 63), (63, 65), (4093, 4095), (4094, 4097), (1 << 20, (1 << 20) + 4)],
)
def test_pkg_length_counts_itself(length: int, expected_total: int) -> None:
    encoded = aml.pkg_length(length)
    lead = encoded[0]
    extra = lead >> 6
    value = lead & 0x3F if extra == 0 else lead & 0x0F
    for index, byte in enumerate(encoded[1:]):
        value |= byte << (4 + 8 * index)
    assert len(encoded) == 1 + extra
    assert value == expected_total == length + len(encoded)


def test_integers_and_strings() -> None:
    assert aml.integer(0) == b"\x00" and aml.integer(1) == b"\x01"
    assert aml.integer(0x0F) == b"\x0a\x0f"
    assert aml.integer(0x3F8) == b"\x0b\xf8\x03"
    assert aml.integer(0xC0001000) == b"\x0c\x00\x10\x00\xc0"
    assert aml.integer(1 << 40) == b"\x0e" + (1 << 40).to_bytes(8, "little")
    assert aml.integer((1 << 64) - 1) == b"\xff"
    assert aml.string("LNRO0005") == b"\x0dLNRO0005\x00"
    assert aml.eisa_id("PNP0501") == b"\x0c\x41\xd0\x05\x01"  # DWord 0x0105D041
    assert aml.name_string("\\_SB_.COM1") == b"\\\x2e_SB_COM1"
    assert aml.name_string("PS2") == b"PS2_"
    assert aml.name_string("\\_SB_.PCI0.ISA_") == b"\\\x2f\x03_SB_PCI0ISA_"
    with pytest.raises(ValueError):
        aml.name_string("com1")
    with pytest.raises(ValueError):
        aml.integer(-1)


def test_package_and_method_encodings() -> None:
    assert aml.package([aml.integer(5), aml.string("a")]) == b"\x12\x07\x02\x0a\x05\x0da\x00"
    assert aml.method("_STA", 0, [aml.return_(aml.integer(0x0F))]) == b"\x14\x09_STA\x00\xa4\x0a\x0f"


def test_virtio_device_matches_the_reference_bytes() -> None:
    """kvm-vmm-reference §4.6 lists the exact bytes of Firecracker's first virtio node."""
    expected = bytes.fromhex(
        "5b824504" "56303030"
        "085f4849440d4c4e524f3030303500" "085f5549440c00000000"
        "085f43434101" "085f435253111a0a17"
        "860900010010 00c0 00100000".replace(" ", "")
        + "890600030105000000" "7900"
    )
    device = MmioDeviceInfo(name="vda", base=0xC0001000, size=0x1000, gsi=5)
    assert _mmio_device(0, device) == expected


def dump_tables(memory: FakeGuestMemory, rsdp_address: int) -> dict[str, bytes]:
    """Follow RSDP -> XSDT -> tables (and FADT -> DSDT) the way a guest does."""
    rsdp = memory.read(rsdp_address, 36)
    assert rsdp[:8] == b"RSD PTR " and rsdp[15] == 2
    assert sum(rsdp[:20]) % 256 == 0 and sum(rsdp) % 256 == 0
    assert struct.unpack_from("<I", rsdp, 16)[0] == 0 and struct.unpack_from("<I", rsdp, 20)[0] == 36
    xsdt_address = struct.unpack_from("<Q", rsdp, 24)[0]
    tables = {}
    addresses = [xsdt_address]
    while addresses:
        address = addresses.pop(0)
        length = memory.u32(address + 4)
        table = memory.read(address, length)
        signature = table[:4].decode()
        tables[signature] = table
        assert 0xE0000 <= address and address + length <= 0x100000, "tables live in the reserved BIOS area"
        if signature == "XSDT":
            addresses += [struct.unpack_from("<Q", table, 36 + 8 * i)[0] for i in range((length - 36) // 8)]
        if signature == "FACP":
            addresses.append(struct.unpack_from("<Q", table, 140)[0])
    return tables


def test_tables_link_up_with_valid_checksums() -> None:
    memory = FakeGuestMemory(16 * MIB)
    rsdp = build_acpi_tables(memory, vcpu_count=3, mmio_devices=[])
    assert rsdp == 0xE0000
    tables = dump_tables(memory, rsdp)
    assert sorted(tables) == ["APIC", "DSDT", "FACP", "XSDT"]
    for signature, table in tables.items():
        assert sum(table) % 256 == 0, signature
    fadt = tables["FACP"]
    assert len(fadt) == 276 and fadt[8] == 6 and fadt[131] == 5
    assert struct.unpack_from("<I", fadt, 112)[0] & (1 << 20), "hardware-reduced"
    assert struct.unpack_from("<H", fadt, 109)[0] == 1 << 2
    madt = tables["APIC"]
    assert struct.unpack_from("<I", madt, 36)[0] == 0xFEE00000
    entries = madt[44:]
    assert entries[:12] == struct.pack("<BBBBII", 1, 12, 0, 0, 0xFEC00000, 0)
    lapics = [entries[12 + 8 * i : 20 + 8 * i] for i in range(3)]
    assert lapics == [struct.pack("<BBBBI", 0, 8, i, i, 1) for i in range(3)]
    assert len(entries) == 12 + 24  # no interrupt source overrides


def test_checksum_helper() -> None:
    data = bytearray(b"abc\x00")
    data[3] = checksum(data)
    assert sum(data) % 256 == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vcpu_count": 0, "mmio_devices": []}, r"vcpu_count must be 1\.\.255"),
        ({"vcpu_count": 256, "mmio_devices": []}, r"vcpu_count must be 1\.\.255"),
        ({"vcpu_count": 1, "mmio_devices": [MmioDeviceInfo("x", 0xFFFFF000, 0x2000, 5)]}, r"device x: window .* is not below 4 GiB"),
        ({"vcpu_count": 1, "mmio_devices": [MmioDeviceInfo(f"d{i}", 0xC0001000 + i * 0x1000, 0x1000, 5) for i in range(1001)]}, r"at most 1000"),
    ],
)
def test_refusals(kwargs, message: str) -> None:
    with pytest.raises(AcpiError, match=message):
        build_acpi_tables(FakeGuestMemory(16 * MIB), **kwargs)


def test_too_little_memory_for_the_bios_area() -> None:
    with pytest.raises(AcpiError, match=r"does not reach the ACPI area"):
        build_acpi_tables(FakeGuestMemory(512 * 1024), vcpu_count=1, mmio_devices=[])


# --- iasl: what an independent ACPI implementation makes of the tables ---------------------

@pytest.fixture(scope="module")
def iasl() -> str:
    path = shutil.which("iasl")
    if path is None:
        pytest.skip("iasl (Debian acpica-tools) is not installed")
    return path


def decompile(iasl: str, directory: Path, signature: str, table: bytes) -> str:
    source = directory / f"{signature.lower()}.dat"
    source.write_bytes(table)
    result = subprocess.run([iasl, "-d", str(source)], capture_output=True, text=True, cwd=directory)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"(?i)\b(warning|error)s?\b(?! *0)", output.replace("0 Errors", "")), output
    return (directory / f"{signature.lower()}.dsl").read_text()


def iasl_tables(iasl: str, tmp_path: Path, vcpu_count: int, devices: list[MmioDeviceInfo]) -> dict[str, str]:
    memory = FakeGuestMemory(16 * MIB)
    tables = dump_tables(memory, build_acpi_tables(memory, vcpu_count=vcpu_count, mmio_devices=devices))
    return {signature: decompile(iasl, tmp_path, signature, table) for signature, table in tables.items()}


VIRTIO_DEVICES = [
    MmioDeviceInfo("rootfs", 0xC0001000, 0x1000, 5),
    MmioDeviceInfo("eth0", 0xC0002000, 0x1000, 6),
    MmioDeviceInfo("rng", 0xC0003000, 0x1000, 7),
]


@pytest.mark.parametrize("vcpu_count", [1, 2, 32])
def test_iasl_madt_lists_one_enabled_lapic_per_vcpu(iasl: str, tmp_path: Path, vcpu_count: int) -> None:
    madt = iasl_tables(iasl, tmp_path, vcpu_count, [])["APIC"]
    assert 'Signature : "APIC"' in madt
    assert len(re.findall(r"Subtable Type : 00 \[Processor Local APIC\]", madt)) == vcpu_count
    assert len(re.findall(r"Processor Enabled : 1", madt)) == vcpu_count
    for index in range(vcpu_count):
        assert re.search(rf"Processor ID : {index:02X}\n.*Local Apic ID : {index:02X}\n", madt)
    assert "Subtable Type : 01 [I/O APIC]" in madt
    assert "Address : FEC00000" in madt and "Interrupt : 00000000" in madt
    assert "Local Apic Address : FEE00000" in madt
    assert "Interrupt Source Override" not in madt


def test_iasl_fadt_is_hardware_reduced(iasl: str, tmp_path: Path) -> None:
    fadt = iasl_tables(iasl, tmp_path, 1, [])["FACP"]
    assert 'Signature : "FACP"' in fadt and "Revision : 06" in fadt
    assert re.search(r"Hardware Reduced \(V5\) : 1", fadt)
    assert re.search(r"Control Method Power Button \(V1\) : 1", fadt)
    assert re.search(r"Control Method Sleep Button \(V1\) : 1", fadt)
    assert re.search(r"VGA Not Present \(V4\) : 1", fadt)
    assert re.search(r"8042 Present on ports 60/64 \(V2\) : 0", fadt)
    assert "Hypervisor ID : 4D564B444B435453" in fadt  # "STCKDKVM" as a little-endian u64


def test_iasl_xsdt_points_at_fadt_and_madt(iasl: str, tmp_path: Path) -> None:
    xsdt = iasl_tables(iasl, tmp_path, 1, [])["XSDT"]
    assert len(re.findall(r"ACPI Table Address\s+\d+ : ", xsdt)) == 2


def test_iasl_dsdt_devices_and_resources(iasl: str, tmp_path: Path) -> None:
    dsdt = iasl_tables(iasl, tmp_path, 2, VIRTIO_DEVICES)["DSDT"]
    assert 'DefinitionBlock ("", "DSDT", 2, "STCKDE", "STCKVMM ", 0x00000001)' in dsdt
    assert re.search(r'Device \(COM1\)\s*\{\s*Name \(_HID, EisaId \("PNP0501"\)', dsdt)
    assert re.search(r"IO \(Decode16,\s*0x03F8,[^)]*0x08,", dsdt) and "{4}" in dsdt
    assert re.search(r'Device \(PS2\)\s*\{\s*Name \(_HID, EisaId \("PNP0303"\)', dsdt)
    assert re.search(r"Method \(_STA, 0, NotSerialized\).*\s*\{\s*Return \(0x0F\)", dsdt)
    assert "0x0060," in dsdt and "0x0064," in dsdt and "{1}" in dsdt
    assert dsdt.count('Name (_HID, "LNRO0005")') == 3
    for index, device in enumerate(VIRTIO_DEVICES):
        block = re.search(rf"Device \(V{index:03d}\)(.*?)\}}\)", dsdt, re.S)
        assert block, f"V{index:03d} missing"
        body = block.group(1)
        assert f"0x{device.base:08X},         // Address Base" in body
        assert "0x00001000,         // Address Length" in body
        assert "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )" in body
        assert f"0x{device.gsi:08X}," in body
        assert "Name (_CCA, One)" in body


@pytest.mark.parametrize("signature", ["DSDT", "APIC", "FACP", "XSDT"])
def test_iasl_recompiles_every_table_without_errors_or_warnings(iasl: str, tmp_path: Path, signature: str) -> None:
    iasl_tables(iasl, tmp_path, 2, VIRTIO_DEVICES)
    result = subprocess.run([iasl, f"{signature.lower()}.dsl"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Compilation successful. 0 Errors, 0 Warnings, 0 Remarks" in result.stdout, result.stdout


def test_iasl_notices_a_bad_checksum(iasl: str, tmp_path: Path) -> None:
    """The decompile checks above would catch a checksum bug: iasl does complain."""
    memory = FakeGuestMemory(16 * MIB)
    madt = bytearray(dump_tables(memory, build_acpi_tables(memory, vcpu_count=1, mmio_devices=[]))["APIC"])
    madt[9] ^= 0x01
    (tmp_path / "bad.dat").write_bytes(madt)
    result = subprocess.run([iasl, "-d", "bad.dat"], capture_output=True, text=True, cwd=tmp_path)
    assert re.search(r"(?i)incorrect checksum", result.stdout + result.stderr + (tmp_path / "bad.dsl").read_text())


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 28) - 5))
def test_pkg_length_round_trip_property(length: int) -> None:
    encoded = aml.pkg_length(length)
    extra = encoded[0] >> 6
    value = encoded[0] & (0x3F if extra == 0 else 0x0F)
    for index, byte in enumerate(encoded[1:]):
        value |= byte << (4 + 8 * index)
    assert value == length + len(encoded)
    if extra:
        assert encoded[0] & 0x30 == 0, "bits 4-5 of a multi-byte lead are reserved"
    shorter = len(encoded) - 1
    assert shorter == 0 or length + shorter >= (0x40 if shorter == 1 else 1 << (4 + 8 * (shorter - 1))), "shortest form"
