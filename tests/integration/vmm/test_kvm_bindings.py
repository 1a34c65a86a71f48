"""The ctypes KVM bindings against the real /dev/kvm, in-process: VM and vCPU creation,
memory slots, in-kernel irqchip state, CPU setup read back, and KVM_RUN's EINTR path."""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

import pytest

from vmm import cpu
from vmm.errors import KvmError
from vmm.kvm import ioctls, run
from vmm.kvm.system import Kvm
from vmm.memory import GuestMemory

pytestmark = pytest.mark.kvm


@dataclass(frozen=True)
class Entry:
    protocol: str
    entry_address: int
    boot_info_address: int


@pytest.fixture
def kvm() -> Kvm:
    handle = Kvm()
    yield handle
    handle.close()


def test_capabilities_the_vmm_relies_on(kvm: Kvm) -> None:
    for capability in (
        ioctls.KVM_CAP_IRQCHIP,
        ioctls.KVM_CAP_USER_MEMORY,
        ioctls.KVM_CAP_SET_TSS_ADDR,
        ioctls.KVM_CAP_PIT2,
        ioctls.KVM_CAP_IMMEDIATE_EXIT,
    ):
        assert kvm.check_extension(capability) > 0, capability
    assert kvm.max_vcpus() >= 1
    assert kvm.vcpu_mmap_size() >= 4096


def test_supported_cpuid_has_the_leaves_normalisation_edits(kvm: Kvm) -> None:
    functions = {entry.function for entry in kvm.supported_cpuid()}
    assert {0, 1, 0x40000000} <= functions


def test_vm_with_memory_irqchip_and_configured_vcpus(kvm: Kvm) -> None:
    vm = kvm.create_vm()
    memory = GuestMemory(32 << 20)
    try:
        vm.set_tss_address(0xFFFB_D000)  # above 2^31: the reason ioctl goes through ctypes
        vm.create_irqchip()
        vm.create_pit2()
        vm.add_memory(0, memory.size, memory.host_address(0))
        supported = kvm.supported_cpuid()
        boot = vm.create_vcpu(0)
        cpu.configure_vcpu(boot, memory, supported, 2, Entry("linux64", 0x100200, 0x7000))  # type: ignore[arg-type]
        sregs, regs = boot.get_sregs(), boot.get_regs()
        assert (sregs.cr0, sregs.cr3, sregs.efer & 0x500, sregs.cs.l) == (0x80000011, 0x9000, 0x500, 1)
        assert (regs.rip, regs.rsi, regs.rsp) == (0x100200, 0x7000, 0x8FF0)
        lapic = bytes(boot.get_lapic())
        assert (struct.unpack_from("<I", lapic, 0x350)[0] >> 8) & 7 == 7
        assert (struct.unpack_from("<I", lapic, 0x360)[0] >> 8) & 7 == 4
        application = vm.create_vcpu(1)
        cpu.configure_vcpu(application, memory, supported, 2, None)
        vm.irq_line(4, 1)
        vm.irq_line(4, 0)
    finally:
        vm.close()
        memory.close()


def test_immediate_exit_makes_kvm_run_return_eintr(kvm: Kvm) -> None:
    vm = kvm.create_vm()
    memory = GuestMemory(16 << 20)
    try:
        vm.set_tss_address(0xFFFB_D000)
        vm.create_irqchip()
        vm.add_memory(0, memory.size, memory.host_address(0))
        vcpu = vm.create_vcpu(0)
        run.request_immediate_exit(vcpu.run_map)
        assert vcpu.run_once() == errno.EINTR
    finally:
        vm.close()
        memory.close()


def test_errors_are_one_line_kvm_errors(kvm: Kvm) -> None:
    vm = kvm.create_vm()
    try:
        vm.create_irqchip()
        with pytest.raises(KvmError, match=r"^KVM_CREATE_IRQCHIP failed: "):
            vm.create_irqchip()
        with pytest.raises(KvmError, match="KVM_SET_MSRS set only 0 of 1 MSRs"):
            vm.create_vcpu(0).set_msrs([(0xDEAD_BEEF, 1)])
    finally:
        vm.close()
