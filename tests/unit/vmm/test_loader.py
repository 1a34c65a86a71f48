"""Loaders against a bytearray guest memory: bzImage 64-bit protocol, ELF vmlinux, ELF+PVH
note, command line, initrd placement, zero page and PVH start_info contents."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.guests import FakeGuestMemory
from vmm.loader import KernelEntry, LoaderError, load_kernel
from vmm.loader.e820 import E820_RAM, E820_RESERVED, E820Entry, build_memory_map
from vmm.loader.initrd import place_initrd
from vmm.loader.layout import (
    CMDLINE_ADDRESS,
    KERNEL_LOAD_ADDRESS,
    PVH_MEMMAP_ADDRESS,
    PVH_MODLIST_ADDRESS,
    PVH_START_INFO_ADDRESS,
    ZERO_PAGE_ADDRESS,
)

MIB = 1 << 20
GIB = 1 << 30


def make_bzimage(
    *,
    payload: bytes = b"\x90" * 0x400,
    setup_sects: int = 2,
    version: int = 0x020F,
    xloadflags: int = 0x1,
    loadflags: int = 0x1,
    initrd_addr_max: int = 0x7FFFFFFF,
    cmdline_size: int = 2047,
    init_size: int = 0x10000,
    pref_address: int = KERNEL_LOAD_ADDRESS,
    kernel_alignment: int = 0x200000,
) -> bytes:
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200:0x202] = b"\xeb\x66"  # jmp over the header; byte 0x201 = header length - 2
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    setup[0x211] = loadflags
    struct.pack_into("<I", setup, 0x214, KERNEL_LOAD_ADDRESS)
    struct.pack_into("<I", setup, 0x22C, initrd_addr_max)
    struct.pack_into("<I", setup, 0x230, kernel_alignment)
    setup[0x234] = 1
    struct.pack_into("<H", setup, 0x236, xloadflags)
    struct.pack_into("<I", setup, 0x238, cmdline_size)
    struct.pack_into("<Q", setup, 0x258, pref_address)
    struct.pack_into("<I", setup, 0x260, init_size)
    return bytes(setup) + payload


def make_elf64(
    segments: list[tuple[int, bytes, int]],
    *,
    entry: int,
    pvh_entry: int | None = None,
    pvh_desc_size: int = 8,
    elf_class: int = 2,
    machine: int = 62,
) -> bytes:
    """segments: (paddr, file bytes, memsz)."""
    notes = b""
    if pvh_entry is not None:
        other = struct.pack("<III", 4, 4, 1) + b"GNU\0" + b"abcd"  # a note to skip over
        desc = pvh_entry.to_bytes(pvh_desc_size, "little")
        notes = other + struct.pack("<III", 4, len(desc), 18) + b"Xen\0" + desc
    phnum = len(segments) + (1 if notes else 0)
    data_offset = 64 + 56 * phnum
    header = bytearray(b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9))
    header += struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, entry, 64, 0, 0, 64, 56, phnum, 64, 0, 0)
    program_headers = b""
    body = b""
    for paddr, data, memsz in segments:
        offset = data_offset + len(body)
        program_headers += struct.pack("<IIQQQQQQ", 1, 5, offset, paddr | 0xFFFFFFFF80000000, paddr, len(data), memsz, 0x1000)
        body += data
    if notes:
        offset = data_offset + len(body)
        program_headers += struct.pack("<IIQQQQQQ", 4, 4, offset, 0, 0, len(notes), len(notes), 4)
        body += notes
    return bytes(header) + program_headers + body


@pytest.fixture
def write_file(tmp_path: Path):
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


def e820_from_zero_page(memory: FakeGuestMemory) -> list[E820Entry]:
    count = memory.u8(ZERO_PAGE_ADDRESS + 0x1E8)
    entries = []
    for index in range(count):
        address, size, kind = struct.unpack(
            "<QQI", memory.read(ZERO_PAGE_ADDRESS + 0x2D0 + 20 * index, 20)
        )
        entries.append(E820Entry(address, size, kind))
    return entries


def test_bzimage_loads_protected_mode_part_at_1mib_and_enters_at_plus_0x200(write_file) -> None:
    payload = bytes(range(256)) * 8
    image = make_bzimage(payload=payload, setup_sects=3)
    memory = FakeGuestMemory(64 * MIB)
    entry = load_kernel(memory, write_file("bz", image), cmdline="console=ttyS0 reboot=k", initrd_path=None, rsdp_address=0xE0000)
    assert entry == KernelEntry("linux64", KERNEL_LOAD_ADDRESS + 0x200, ZERO_PAGE_ADDRESS)
    assert memory.read(KERNEL_LOAD_ADDRESS, len(payload)) == payload
    assert memory.read(KERNEL_LOAD_ADDRESS - 512, 512) == bytes(512)  # setup code is not loaded


def test_bzimage_zero_page_fields(write_file) -> None:
    image = make_bzimage()
    memory = FakeGuestMemory(64 * MIB)
    load_kernel(memory, write_file("bz", image), cmdline="console=ttyS0", initrd_path=None, rsdp_address=0xE0000)
    zp = ZERO_PAGE_ADDRESS
    assert memory.read(zp + 0x202, 4) == b"HdrS"
    assert memory.u16(zp + 0x1FE) == 0xAA55
    assert memory.u16(zp + 0x206) == 0x020F  # the image's own header is copied
    assert memory.u16(zp + 0x236) == 0x1  # xloadflags copied
    assert memory.u8(zp + 0x210) == 0xFF  # type_of_loader: undefined
    assert memory.u8(zp + 0x211) == 0x01 | 0x80  # LOADED_HIGH kept, CAN_USE_HEAP added
    assert memory.u16(zp + 0x224) == 0xFE00 - 0x200  # heap_end_ptr
    assert memory.u32(zp + 0x228) == CMDLINE_ADDRESS and memory.u32(zp + 0xC8) == 0
    assert memory.u64(zp + 0x070) == 0xE0000  # acpi_rsdp_addr
    assert memory.u32(zp + 0x218) == 0 and memory.u32(zp + 0x21C) == 0  # no initrd
    assert memory.cstring(CMDLINE_ADDRESS) == b"console=ttyS0"


def test_e820_layout_below_3gib(write_file) -> None:
    memory = FakeGuestMemory(128 * MIB)
    load_kernel(memory, write_file("bz", make_bzimage()), cmdline="", initrd_path=None, rsdp_address=None)
    assert e820_from_zero_page(memory) == [
        E820Entry(0, 0x9FC00, E820_RAM),
        E820Entry(0x9FC00, 0x100000 - 0x9FC00, E820_RESERVED),
        E820Entry(0x100000, 128 * MIB - 0x100000, E820_RAM),
    ]
    assert memory.u64(ZERO_PAGE_ADDRESS + 0x070) == 0  # no RSDP given, none claimed


def test_e820_follows_regions_above_4gib() -> None:
    assert build_memory_map([(1 << 32, GIB), (0, 3 * GIB)]) == [
        E820Entry(0, 0x9FC00, E820_RAM),
        E820Entry(0x9FC00, 0x60400, E820_RESERVED),
        E820Entry(0x100000, 3 * GIB - 0x100000, E820_RAM),
        E820Entry(1 << 32, GIB, E820_RAM),
    ]


def test_bzimage_initrd_goes_high_and_aligned(write_file) -> None:
    initrd = bytes(range(251)) * 41  # not a multiple of a page
    memory = FakeGuestMemory(64 * MIB)
    load_kernel(memory, write_file("bz", make_bzimage()), cmdline="", initrd_path=write_file("initrd", initrd), rsdp_address=None)
    address, size = memory.u32(ZERO_PAGE_ADDRESS + 0x218), memory.u32(ZERO_PAGE_ADDRESS + 0x21C)
    assert size == len(initrd)
    assert address == (64 * MIB - len(initrd)) // 4096 * 4096
    assert memory.read(address, size) == initrd
    assert memory.u32(ZERO_PAGE_ADDRESS + 0xC0) == 0 and memory.u32(ZERO_PAGE_ADDRESS + 0xC4) == 0


def test_bzimage_initrd_respects_initrd_addr_max(write_file) -> None:
    memory = FakeGuestMemory(64 * MIB)
    image = make_bzimage(initrd_addr_max=0x3FFFFF)
    load_kernel(memory, write_file("bz", image), cmdline="", initrd_path=write_file("i", b"x" * 5000), rsdp_address=None)
    address = memory.u32(ZERO_PAGE_ADDRESS + 0x218)
    assert address + 5000 <= 0x400000 and address == (0x400000 - 5000) // 4096 * 4096


def test_initrd_must_stay_above_the_decompression_window(write_file) -> None:
    # The kernel runs at pref_address 16 MiB and needs init_size 40 MiB: RAM to 56 MiB is its.
    image = make_bzimage(pref_address=16 * MIB, init_size=40 * MIB)
    memory = FakeGuestMemory(60 * MIB)
    with pytest.raises(LoaderError, match=r"initrd of 5242880 bytes does not fit in guest memory"):
        load_kernel(memory, write_file("bz", image), cmdline="", initrd_path=write_file("i", bytes(5 * MIB)), rsdp_address=None)
    entry = load_kernel(memory, write_file("bz", image), cmdline="", initrd_path=write_file("i", bytes(3 * MIB)), rsdp_address=None)
    assert entry.protocol == "linux64"
    assert memory.u32(ZERO_PAGE_ADDRESS + 0x218) >= 56 * MIB


def test_kernel_larger_than_ram_is_refused(write_file) -> None:
    image = make_bzimage(pref_address=16 * MIB, init_size=60 * MIB)
    with pytest.raises(LoaderError, match=r"needs guest RAM at 0x100000\.\.0x4c00000, beyond the guest's 32 MiB"):
        load_kernel(FakeGuestMemory(32 * MIB), write_file("bz", image), cmdline="", initrd_path=None, rsdp_address=None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"xloadflags": 0x2}, r"has no 64-bit entry point \(XLF_KERNEL_64 not set\)"),
        ({"version": 0x020B}, r"uses boot protocol 2\.11; the 64-bit entry needs 2\.12 or later"),
        ({"loadflags": 0}, r"is a zImage"),
    ],
)
def test_bzimage_refusals(write_file, overrides: dict[str, int], message: str) -> None:
    with pytest.raises(LoaderError, match=message):
        load_kernel(FakeGuestMemory(64 * MIB), write_file("bz", make_bzimage(**overrides)), cmdline="", initrd_path=None, rsdp_address=None)


def test_unknown_format_and_missing_files(write_file, tmp_path: Path) -> None:
    memory = FakeGuestMemory(16 * MIB)
    junk = write_file("junk", b"MZ" + bytes(4096))
    with pytest.raises(LoaderError, match=rf"^unknown kernel image format: {junk}$"):
        load_kernel(memory, junk, cmdline="", initrd_path=None, rsdp_address=None)
    with pytest.raises(LoaderError, match=rf"^kernel image not found: {tmp_path}/nope$"):
        load_kernel(memory, tmp_path / "nope", cmdline="", initrd_path=None, rsdp_address=None)
    with pytest.raises(LoaderError, match=rf"^initrd not found: {tmp_path}/noinitrd$"):
        load_kernel(memory, write_file("bz", make_bzimage()), cmdline="", initrd_path=tmp_path / "noinitrd", rsdp_address=None)
    with pytest.raises(LoaderError, match=r"^initrd is empty"):
        load_kernel(memory, write_file("bz", make_bzimage()), cmdline="", initrd_path=write_file("e", b""), rsdp_address=None)


def test_cmdline_limits(write_file) -> None:
    memory = FakeGuestMemory(16 * MIB)
    kernel = write_file("bz", make_bzimage(cmdline_size=255))
    load_kernel(memory, kernel, cmdline="a" * 255, initrd_path=None, rsdp_address=None)
    assert memory.cstring(CMDLINE_ADDRESS) == b"a" * 255
    with pytest.raises(LoaderError, match=r"^kernel command line is 256 bytes; the limit is 255$"):
        load_kernel(memory, kernel, cmdline="a" * 256, initrd_path=None, rsdp_address=None)
    elf = write_file("elf", make_elf64([(KERNEL_LOAD_ADDRESS, b"\xf4", 1)], entry=KERNEL_LOAD_ADDRESS))
    with pytest.raises(LoaderError, match=r"the limit is 2047$"):
        load_kernel(memory, elf, cmdline="b" * 2048, initrd_path=None, rsdp_address=None)
    with pytest.raises(LoaderError, match=r"must be ASCII"):
        load_kernel(memory, elf, cmdline="é", initrd_path=None, rsdp_address=None)


def test_elf_vmlinux_loads_segments_at_physical_addresses(write_file) -> None:
    text, data = b"\x48\x31\xc0\xf4" * 64, b"DATA" * 16
    image = make_elf64([(2 * MIB, text, len(text)), (3 * MIB, data, len(data) + 4096)], entry=2 * MIB + 0x40)
    memory = FakeGuestMemory(16 * MIB)
    memory.write(3 * MIB + len(data), b"\xff" * 4096)  # stale bytes where .bss goes
    entry = load_kernel(memory, write_file("vmlinux", image), cmdline="root=/dev/vda", initrd_path=write_file("i", b"I" * 100), rsdp_address=0xE0000)
    assert entry == KernelEntry("linux64", 2 * MIB + 0x40, ZERO_PAGE_ADDRESS)
    assert memory.read(2 * MIB, len(text)) == text
    assert memory.read(3 * MIB, len(data)) == data
    assert memory.read(3 * MIB + len(data), 4096) == bytes(4096)
    zp = ZERO_PAGE_ADDRESS
    assert memory.read(zp + 0x202, 4) == b"HdrS" and memory.u16(zp + 0x1FE) == 0xAA55
    assert memory.u8(zp + 0x210) == 0xFF and memory.u32(zp + 0x230) == 0x1000000
    assert memory.u32(zp + 0x21C) == 100 and memory.read(memory.u32(zp + 0x218), 100) == b"I" * 100
    assert memory.cstring(CMDLINE_ADDRESS) == b"root=/dev/vda"


@pytest.mark.parametrize("desc_size", [4, 8])
def test_elf_with_pvh_note_boots_pvh(write_file, desc_size: int) -> None:
    image = make_elf64([(KERNEL_LOAD_ADDRESS, b"\xf4" * 32, 32)], entry=0x1000000, pvh_entry=KERNEL_LOAD_ADDRESS + 8, pvh_desc_size=desc_size)
    memory = FakeGuestMemory(32 * MIB)
    initrd = b"initrd-bytes" * 10
    entry = load_kernel(memory, write_file("pvh", image), cmdline="pvh=1", initrd_path=write_file("i", initrd), rsdp_address=0xE0000)
    assert entry == KernelEntry("pvh", KERNEL_LOAD_ADDRESS + 8, PVH_START_INFO_ADDRESS)
    magic, version, flags, nr_modules, modlist, cmdline, rsdp, memmap, entries, _ = struct.unpack(
        "<IIIIQQQQII", memory.read(PVH_START_INFO_ADDRESS, 56)
    )
    assert (magic, version, flags, nr_modules) == (0x336EC578, 1, 0, 1)
    assert (modlist, cmdline, rsdp, memmap) == (PVH_MODLIST_ADDRESS, CMDLINE_ADDRESS, 0xE0000, PVH_MEMMAP_ADDRESS)
    paddr, size, module_cmdline, _ = struct.unpack("<QQQQ", memory.read(PVH_MODLIST_ADDRESS, 32))
    assert size == len(initrd) and memory.read(paddr, size) == initrd and module_cmdline == 0
    table = [struct.unpack("<QQII", memory.read(memmap + 24 * i, 24))[:3] for i in range(entries)]
    assert table == [(0, 0x9FC00, 1), (0x9FC00, 0x60400, 2), (0x100000, 31 * MIB, 1)]
    assert memory.cstring(CMDLINE_ADDRESS) == b"pvh=1"


def test_pvh_without_initrd_has_no_modules(write_file) -> None:
    image = make_elf64([(KERNEL_LOAD_ADDRESS, b"\xf4", 1)], entry=0, pvh_entry=KERNEL_LOAD_ADDRESS)
    memory = FakeGuestMemory(8 * MIB)
    load_kernel(memory, write_file("pvh", image), cmdline="", initrd_path=None, rsdp_address=None)
    assert memory.u32(PVH_START_INFO_ADDRESS + 12) == 0 and memory.u64(PVH_START_INFO_ADDRESS + 16) == 0
    assert memory.u64(PVH_START_INFO_ADDRESS + 32) == 0


@pytest.mark.parametrize(
    ("kwargs", "segments", "message"),
    [
        ({"elf_class": 1}, [(KERNEL_LOAD_ADDRESS, b"x", 1)], r"is not a 64-bit little-endian ELF"),
        ({"machine": 183}, [(KERNEL_LOAD_ADDRESS, b"x", 1)], r"is for machine 183, not x86-64"),
        ({}, [(0x8000, b"x", 1)], r"loads a segment at 0x8000, inside the boot area below 1 MiB"),
        ({}, [(15 * MIB, b"x", 2 * MIB)], r"needs guest RAM at 0xf00000\.\.0x1100000, beyond the guest's 16 MiB"),
    ],
)
def test_elf_refusals(write_file, kwargs: dict[str, int], segments, message: str) -> None:
    image = make_elf64(segments, entry=KERNEL_LOAD_ADDRESS, **kwargs)
    with pytest.raises(LoaderError, match=message):
        load_kernel(FakeGuestMemory(16 * MIB), write_file("elf", image), cmdline="", initrd_path=None, rsdp_address=None)


@settings(max_examples=200, deadline=None)
@given(
    memory_mib=st.integers(min_value=2, max_value=4096),
    size=st.integers(min_value=1, max_value=1 << 31),
    kernel_end=st.integers(min_value=0x100000, max_value=1 << 30),
    address_max=st.integers(min_value=0x100000, max_value=(1 << 32) - 1),
)
def test_initrd_placement_property(memory_mib: int, size: int, kernel_end: int, address_max: int) -> None:
    memory = FakeGuestMemory(memory_mib * MIB, backed=0)
    low_end = min(memory_mib * MIB, 0xC000_0000)
    try:
        address = place_initrd(memory, size, kernel_end=kernel_end, address_max=address_max)
    except LoaderError as error:
        assert "does not fit" in str(error)
        ceiling = min(low_end, address_max + 1)
        assert (ceiling - size) // 4096 * 4096 < kernel_end
        return
    assert address % 4096 == 0
    assert kernel_end <= address
    assert address + size <= low_end and address + size <= address_max + 1
    # highest: one more page up would break a bound
    assert address + 4096 + size > min(low_end, address_max + 1)


def test_loader_and_acpi_on_the_real_guest_memory(write_file) -> None:
    """The same calls the VMM builder makes, against vmm.memory.GuestMemory (mmap-backed)."""
    from vmm.acpi import MmioDeviceInfo, build_acpi_tables
    from vmm.memory import GuestMemory

    memory = GuestMemory(64 * MIB)
    try:
        rsdp = build_acpi_tables(memory, vcpu_count=2, mmio_devices=[MmioDeviceInfo("vda", 0xC0001000, 0x1000, 5)])
        image = make_elf64([(KERNEL_LOAD_ADDRESS, b"\xf4" * 16, 16)], entry=0, pvh_entry=KERNEL_LOAD_ADDRESS)
        entry = load_kernel(memory, write_file("pvh", image), cmdline="a=b", initrd_path=write_file("i", b"Z" * 10), rsdp_address=rsdp)
        assert entry.protocol == "pvh"
        assert struct.unpack("<Q", memory.read(PVH_START_INFO_ADDRESS + 32, 8))[0] == rsdp == 0xE0000
        assert memory.read(rsdp, 8) == b"RSD PTR "
        assert memory.read(KERNEL_LOAD_ADDRESS, 16) == b"\xf4" * 16
        assert memory.read(CMDLINE_ADDRESS, 4) == b"a=b\0"
    finally:
        memory.close()


@settings(max_examples=200, deadline=None)
@given(size=st.integers(min_value=1, max_value=1 << 40).map(lambda n: n * 4096))
def test_memory_map_property(size: int) -> None:
    """Sorted, disjoint, all of RAM except the system area, and that area always reserved."""
    from vmm.memory import ram_regions

    regions = ram_regions(size)
    entries = build_memory_map(regions)
    for before, after in zip(entries, entries[1:]):
        assert before.end <= after.address
    ram = sum(entry.size for entry in entries if entry.kind == E820_RAM)
    low = regions[0][1]
    hidden = max(0, min(low, 0x100000) - 0x9FC00)
    assert ram == size - hidden
    assert E820Entry(0x9FC00, 0x60400, E820_RESERVED) in entries
    assert all(entry.end <= 0xC000_0000 or entry.address >= 1 << 32 for entry in entries)
