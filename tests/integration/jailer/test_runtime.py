"""The computed Python runtime, alone, runs our packages in a throwaway jail.

bubblewrap builds the jail (new mount, pid, net, ipc, uts, user and cgroup namespaces, a
fresh root) with ONLY the computed read-only binds: no /proc, no /sys, no /dev, an empty
environment. What is not in the computed set must not be there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from jailer.runtime import python_runtime_binds, python_runtime_symlinks

pytestmark = pytest.mark.root

# What the jailed VMM does with its runtime: import itself, python-prctl and the policy
# toolchain, then compile a category through libseccomp (dlopen'ed by soname in the jail).
IMPORTS = (
    "import vmm, prctl, jailer.policies.loader; "
    "from jailer.policies import load_policy, shipped_policy_path; "
    "from jailer.policies.compiler import compile_category; "
    "assert len(compile_category(load_policy(shipped_policy_path('vmm')), 'vcpu')) % 8 == 0"
)
# pyseccomp (a dependency our code no longer imports) finds libseccomp with find_library,
# which cannot work in a jail (third-party code importing it must answer it with the soname).
PYSECCOMP_MODULES = ("vmm", "jailer.policies.loader", "prctl", "pyseccomp")


def _bwrap(
    binds: list[tuple[Path, Path]],
    *command: str,
    symlinks: Sequence[tuple[Path, str]] = (),
    devices: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    arguments = ["bwrap", "--unshare-all", "--die-with-parent", "--clearenv", "--chdir", "/"]
    for device in devices:
        arguments += ["--dev-bind", device, device]
    for source, target in binds:
        arguments += ["--ro-bind", str(source), str(target)]
    for link, target in symlinks:
        arguments += ["--symlink", target, str(link)]
    return subprocess.run([*arguments, "--", *command], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def binds() -> list[tuple[Path, Path]]:
    return python_runtime_binds(use_cache=False)


def test_packages_import_in_a_jail_with_only_the_computed_binds(binds: list[tuple[Path, Path]]) -> None:
    script = f"{IMPORTS}; import sys, os; print('ok', sys.prefix, os.path.exists('/proc'))"
    result = _bwrap(binds, sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", sys.prefix, "False"]
    assert result.stderr == ""  # no getpath warnings: the landmarks are there


def test_the_vmm_launcher_form_runs_isolated(binds: list[tuple[Path, Path]]) -> None:
    """How the jailer execs the VMM: ``<python> -IB`` importing vmm.cli (and, for the outer
    filter, the policy toolchain) — with UTF-8 as the jail's file system encoding."""
    script = "import vmm.cli, jailer.cli, jailer.policies.loader, sys; print(sys.getfilesystemencoding())"
    result = _bwrap(binds, sys.executable, "-IB", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "utf-8"


def test_find_library_does_not_work_in_the_jail() -> None:
    """Why our toolchain dlopens libseccomp by soname: without ldconfig/gcc/ld in the jail,
    find_library returns None, and pyseccomp (which relies on it) refuses to import."""
    binds = python_runtime_binds(modules=PYSECCOMP_MODULES, use_cache=False)
    result = _bwrap(binds, sys.executable, "-c", "import pyseccomp; print('ok')")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "RuntimeError: Unable to find libseccomp"
    probe = "import ctypes.util; print(ctypes.util.find_library('seccomp'))"
    assert _bwrap(binds, sys.executable, "-c", probe).stdout.strip() == "None"


def test_the_ldconfig_option_makes_find_library_work_given_dev_null() -> None:
    """find_library spawns ``/sbin/ldconfig -p`` with stdin from /dev/null: the option works
    only in a jail that may fork/exec and has /dev/null (Firecracker's jailer makes none)."""
    binds = python_runtime_binds(modules=PYSECCOMP_MODULES, ldconfig=True, use_cache=False)
    without_null = _bwrap(binds, sys.executable, "-c", "import pyseccomp; print('ok')")
    assert without_null.returncode == 1 and "Unable to find libseccomp" in without_null.stderr
    result = _bwrap(binds, sys.executable, "-c", "import pyseccomp; print('ok')", devices=["/dev/null"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_what_is_not_computed_is_absent(binds: list[tuple[Path, Path]]) -> None:
    import smtplib  # a stdlib module none of our packages imports

    smtplib_path = Path(smtplib.__file__)
    assert smtplib_path.exists()
    assert all(target != smtplib_path for _, target in binds)
    checks = {
        "smtplib": str(smtplib_path),
        "ldconfig": "/sbin/ldconfig",
        "shell": "/bin/sh",
        "passwd": "/etc/passwd",
        "rootfs_cli": str(Path(__file__).resolve().parents[3] / "rootfs-builder/rootfs_builder/cli.py"),
    }
    script = (
        "import os, json; "
        f"print(json.dumps({{name: os.path.exists(path) for name, path in {checks!r}.items()}}))"
    )
    result = _bwrap(binds, sys.executable, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"smtplib": false, "ldconfig": false, "shell": false, "passwd": false, "rootfs_cli": false}'
    missing = _bwrap(binds, sys.executable, "-c", "import smtplib")
    assert "ModuleNotFoundError: No module named 'smtplib'" in missing.stderr


def test_every_bind_is_read_only_and_a_real_path(binds: list[tuple[Path, Path]]) -> None:
    targets = [target for _, target in binds]
    assert len(targets) == len(set(targets))
    for source, target in binds:
        assert source.is_absolute() and target.is_absolute()
        assert source.exists() and not source.is_symlink(), source
    directory = next(target for source, target in binds if source.is_dir())
    file = next(target for source, target in binds if source.is_file())
    probe = f"import os; print(os.access({str(directory)!r}, os.W_OK), os.access({str(file)!r}, os.W_OK))"
    result = _bwrap(binds, sys.executable, "-c", probe)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_symlink_chain_variant_recreates_the_venv_links() -> None:
    binds = python_runtime_binds(keep_symlinks=True, use_cache=False)
    links = python_runtime_symlinks()
    assert links, "the venv interpreter is expected to be a symlink chain"
    script = f"{IMPORTS}; import os, sys; print(os.path.islink(sys.executable))"
    result = _bwrap(binds, sys.executable, "-c", script, symlinks=links)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_entry_points_give_a_tighter_set_that_still_runs_the_vmm(binds: list[tuple[Path, Path]]) -> None:
    """Dotted entry points bind only what they reach; bare package names, every module's needs."""
    broad = python_runtime_binds(modules=("vmm", "jailer", "prctl"), use_cache=False)
    assert set(binds) < set(broad)
    tight = python_runtime_binds(modules=("vmm.cli", "jailer.policies.loader", "prctl"), use_cache=False)
    assert set(tight) <= set(binds)
    result = _bwrap(tight, sys.executable, "-IB", "-c", f"{IMPORTS}; print('ok')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
