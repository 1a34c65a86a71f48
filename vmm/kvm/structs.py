"""ctypes layouts (`jailer.native`) of the KVM structs the VMM passes to ioctls (offsets per the 6.1 uapi); the
shared kvm_run page is read with `struct` instead (`vmm.kvm.run`)."""

from __future__ import annotations

from jailer.native import Structure, c_char, c_uint8, c_uint16, c_uint32, c_uint64


class UserspaceMemoryRegion(Structure):
    _fields_ = [
        ("slot", c_uint32),
        ("flags", c_uint32),
        ("guest_phys_addr", c_uint64),
        ("memory_size", c_uint64),
        ("userspace_addr", c_uint64),
    ]


_REGS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp"] + [f"r{n}" for n in range(8, 16)] + ["rip", "rflags"]


class Regs(Structure):
    _fields_ = [(name, c_uint64) for name in _REGS]


class Segment(Structure):
    _fields_ = [
        ("base", c_uint64),
        ("limit", c_uint32),
        ("selector", c_uint16),
        ("type", c_uint8),
        ("present", c_uint8),
        ("dpl", c_uint8),
        ("db", c_uint8),
        ("s", c_uint8),
        ("l", c_uint8),
        ("g", c_uint8),
        ("avl", c_uint8),
        ("unusable", c_uint8),
        ("padding", c_uint8),
    ]


class DTable(Structure):
    _fields_ = [("base", c_uint64), ("limit", c_uint16), ("padding", c_uint16 * 3)]


class Sregs(Structure):
    _fields_ = [
        ("cs", Segment),
        ("ds", Segment),
        ("es", Segment),
        ("fs", Segment),
        ("gs", Segment),
        ("ss", Segment),
        ("tr", Segment),
        ("ldt", Segment),
        ("gdt", DTable),
        ("idt", DTable),
        ("cr0", c_uint64),
        ("cr2", c_uint64),
        ("cr3", c_uint64),
        ("cr4", c_uint64),
        ("cr8", c_uint64),
        ("efer", c_uint64),
        ("apic_base", c_uint64),
        ("interrupt_bitmap", c_uint64 * 4),
    ]


class CpuidEntry2(Structure):
    _fields_ = [
        ("function", c_uint32),
        ("index", c_uint32),
        ("flags", c_uint32),
        ("eax", c_uint32),
        ("ebx", c_uint32),
        ("ecx", c_uint32),
        ("edx", c_uint32),
        ("padding", c_uint32 * 3),
    ]


def cpuid2_type(count: int) -> type[Structure]:
    """`struct kvm_cpuid2` with room for ``count`` entries (a flexible array in C)."""

    class Cpuid2(Structure):
        _fields_ = [("nent", c_uint32), ("padding", c_uint32), ("entries", CpuidEntry2 * count)]

    return Cpuid2


class MsrEntry(Structure):
    _fields_ = [("index", c_uint32), ("reserved", c_uint32), ("data", c_uint64)]


def msrs_type(count: int) -> type[Structure]:
    """`struct kvm_msrs` with ``count`` entries."""

    class Msrs(Structure):
        _fields_ = [("nmsrs", c_uint32), ("pad", c_uint32), ("entries", MsrEntry * count)]

    return Msrs


class Fpu(Structure):
    _fields_ = [
        ("fpr", (c_uint8 * 16) * 8),
        ("fcw", c_uint16),
        ("fsw", c_uint16),
        ("ftwx", c_uint8),
        ("pad1", c_uint8),
        ("last_opcode", c_uint16),
        ("last_ip", c_uint64),
        ("last_dp", c_uint64),
        ("xmm", (c_uint8 * 16) * 16),
        ("mxcsr", c_uint32),
        ("pad2", c_uint32),
    ]


class LapicState(Structure):
    _fields_ = [("regs", c_char * 1024)]


class IrqLevel(Structure):
    _fields_ = [("irq", c_uint32), ("level", c_uint32)]


class PitConfig(Structure):
    _fields_ = [("flags", c_uint32), ("pad", c_uint32 * 15)]
