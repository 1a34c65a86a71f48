"""What a whole VMM run imports, started the way the jail starts it (`jailer.microvm`'s
launcher, without `site`), per-thread filters on, from the first line to the guest's exit:
none of the stdlib modules kept off the start path (`tests/unit/vmm/test_startup_path.py`
says why), also not late, in the vCPU thread or the SIGSYS reporter's set-up; and where its
own modules come from (the start-path bundle the bootstrap writes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import PROJECT_ROOT
from support.vmm import mov_byte_to_address, out_al, serial_text, write_config, write_guest

pytestmark = pytest.mark.kvm

KEPT_OFF = {
    "site", "json", "re", "enum", "threading", "signal", "functools", "collections", "dataclasses", "typing", "pathlib",
    "ctypes",
}  # fmt: skip
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


SERVED_BY = """
import os, sys
sys.path.append({root!r})
real_exit = os._exit
def report_and_exit(status):
    loaders = {{name: type(module.__loader__).__name__ for name, module in sys.modules.items()
               if name.startswith("vmm.") and getattr(module, "__loader__", None) is not None}}
    sys.stderr.write("LOADERS " + " ".join(f"{{n}}={{l}}" for n, l in sorted(loaders.items())) + "\\n")
    real_exit(status)
os._exit = report_and_exit
from vmm.cli import main
sys.exit(main())
"""


def test_a_vmm_run_takes_its_start_path_from_the_bundle(tmp_path: Path) -> None:
    """The bundle the bootstrap wrote (`vmm.bundle`) serves the modules imported after
    `vmm.cli`; only `vmm`, `vmm.cli`, `vmm.errors` and `vmm.bundle` come before it."""
    from vmm import bundle

    if not os.path.exists(bundle.bundle_path()):
        pytest.fail(f"no start-path bundle at {bundle.bundle_path()}: run `python -m vmm.bundle` (the bootstrap does)")
    config = write_config(tmp_path, write_guest(tmp_path, out_al(0xF4, 0)))
    code = SERVED_BY.format(root=str(PROJECT_ROOT))
    result = subprocess.run(
        [sys.executable, "-IBS", "-c", code, "--config-file", str(config), "--no-api"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    line = next(line for line in result.stderr.splitlines() if line.startswith("LOADERS "))
    loaders = dict(item.split("=") for item in line.split()[1:])
    usual = {name for name, loader in loaders.items() if loader != "BundleFinder"}
    assert usual <= {"vmm.cli", "vmm.errors", "vmm.bundle"}, (
        f"not from the bundle: {sorted(usual)} (a stale bundle? run `python -m vmm.bundle`)"
    )
    assert {"vmm.builder", "vmm.config", "vmm.kvm.system", "vmm.vcpu", "vmm.loader.boot"} <= set(loaders)
