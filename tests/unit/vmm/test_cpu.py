"""Boot vCPU state: CPUID normalisation, MSRs, LINTs, GDT/segments, page tables, registers."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

from vmm import cpu
from vmm.kvm.structs import CpuidEntry2, Sregs

# A subset of a real KVM_GET_SUPPORTED_CPUID table (PVM host, AuthenticAMD).
CAPTURED = [
    (0x0, 0, 0, 0x10, 0x68747541, 0x444D4163, 0x69746E65),
    (0x1, 0, 0, 0x830F10, 0x800, 0x81202000 | (1 << 15), 0x178BFBFF),
    (0x7, 0, 1, 0, 0x219C01A9, 0, 0),
    (0xB, 0, 1, 1, 2, 0x100, 7),
    (0x40000000, 0, 0, 0x40000001, 0x4B4D564B, 0x564B4D56, 0x4D),
]


def captured_table() -> list[CpuidEntry2]:
    return [CpuidEntry2(function=f, index=i, flags=fl, eax=a, ebx=b, ecx=c, edx=d) for f, i, fl, a, b, c, d in CAPTURED]


def leaf(entries: list[CpuidEntry2], function: int, index: int = 0) -> CpuidEntry2:
    (found,) = [e for e in entries if e.function == function and e.index == index]
    return found


@pytest.mark.parametrize(("index", "count", "logical"), [(0, 1, 1), (1, 2, 2), (2, 3, 4), (4, 5, 8)])
def test_leaf1_identifies_each_vcpu(index: int, count: int, logical: int) -> None:
    entries = cpu.normalize_cpuid(captured_table(), index, count)
    leaf1 = leaf(entries, 1)
    assert leaf1.ebx >> 24 == index
    assert (leaf1.ebx >> 16) & 0xFF == logical
    assert (leaf1.ebx >> 8) & 0xFF == 8
    assert leaf1.ecx & (1 << 31), "hypervisor bit"
    assert leaf1.ecx & (1 << 24), "TSC deadline"
    assert not leaf1.ecx & (1 << 15), "PDCM cleared"
    assert bool(leaf1.edx & (1 << 28)) == (count > 1)


def test_leaf_b_topology_and_x2apic_id() -> None:
    entries = cpu.normalize_cpuid(captured_table(), 3, 4)
    sub0, sub1 = leaf(entries, 0xB, 0), leaf(entries, 0xB, 1)
    assert sub0.edx == sub1.edx == 3
    assert sub0.flags == sub1.flags == 1
    assert (sub0.eax, sub0.ebx, sub0.ecx) == (0, 1, 0x100)
    assert (sub1.eax, sub1.ebx, sub1.ecx) == (5, 4, 0x201)


def test_normalisation_leaves_the_shared_table_and_other_leaves_alone() -> None:
    table = captured_table()
    before = [bytes(entry) for entry in table]
    entries = cpu.normalize_cpuid(table, 1, 2)
    assert [bytes(entry) for entry in table] == before
    assert bytes(leaf(entries, 0x7)) == bytes(leaf(table, 0x7))
    assert bytes(leaf(entries, 0x40000000)) == bytes(leaf(table, 0x40000000))


def intel_table() -> list[CpuidEntry2]:
    rows = [
        (0x0, 0, 0, 0x1B, 0x756E6547, 0x6C65746E, 0x49656E69),
        (0x4, 0, 1, 0x1C004121, 0, 0, 0),  # L1d
        (0x4, 2, 1, 0x1C004143, 0, 0, 0),  # L2
        (0x4, 3, 1, 0x1C03C163, 0, 0, 0),  # L3
        (0x4, 4, 1, 0, 0, 0, 0),  # end of caches
        (0x6, 0, 0, 0x77, 0, 0x9, 0),
        (0x7, 0, 1, 0, 0x219C01A9, 0x20, 0),
        (0xA, 0, 0, 0x07300805, 0, 0, 0x603),
    ]
    return [CpuidEntry2(function=f, index=i, flags=fl, eax=a, ebx=b, ecx=c, edx=d) for f, i, fl, a, b, c, d in rows]


def test_intel_leaves() -> None:
    entries = cpu.normalize_cpuid(intel_table(), 0, 4)
    l1, l2, l3, end = (leaf(entries, 4, index) for index in (0, 2, 3, 4))
    assert (l1.eax >> 14) & 0xFFF == 0 and (l2.eax >> 14) & 0xFFF == 0 and (l3.eax >> 14) & 0xFFF == 3
    assert l1.eax >> 26 == 3 and l3.eax & 0x3FFF == 0x0163
    assert end.eax == 0
    assert leaf(entries, 6).eax & 2 == 0 and leaf(entries, 6).ecx & 8 == 0
    assert leaf(entries, 7).ebx & ((1 << 6) | (1 << 13)) == (1 << 6) | (1 << 13) and leaf(entries, 7).ecx & 0x20 == 0
    pmu = leaf(entries, 0xA)
    assert (pmu.eax, pmu.ebx, pmu.ecx, pmu.edx) == (0, 0, 0, 0)


def test_amd_leaves() -> None:
    table = captured_table() + [
        CpuidEntry2(function=0x80000001, ecx=0x1),
        CpuidEntry2(function=0x80000008, ecx=0x7003),
    ]
    table[2].edx = 1 << 29
    entries = cpu.normalize_cpuid(table, 0, 2)
    assert leaf(entries, 7).edx & (1 << 29) == 0
    assert leaf(entries, 0x80000001).ecx == 0x1 | (1 << 22)
    assert leaf(entries, 0x80000008).ecx == 0x7001


def test_host_vendor_override() -> None:
    entries = cpu.normalize_cpuid(captured_table(), 0, 1, host_vendor=(1, 2, 3))
    assert (leaf(entries, 0).ebx, leaf(entries, 0).ecx, leaf(entries, 0).edx) == (1, 2, 3)


def test_boot_msrs() -> None:
    msrs = dict(cpu.boot_msrs())
    assert len(msrs) == 11
    assert msrs[0x1A0] == 1 and msrs[0x2FF] == 0x806
    assert all(value == 0 for index, value in msrs.items() if index not in (0x1A0, 0x2FF))


def test_set_lint() -> None:
    page = bytearray(1024)
    struct.pack_into("<I", page, 0x350, 0x700)
    struct.pack_into("<I", page, 0x360, 0x10000)
    result = cpu.set_lint(page)
    assert struct.unpack_from("<I", result, 0x350)[0] == 0x700
    assert struct.unpack_from("<I", result, 0x360)[0] == 0x10400


def test_gdt_entries_match_firecracker_values() -> None:
    assert cpu.LONG_MODE_GDT[1:] == (0x00AF9B000000FFFF, 0x00CF93000000FFFF, 0x008F8B000000FFFF)


def test_long_mode_segments() -> None:
    code = cpu.segment_from_gdt(cpu.LONG_MODE_GDT[1], 1)
    assert (code.selector, code.type, code.l, code.db, code.g, code.s, code.present) == (8, 0xB, 1, 0, 1, 1, 1)
    assert code.limit == 0xFFFFFFFF and code.base == 0 and code.unusable == 0
    data = cpu.segment_from_gdt(cpu.LONG_MODE_GDT[2], 2)
    assert (data.selector, data.type, data.l, data.db, data.s) == (0x10, 3, 0, 1, 1)
    tss = cpu.segment_from_gdt(cpu.LONG_MODE_GDT[3], 3)
    assert (tss.selector, tss.type, tss.s) == (0x18, 0xB, 0)


class FakeMemory:
    def __init__(self) -> None:
        self.data = bytearray(0x10000)

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        self.data[gpa : gpa + len(data)] = data


def test_long_mode_sregs_and_page_tables() -> None:
    memory = FakeMemory()
    sregs = Sregs(cr0=0x60000010)
    cpu.long_mode_sregs(sregs, memory)
    assert sregs.cr0 == 0x80000011, "PG|ET|PE, cache-disable bits cleared"
    assert sregs.cr3 == 0x9000 and sregs.cr4 & 0x20 and sregs.efer & 0x500 == 0x500
    assert (sregs.gdt.base, sregs.gdt.limit, sregs.idt.base, sregs.idt.limit) == (0x500, 31, 0x520, 7)
    assert struct.unpack_from("<4Q", memory.data, 0x500) == cpu.LONG_MODE_GDT
    assert struct.unpack_from("<Q", memory.data, 0x9000)[0] == 0xA003
    assert struct.unpack_from("<Q", memory.data, 0xA000)[0] == 0xB003
    pd = struct.unpack_from("<512Q", memory.data, 0xB000)
    assert pd[0] == 0x83 and pd[511] == (511 << 21) | 0x83


def test_pvh_sregs() -> None:
    memory = FakeMemory()
    sregs = Sregs(cr0=0x60000010, cr4=0x20)
    cpu.pvh_sregs(sregs, memory)
    assert sregs.cr0 == 0x11 and sregs.cr4 == 0
    assert sregs.cs.selector == 8 and sregs.cs.db == 1 and sregs.cs.l == 0 and sregs.cs.limit == 0xFFFFFFFF
    assert sregs.tr.selector == 0x18 and sregs.tr.limit == 0x67


@dataclass(frozen=True)
class Entry:
    protocol: str
    entry_address: int
    boot_info_address: int


def test_entry_registers() -> None:
    linux = cpu.entry_regs(Entry("linux64", 0x100200, 0x7000))  # type: ignore[arg-type]
    assert (linux.rip, linux.rsi, linux.rsp, linux.rbp, linux.rflags, linux.rbx) == (0x100200, 0x7000, 0x8FF0, 0x8FF0, 2, 0)
    pvh = cpu.entry_regs(Entry("pvh", 0x100000, 0x6000))  # type: ignore[arg-type]
    assert (pvh.rip, pvh.rbx, pvh.rsi, pvh.rflags) == (0x100000, 0x6000, 0, 2)
