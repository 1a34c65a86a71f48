"""The VMM runs where the jail puts it: no /proc, no /sys, an empty environment, a
read-only root, only /dev/kvm; with the jail's own filter as well."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.vmm import (
    HANG,
    VMM_COMMAND,
    jailed_vmm_command,
    mov_byte_to_address,
    out_al,
    serial_text,
    write_config,
    write_guest,
)

from jailer.policies import shipped_policy_path

pytestmark = [pytest.mark.kvm, pytest.mark.root]


@pytest.mark.parametrize("jailed", [False, True], ids=["per-thread", "jail+per-thread"])
def test_runs_without_proc_sys_or_environment(tmp_path: Path, jailed: bool) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    code = serial_text("no proc\n") + mov_byte_to_address(0xC000_0000, 123) + out_al(0x64, 0xFE) + HANG
    config = write_config(tmp_path, write_guest(tmp_path, code), vcpu_count=2)
    command = jailed_vmm_command(shipped_policy_path("vmm")) if jailed else VMM_COMMAND
    bwrap = [
        "bwrap", "--ro-bind", "/", "/", "--tmpfs", "/proc", "--tmpfs", "/sys", "--tmpfs", "/dev",
        "--dev-bind", "/dev/kvm", "/dev/kvm", "--dev-bind", "/dev/null", "/dev/null",
        "--bind", str(tmp_path), str(tmp_path), "--clearenv", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--chdir", "/", "--die-with-parent", "--",
    ]
    result = subprocess.run(
        [*bwrap, *command, "--config-file", str(config), "--no-api", "--boot-timer", "--log-path", str(tmp_path / "log")],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert (result.returncode, result.stdout) == (0, "no proc\n"), result.stderr
    log = (tmp_path / "log").read_text()
    assert "Guest-boot-time" in log and "i8042" in log

