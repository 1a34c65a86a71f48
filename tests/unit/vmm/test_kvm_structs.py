"""Struct layouts and ioctl numbers against the 6.1 uapi values (reference §1.1, §1.2)."""

from __future__ import annotations

import ctypes

import pytest

from vmm.kvm import ioctls, structs


@pytest.mark.parametrize(
    ("struct", "size"),
    [
        (structs.UserspaceMemoryRegion, 32),
        (structs.Regs, 144),
        (structs.Segment, 24),
        (structs.DTable, 16),
        (structs.Sregs, 312),
        (structs.CpuidEntry2, 40),
        (structs.MsrEntry, 16),
        (structs.Fpu, 416),
        (structs.LapicState, 1024),
        (structs.IrqLevel, 8),
        (structs.PitConfig, 64),
    ],
)
def test_struct_sizes(struct: type[ctypes.Structure], size: int) -> None:
    assert ctypes.sizeof(struct) == size


@pytest.mark.parametrize(
    ("struct", "field", "offset"),
    [
        (structs.Regs, "rsi", 32),
        (structs.Regs, "rsp", 48),
        (structs.Regs, "rbp", 56),
        (structs.Regs, "rip", 128),
        (structs.Regs, "rflags", 136),
        (structs.Segment, "selector", 12),
        (structs.Segment, "type", 14),
        (structs.Segment, "unusable", 22),
        (structs.Sregs, "gdt", 192),
        (structs.Sregs, "idt", 208),
        (structs.Sregs, "cr0", 224),
        (structs.Sregs, "cr3", 240),
        (structs.Sregs, "cr4", 248),
        (structs.Sregs, "efer", 264),
        (structs.Sregs, "apic_base", 272),
        (structs.Sregs, "interrupt_bitmap", 280),
        (structs.CpuidEntry2, "eax", 12),
        (structs.MsrEntry, "data", 8),
        (structs.Fpu, "fcw", 128),
        (structs.Fpu, "last_ip", 136),
        (structs.Fpu, "xmm", 152),
        (structs.Fpu, "mxcsr", 408),
        (structs.Run, "immediate_exit", 1),
        (structs.Run, "exit_reason", 8),
        (structs.Run, "exit", 32),
        (structs.Run, "kvm_valid_regs", 288),
    ],
)
def test_field_offsets(struct: type[ctypes.Structure], field: str, offset: int) -> None:
    assert getattr(struct, field).offset == offset


def test_exit_union_layouts() -> None:
    run = structs.Run()
    base = ctypes.addressof(run)
    assert ctypes.addressof(run.exit.io) - base == 32
    assert structs._Io.port.offset == 2 and structs._Io.data_offset.offset == 8
    assert structs._Mmio.data.offset == 8 and structs._Mmio.len.offset == 16 and structs._Mmio.is_write.offset == 20
    assert structs._Internal.data.offset == 8
    assert structs._SystemEvent.data.offset == 8


def test_variable_length_headers() -> None:
    assert structs.cpuid2_type(3).entries.offset == 8
    assert ctypes.sizeof(structs.cpuid2_type(3)) == 8 + 3 * 40
    assert ctypes.sizeof(structs.msrs_type(11)) == 8 + 11 * 16


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KVM_GET_API_VERSION", 0xAE00),
        ("KVM_CREATE_VM", 0xAE01),
        ("KVM_CHECK_EXTENSION", 0xAE03),
        ("KVM_GET_VCPU_MMAP_SIZE", 0xAE04),
        ("KVM_GET_SUPPORTED_CPUID", 0xC008AE05),
        ("KVM_CREATE_VCPU", 0xAE41),
        ("KVM_SET_USER_MEMORY_REGION", 0x4020AE46),
        ("KVM_SET_TSS_ADDR", 0xAE47),
        ("KVM_SET_IDENTITY_MAP_ADDR", 0x4008AE48),
        ("KVM_CREATE_IRQCHIP", 0xAE60),
        ("KVM_IRQ_LINE", 0x4008AE61),
        ("KVM_CREATE_PIT2", 0x4040AE77),
        ("KVM_RUN", 0xAE80),
        ("KVM_GET_REGS", 0x8090AE81),
        ("KVM_SET_REGS", 0x4090AE82),
        ("KVM_GET_SREGS", 0x8138AE83),
        ("KVM_SET_SREGS", 0x4138AE84),
        ("KVM_SET_MSRS", 0x4008AE89),
        ("KVM_SET_FPU", 0x41A0AE8D),
        ("KVM_GET_LAPIC", 0x8400AE8E),
        ("KVM_SET_LAPIC", 0x4400AE8F),
        ("KVM_SET_CPUID2", 0x4008AE90),
    ],
)
def test_ioctl_numbers(name: str, value: int) -> None:
    assert getattr(ioctls, name) == value


def test_policy_ioctl_numbers_match_bindings() -> None:
    """The shipped policy names ioctls by number; each must be the one the bindings use."""
    import json

    from jailer.policies import shipped_policy_path

    document = json.loads(shipped_policy_path("vmm").read_text())
    for category in document.values():
        for rule in category["filter"]:
            if rule["syscall"] != "ioctl":
                continue
            condition = rule["args"][0]
            name = condition["comment"]
            if name.startswith("KVM_"):
                assert getattr(ioctls, name) == condition["val"], name
