"""`builder.start_vm`: the kernel's part of the build in the `vm-setup` thread, overlapping
the guest load, and nothing left behind when a build fails (the API lets a client retry)."""

from __future__ import annotations

import os
import sys
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


def test_a_started_setup_becomes_the_vm_and_restores_the_switch_interval(tmp_path: Path) -> None:
    interval = sys.getswitchinterval()
    config = load_config(write_config(tmp_path, write_guest(tmp_path, out_al(0xF4, 0) + HANG)))
    before = open_fds()
    setup = builder.start_vm(config)
    assert sys.getswitchinterval() == builder.SETUP_SWITCH_INTERVAL
    vm = setup.vm()
    assert not setup.is_alive()
    assert sys.getswitchinterval() == interval
    assert vm.fd >= 0 and len(open_fds() - before) == 2  # /dev/kvm and the VM
    setup.discard()
    assert open_fds() == before


def test_a_build_that_fails_after_the_setup_started_leaves_nothing(tmp_path: Path) -> None:
    interval = sys.getswitchinterval()
    kernel = tmp_path / "kernel.bin"
    kernel.write_bytes(b"not a kernel" * 100)
    config_path = write_config(tmp_path, kernel)
    before = open_fds()
    setup = builder.start_vm(load_config(config_path))
    with pytest.raises(VmmError, match="unknown kernel image format"):
        build(config_path, setup)
    assert not setup.is_alive()
    assert open_fds() == before
    assert sys.getswitchinterval() == interval
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


def test_a_setup_thread_that_cannot_start_is_a_clean_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import _thread

    def no_threads(*_args: object) -> int:
        raise RuntimeError("can't start new thread")

    interval = sys.getswitchinterval()
    config = load_config(write_config(tmp_path, write_guest(tmp_path, HANG)))
    before = open_fds()
    monkeypatch.setattr(_thread, "start_new_thread", no_threads)
    with pytest.raises(VmmError, match="cannot start the vm-setup thread: can't start new thread"):
        builder.start_vm(config)
    assert open_fds() == before
    assert sys.getswitchinterval() == interval
