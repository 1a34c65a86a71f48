"""The order `builder.VmSetup` issues the VM's ioctls in, and in which thread (a recording
stand-in for `vmm.kvm.system`; the real ioctls are in tests/integration/vmm/test_vm_setup.py).

The order is a start-up matter: on our hosts an ioctl that waits for an SRCU grace period
right after KVM_CREATE_IRQCHIP's burst of them returns only ~7 ms after that burst. Memory
slots made before the irqchip cost ~0.2 ms; the PIT, which must follow the irqchip, waits in
the `vm-setup` thread while the main thread goes on.
"""

from __future__ import annotations

from vmm import builder
from vmm.devices.boot_timer import Timestamp
from vmm.memory import GuestMemory
from vmm.threads import current_name


class RecordingVm:
    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.calls = calls

    def _record(self, call: str) -> None:
        self.calls.append((current_name(), call))

    def set_tss_address(self, address: int) -> None:
        self._record(f"tss {address:#x}")

    def add_memory(self, guest_address: int, size: int, host_address: int) -> None:
        assert host_address > 0
        self._record(f"slot {guest_address:#x}+{size:#x}")

    def create_irqchip(self) -> None:
        self._record("irqchip")

    def create_pit2(self) -> None:
        self._record("pit2")

    def close(self) -> None:
        self._record("close")


class RecordingKvm:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def create_vm(self) -> RecordingVm:
        self.calls.append((current_name(), "create_vm"))
        return RecordingVm(self.calls)

    def close(self) -> None:
        self.calls.append((current_name(), "close kvm"))


def test_slots_come_before_the_irqchip_and_the_pit_is_made_in_the_setup_thread() -> None:
    kvm = RecordingKvm()
    memory = GuestMemory(5 << 30)  # two regions: below the 32-bit MMIO hole and above 4 GiB
    setup = builder.VmSetup(kvm, memory, Timestamp.now())  # type: ignore[arg-type]
    try:
        setup.start()
        vm = setup.vm()
    finally:
        memory.close()
    assert kvm.calls == [
        ("vmm", "create_vm"),
        ("vmm", f"tss {builder.TSS_ADDRESS:#x}"),
        ("vmm", "slot 0x0+0xc0000000"),
        ("vmm", "slot 0x100000000+0x80000000"),
        ("vmm", "irqchip"),
        ("vm-setup", "pit2"),
    ]
    assert isinstance(vm, RecordingVm)


def test_a_failing_pit_is_the_builds_error_and_a_discard_closes_everything() -> None:
    class NoPit(RecordingVm):
        def create_pit2(self) -> None:
            raise OSError(12, "no memory for the PIT")

    kvm = RecordingKvm()
    kvm.create_vm = lambda: NoPit(kvm.calls)  # type: ignore[method-assign]
    memory = GuestMemory(2 << 20)
    setup = builder.VmSetup(kvm, memory, Timestamp.now())  # type: ignore[arg-type]
    setup.start()
    try:
        setup.vm()
    except OSError as error:
        assert error.strerror == "no memory for the PIT"
    else:
        raise AssertionError("the PIT's failure was lost")
    setup.discard()
    assert kvm.calls[-2:] == [("vmm", "close"), ("vmm", "close kvm")]
