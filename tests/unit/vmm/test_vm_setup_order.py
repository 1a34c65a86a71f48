"""The order `builder.VmSetup` issues the VM's ioctls in (a recording stand-in for
`vmm.kvm.system`; the real ioctls, and the PIT after the vCPUs in a whole build, are in
tests/integration/vmm/test_vm_setup.py).

The order is a start-up matter: on our hosts an ioctl that waits for an SRCU grace period
right after KVM_CREATE_IRQCHIP's burst of them returns only ~7 ms after that burst. Memory
slots made before the irqchip cost ~0.2 ms; the PIT, which must follow the irqchip, is made
when the rest of the build has filled that time.
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


def test_slots_come_before_the_irqchip_and_the_pit_only_when_asked_for_once() -> None:
    kvm = RecordingKvm()
    memory = GuestMemory(5 << 30)  # two regions: below the 32-bit MMIO hole and above 4 GiB
    try:
        setup = builder.VmSetup(kvm, memory, Timestamp.now())  # type: ignore[arg-type]
        assert kvm.calls == [
            ("vmm", "create_vm"),
            ("vmm", f"tss {builder.TSS_ADDRESS:#x}"),
            ("vmm", "slot 0x0+0xc0000000"),
            ("vmm", "slot 0x100000000+0x80000000"),
            ("vmm", "irqchip"),
        ]
        setup.add_pit()
        setup.add_pit()
        assert kvm.calls[-2:] == [("vmm", "irqchip"), ("vmm", "pit2")]
    finally:
        memory.close()


def test_a_failing_irqchip_closes_everything_made() -> None:
    class NoIrqchip(RecordingVm):
        def create_irqchip(self) -> None:
            raise OSError(12, "no memory for the irqchip")

    kvm = RecordingKvm()
    kvm.create_vm = lambda: NoIrqchip(kvm.calls)  # type: ignore[method-assign]
    memory = GuestMemory(2 << 20)
    try:
        builder.VmSetup(kvm, memory, Timestamp.now())  # type: ignore[arg-type]
    except OSError as error:
        assert error.strerror == "no memory for the irqchip"
    else:
        raise AssertionError("the irqchip's failure was lost")
    assert kvm.calls[-2:] == [("vmm", "close"), ("vmm", "close kvm")]
    assert not memory._maps  # unmapped
