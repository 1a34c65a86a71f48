"""The README's main job, run as an operator runs it: one jailed microVM, summarised."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import PROJECT_ROOT

pytestmark = [pytest.mark.root, pytest.mark.kvm]


def test_demo_launches_inspects_and_cleans_up(tmp_path: Path) -> None:
    base = tmp_path / "jails"
    cgroup_parents = list(Path("/sys/fs/cgroup").glob("*/stockade-demo"))
    result = subprocess.run(
        [sys.executable, "-m", "jailer.demo", "--chroot-base-dir", str(base)],
        capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    for heading in ("== Jail", "== Seccomp filters in force", "== Guest output", "== Boot and exit", "== Clean-up"):
        assert heading in output
    assert "vmm          2 filters: jail, vmm" in output
    assert "vcpu0        2 filters: jail, vcpu" in output
    assert "vcpu1        2 filters: jail, vcpu" in output
    assert "new: mnt pid ipc uts" in output
    assert "| guest: done" in output
    assert "Guest-boot-time =" in output
    assert "status 0 (clean shutdown through the guest's i8042 reset)" in output
    assert "removed jail directory" in output
    if Path("/sys/module/kvm_pvm").exists():
        assert "boots the built-in freestanding test guest" in output
    leftovers = [path for path in base.rglob("*") if path.name not in ("vmm",)]
    assert leftovers == [], leftovers
    assert list(Path("/sys/fs/cgroup").glob("*/stockade-demo")) == cgroup_parents
