"""`builder.start_vm` and the build it begins: the VM with its memory slots and irqchip made
before the guest is loaded, the PIT at the end, and nothing left behind when a build fails
(the API lets a client retry)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.vmm import HANG, out_al, write_config, write_guest
from vmm import builder
from vmm.config import load_config
from vmm.errors import ConfigError, VmmError
from vmm.logger import Logger
from vmm.metrics import Metrics

pytestmark = pytest.mark.kvm


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def build(config_path: Path, setup: builder.VmSetup | None) -> builder.Machine:
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        logger = Logger("test", "Off", devnull)
        return builder.build_machine(load_config(config_path), builder.VmmOptions(), logger, Metrics(None), setup)
    finally:
        os.close(devnull)


def test_a_started_vm_gets_its_pit_once_and_is_closed_by_discard(tmp_path: Path) -> None:
    import errno

    from vmm.kvm import ioctls, structs, system

    config = load_config(write_config(tmp_path, write_guest(tmp_path, out_al(0xF4, 0) + HANG)))
    before = open_fds()
    setup = builder.start_vm(config)
    vm = setup.vm
    assert vm is not None and vm.fd >= 0 and len(open_fds() - before) == 2  # /dev/kvm and the VM
    setup.add_pit()
    setup.add_pit()  # once only: a second KVM_CREATE_PIT2 would fail with EEXIST
    with pytest.raises(OSError) as raised:
        system.ioctl(vm.fd, ioctls.KVM_CREATE_PIT2, structs.PitConfig(flags=ioctls.KVM_PIT_SPEAKER_DUMMY))
    assert raised.value.errno == errno.EEXIST  # the kernel has the PIT
    setup.discard()
    assert open_fds() == before


def test_a_build_that_fails_after_the_setup_started_leaves_nothing(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel.bin"
    kernel.write_bytes(b"not a kernel" * 100)
    config_path = write_config(tmp_path, kernel)
    before = open_fds()
    setup = builder.start_vm(load_config(config_path))
    with pytest.raises(VmmError, match="unknown kernel image format"):
        build(config_path, setup)
    assert open_fds() == before
    with pytest.raises(VmmError, match="unknown kernel image format"):
        build(config_path, None)  # build_machine starting its own setup: the same
    assert open_fds() == before


def test_resources_are_checked_before_any_vm_exists(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, write_guest(tmp_path, HANG), vcpu_count=100_000)
    before = open_fds()
    with pytest.raises(ConfigError, match="exceeds KVM's maximum"):
        builder.start_vm(load_config(config_path))
    assert open_fds() == before


def test_a_build_that_fails_after_opening_its_queue_and_serial_output_closes_them(tmp_path: Path) -> None:
    # The event queue's pipe is made first, then the serial output fails to open (a missing
    # directory): the pipe, the VM and everything else the build made is closed again.
    config_path = write_config(
        tmp_path, write_guest(tmp_path, HANG), extra={"serial": {"serial_out_path": str(tmp_path / "no" / "such")}}
    )
    before = open_fds()
    for _ in range(3):  # as an API client retrying would
        with pytest.raises(ConfigError, match="serial.serial_out_path: cannot open"):
            build(config_path, None)
    assert open_fds() == before


def test_the_build_makes_the_pit_after_the_vcpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The PIT comes last (see vmm.builder: ~7 ms after the irqchip, or it waits for the kernel).
    from vmm.kvm import system

    calls: list[str] = []
    vms: list[system.Vm] = []
    for name in ("create_irqchip", "create_vcpu", "create_pit2", "add_memory"):
        original = getattr(system.Vm, name)

        def record(self: system.Vm, *args: object, _name: str = name, _original: object = original) -> object:
            calls.append(_name)
            vms.append(self)
            return _original(self, *args)  # type: ignore[operator]

        monkeypatch.setattr(system.Vm, name, record)
    config_path = write_config(tmp_path, write_guest(tmp_path, HANG), vcpu_count=2)
    before = open_fds()
    machine = build(config_path, None)
    machine.events.close()
    vms[0].close()
    vms[0].kvm.close()
    machine.memory.close()
    assert open_fds() == before
    assert calls == ["add_memory", "create_irqchip", "create_vcpu", "create_vcpu", "create_pit2"]


def test_an_api_server_that_cannot_start_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmm import api, bundle, cli

    def no_server(*_args: object, **_kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(api, "ApiServer", no_server)
    config = write_config(tmp_path, write_guest(tmp_path, HANG))
    socket_path = tmp_path / "api.sock"
    before = open_fds()
    try:
        status = cli.main(["--config-file", str(config), "--api-sock", str(socket_path), "--no-seccomp"])
    finally:
        bundle.release()  # main() installed the start-path bundle in this process
    assert status == 1
    assert capsys.readouterr().err.splitlines()[-1] == "vmm: cannot start the API server: Too many open files"
    assert not socket_path.exists()
    assert open_fds() == before  # the VM, /dev/kvm and the API socket are closed
