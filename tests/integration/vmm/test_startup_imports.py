"""What a whole VMM run imports, started the way the jail starts it (`jailer.microvm`'s
launcher, without `site`), per-thread filters on, from the first line to the guest's exit: none of the
stdlib modules kept off the start path (`tests/unit/vmm/test_startup_path.py` says why),
also not late, in the vCPU thread or the SIGSYS reporter's set-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import PROJECT_ROOT
from support.vmm import mov_byte_to_address, out_al, serial_text, write_config, write_guest

pytestmark = pytest.mark.kvm

KEPT_OFF = {"site", "json", "re", "enum", "threading", "signal", "functools", "collections", "dataclasses", "typing", "pathlib"}
BOOT_TIMER_ADDRESS = 0xC000_0000


def test_a_jailed_style_vmm_run_imports_none_of_the_heavy_modules(tmp_path: Path) -> None:
    from jailer.microvm import launcher_text
    from jailer.policies import precompiled, shipped_policy_file

    if precompiled.load_categories(shipped_policy_file("vmm"), ["vmm", "vcpu"], "x86_64") is None:
        pytest.fail("the stored seccomp programs are stale: run `jailer-policy precompile` (the bootstrap does)")
    guest = serial_text("up") + mov_byte_to_address(BOOT_TIMER_ADDRESS, 123) + out_al(0xF4, 0)
    config = write_config(tmp_path, write_guest(tmp_path, guest))
    launcher = tmp_path / "vmm-launcher"
    launcher.write_text(launcher_text())
    interpreter, flags = launcher_text().splitlines()[0].removeprefix("#!").split()
    assert interpreter == sys.executable
    result = subprocess.run(
        [interpreter, flags, "-X", "importtime", str(launcher), "--config-file", str(config), "--no-api", "--boot-timer"],
        capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]  # exit port value 0: status (0 << 1) | 1
    assert result.stdout == "up"
    assert "Guest-boot-time" in result.stderr
    imported = {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert {"vmm.jsontext", "vmm.threads", "vmm.vcpu", "jailer.policies.loader"} <= imported
    assert not KEPT_OFF & imported, sorted(KEPT_OFF & imported)
