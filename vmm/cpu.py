"""Boot-time vCPU state: normalised CPUID, boot MSRs, LAPIC LINT0/1, and the registers,
descriptor tables and page tables for the two entry protocols (64-bit Linux, 32-bit PVH).

The CPUID normalisation and register values follow Firecracker's documented boot protocol
so that guests see the same machine they would under Firecracker. `Memory` exists for type
checkers only (start-up path: see `vmm`).
"""

from __future__ import annotations

import struct

from vmm.kvm.structs import CpuidEntry2, Fpu, Regs, Segment, Sregs

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from typing import Protocol

    from vmm.kvm.system import Vcpu
    from vmm.loader import KernelEntry

    class Memory(Protocol):
        def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None: ...

GDT_ADDRESS = 0x500
IDT_ADDRESS = 0x520
PML4_ADDRESS = 0x9000
PDPT_ADDRESS = 0xA000
PD_ADDRESS = 0xB000
BOOT_STACK_POINTER = 0x8FF0

CR0_PE = 0x1
CR0_ET = 0x10
CR0_PG = 0x8000_0000
CR0_CD_NW = 0x6000_0000
CR4_PAE = 0x20
EFER_LME = 0x100
EFER_LMA = 0x400

MSR_IA32_TSC = 0x10
MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP = 0x174, 0x175, 0x176
MSR_IA32_MISC_ENABLE = 0x1A0
MSR_MTRR_DEF_TYPE = 0x2FF
MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK = 0xC000_0081, 0xC000_0082, 0xC000_0083, 0xC000_0084
MSR_KERNEL_GS_BASE = 0xC000_0102

APIC_LVT0 = 0x350
APIC_LVT1 = 0x360
APIC_MODE_NMI = 4
APIC_MODE_EXTINT = 7

MAX_SUPPORTED_VCPUS_LOG2 = 5
VENDOR_INTEL_EBX = 0x756E6547  # "Genu"
VENDOR_AMD_EBX = 0x68747541  # "Auth"


def _set_bits(value: int, low: int, high: int, field: int) -> int:
    mask = ((1 << (high - low + 1)) - 1) << low
    return (value & ~mask) | ((field << low) & mask)


def normalize_cpuid(
    supported: list[CpuidEntry2],
    vcpu_index: int,
    vcpu_count: int,
    host_vendor: tuple[int, int, int] | None = None,
) -> list[CpuidEntry2]:
    """The CPUID table one vCPU gets: KVM's supported list with Firecracker's per-vCPU fixes.

    Returns new entries; ``supported`` is left untouched so it can be shared between vCPUs.
    ``host_vendor`` (ebx, ecx, edx of leaf 0) defaults to what KVM reports.
    """
    entries = [CpuidEntry2.from_buffer_copy(entry) for entry in supported]
    for entry in entries:
        if entry.function == 0 and host_vendor is not None:
            entry.ebx, entry.ecx, entry.edx = host_vendor
        elif entry.function == 1:
            logical = 1
            while logical < vcpu_count:
                logical <<= 1
            entry.ebx = _set_bits(entry.ebx, 8, 15, 8)
            entry.ebx = _set_bits(entry.ebx, 16, 23, logical)
            entry.ebx = _set_bits(entry.ebx, 24, 31, vcpu_index)
            entry.ecx &= ~(1 << 15)
            entry.ecx |= (1 << 24) | (1 << 31)
            entry.edx = _set_bits(entry.edx, 28, 28, 1 if vcpu_count > 1 else 0)
    vendor = next((entry.ebx for entry in entries if entry.function == 0), 0)
    if vendor == VENDOR_INTEL_EBX:
        _normalize_intel(entries, vcpu_count)
    elif vendor == VENDOR_AMD_EBX:
        _normalize_amd(entries, vcpu_count)
    leaf_b = [entry for entry in entries if entry.function == 0xB]
    if leaf_b:
        for subleaf in (0, 1):
            if not any(entry.index == subleaf for entry in leaf_b):
                new = CpuidEntry2(function=0xB, index=subleaf)
                entries.append(new)
                leaf_b.append(new)
        for entry in leaf_b:
            entry.flags = 1  # KVM_CPUID_FLAG_SIGNIFCANT_INDEX
            entry.eax = entry.ebx = entry.ecx = 0
            entry.edx = vcpu_index
            if entry.index == 0:
                entry.ebx = 1
                entry.ecx = 1 << 8
            elif entry.index == 1:
                entry.eax = MAX_SUPPORTED_VCPUS_LOG2
                entry.ebx = vcpu_count
                entry.ecx = (2 << 8) | 1
            else:
                entry.ecx = entry.index
    return entries


def _normalize_intel(entries: list[CpuidEntry2], vcpu_count: int) -> None:
    """Intel-only leaves: cache sharing, no turbo/energy hints, no PMU, no WAITPKG."""
    for entry in entries:
        if entry.function == 4:
            level = (entry.eax >> 5) & 0x7
            if level == 0:
                continue  # no cache at this subleaf
            sharing = vcpu_count - 1 if level >= 3 else 0  # one thread per core: L1/L2 private
            entry.eax = _set_bits(entry.eax, 14, 25, sharing)
            entry.eax = _set_bits(entry.eax, 26, 31, min(vcpu_count - 1, 63))
        elif entry.function == 6:
            entry.eax &= ~(1 << 1)  # turbo boost
            entry.ecx &= ~(1 << 3)  # energy-performance bias
        elif entry.function == 7 and entry.index == 0:
            entry.ebx |= (1 << 6) | (1 << 13)  # FDP_EXCPTN_ONLY, deprecated FPU CS/DS
            entry.ecx &= ~(1 << 5)  # WAITPKG
        elif entry.function == 0xA:
            entry.eax = entry.ebx = entry.ecx = entry.edx = 0  # no PMU


def _normalize_amd(entries: list[CpuidEntry2], vcpu_count: int) -> None:
    """AMD-only leaves: no ARCH_CAPABILITIES hint, topology extensions on, core count."""
    for entry in entries:
        if entry.function == 7 and entry.index == 0:
            entry.edx &= ~(1 << 29)
        elif entry.function == 0x8000_0001:
            entry.ecx |= 1 << 22  # TOPOEXT
        elif entry.function == 0x8000_0008:
            entry.ecx = _set_bits(entry.ecx, 0, 7, vcpu_count - 1)  # NC: cores per package - 1


def boot_msrs() -> list[tuple[int, int]]:
    """(index, value) pairs every vCPU starts with."""
    return [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, 1),
        (MSR_MTRR_DEF_TYPE, (1 << 11) | 6),
    ]


def set_lint(lapic: bytearray | bytes) -> bytes:
    """LVT0 → ExtINT (the 8259 reaches the CPU in virtual-wire mode), LVT1 → NMI."""
    page = bytearray(lapic)
    for offset, mode in ((APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)):
        (value,) = struct.unpack_from("<I", page, offset)
        struct.pack_into("<I", page, offset, (value & ~0x700) | (mode << 8))
    return bytes(page)


def gdt_entry(flags: int, base: int, limit: int) -> int:
    return (
        ((base & 0xFF00_0000) << 32)
        | ((flags & 0xF0FF) << 40)
        | ((limit & 0xF_0000) << 32)
        | ((base & 0xFF_FFFF) << 16)
        | (limit & 0xFFFF)
    )


LONG_MODE_GDT = (0, gdt_entry(0xA09B, 0, 0xFFFFF), gdt_entry(0xC093, 0, 0xFFFFF), gdt_entry(0x808B, 0, 0xFFFFF))
PVH_GDT = (0, gdt_entry(0xC09B, 0, 0xFFFFFFFF), gdt_entry(0xC093, 0, 0xFFFFFFFF), gdt_entry(0x008B, 0, 0x67))


def segment_from_gdt(entry: int, index: int) -> Segment:
    """The kvm_segment a CPU would load for GDT slot ``index`` holding ``entry``."""
    granular = (entry >> 55) & 1
    limit = ((entry >> 32) & 0xF_0000) | (entry & 0xFFFF)
    if granular:
        limit = (limit << 12) | 0xFFF
    present = (entry >> 47) & 1
    return Segment(
        base=((entry >> 16) & 0xFF_FFFF) | (((entry >> 56) & 0xFF) << 24),
        limit=limit,
        selector=index * 8,
        type=(entry >> 40) & 0xF,
        present=present,
        dpl=(entry >> 45) & 3,
        db=(entry >> 54) & 1,
        s=(entry >> 44) & 1,
        l=(entry >> 53) & 1,
        g=granular,
        avl=(entry >> 52) & 1,
        unusable=0 if present else 1,
    )


def _load_segments(sregs: Sregs, gdt: tuple[int, ...], memory: Memory) -> None:
    memory.write(GDT_ADDRESS, struct.pack(f"<{len(gdt)}Q", *gdt))
    memory.write(IDT_ADDRESS, bytes(8))
    sregs.gdt.base, sregs.gdt.limit = GDT_ADDRESS, len(gdt) * 8 - 1
    sregs.idt.base, sregs.idt.limit = IDT_ADDRESS, 7
    code, data, tss = (segment_from_gdt(gdt[i], i) for i in (1, 2, 3))
    sregs.cs = code
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data
    sregs.tr = tss


def write_identity_page_tables(memory: Memory) -> None:
    """PML4 → PDPT → PD of 2 MiB pages identity-mapping guest-physical 0..1 GiB."""
    memory.write(PML4_ADDRESS, struct.pack("<Q", PDPT_ADDRESS | 0x3))
    memory.write(PDPT_ADDRESS, struct.pack("<Q", PD_ADDRESS | 0x3))
    memory.write(PD_ADDRESS, struct.pack("<512Q", *((i << 21) | 0x83 for i in range(512))))


def long_mode_sregs(sregs: Sregs, memory: Memory) -> Sregs:
    _load_segments(sregs, LONG_MODE_GDT, memory)
    write_identity_page_tables(memory)
    sregs.cr3 = PML4_ADDRESS
    sregs.cr4 |= CR4_PAE
    sregs.efer |= EFER_LME | EFER_LMA
    sregs.cr0 = (sregs.cr0 | CR0_PE | CR0_PG) & ~CR0_CD_NW
    return sregs


def pvh_sregs(sregs: Sregs, memory: Memory) -> Sregs:
    _load_segments(sregs, PVH_GDT, memory)
    sregs.cr0 = CR0_PE | CR0_ET
    sregs.cr4 = 0
    return sregs


def entry_regs(entry: KernelEntry) -> Regs:
    regs = Regs(rflags=0x2, rip=entry.entry_address)
    if entry.protocol == "pvh":
        regs.rbx = entry.boot_info_address
    else:
        regs.rsp = regs.rbp = BOOT_STACK_POINTER
        regs.rsi = entry.boot_info_address
    return regs


def configure_vcpu(
    vcpu: Vcpu,
    memory: Memory,
    supported_cpuid: list[CpuidEntry2],
    vcpu_count: int,
    entry: KernelEntry | None,
) -> None:
    """Set CPUID, MSRs, FPU, LAPIC LINTs; the boot vCPU (``entry`` given) also gets its
    entry registers. Application processors wait in KVM's INIT state for the guest's SIPI."""
    from vmm.kvm.structs import LapicState

    vcpu.set_cpuid(normalize_cpuid(supported_cpuid, vcpu.index, vcpu_count))
    vcpu.set_msrs(boot_msrs())
    lapic = vcpu.get_lapic()
    vcpu.set_lapic(LapicState.from_buffer_copy(set_lint(bytes(lapic))))
    if entry is None:
        return
    vcpu.set_fpu(Fpu(fcw=0x37F, mxcsr=0x1F80))
    sregs = vcpu.get_sregs()
    vcpu.set_sregs(pvh_sregs(sregs, memory) if entry.protocol == "pvh" else long_mode_sregs(sregs, memory))
    vcpu.set_regs(entry_regs(entry))
