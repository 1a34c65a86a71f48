"""Struct layouts and ioctl numbers against the 6.1 uapi values (reference §1.1, §1.2)."""

from __future__ import annotations

import ctypes
import struct

import pytest

from vmm.kvm import ioctls, run, structs


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
    ],
)
def test_field_offsets(struct: type[ctypes.Structure], field: str, offset: int) -> None:
    assert getattr(struct, field).offset == offset


def test_kvm_run_page_layout() -> None:
    # struct kvm_run (6.1 uapi): the exit union is 256 bytes at 32, kvm_valid_regs follows it.
    assert run.EXIT_OFFSET + 256 == run.VALID_REGS_OFFSET == 288
    assert struct.calcsize(run.IO_FORMAT) == 16  # __u8 direction, size; __u16 port; __u32 count; __u64 data_offset
    assert struct.calcsize(run.MMIO_FORMAT) == 21  # __u64 phys_addr; __u8 data[8]; __u32 len; __u8 is_write
    assert struct.calcsize(run.INTERNAL_FORMAT) == 8 + 16 * 8
    assert struct.calcsize(run.FAIL_ENTRY_FORMAT) == 12


def test_kvm_run_page_readers() -> None:
    page = bytearray(4096)
    struct.pack_into("<I", page, 8, 17)
    assert run.exit_reason(page) == 17  # type: ignore[arg-type]
    struct.pack_into("<II3Q", page, 32, 7, 2, 0xA, 0xB, 0xC)
    assert run.internal_error(page) == (7, (0xA, 0xB))  # type: ignore[arg-type]
    assert run.system_event_type(page) == 7  # type: ignore[arg-type]
    struct.pack_into("<QI", page, 32, 0x8000_0021, 1)
    assert run.fail_entry_reason(page) == 0x8000_0021  # type: ignore[arg-type]
    run.request_immediate_exit(page)  # type: ignore[arg-type]
    assert page[1] == 1 and page[0] == 0


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
