"""The outer seccomp layer the jailer installs last before exec (issue 7).

Tests that need the policy toolchain (`jailer.policies`: load_policy, shipped_policy_path,
compiler.compile_category, loader.install_filter) skip, naming what is missing, until it exists.
"""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest

from jailer.seccomp import NO_SECCOMP_NOTICE
from support.jail import Jail, error_text, seccomp_toolchain_missing

pytestmark = pytest.mark.root


@pytest.fixture
def toolchain() -> None:
    reason = seccomp_toolchain_missing()
    if reason:
        pytest.skip(reason)


def write_policy(path: Path) -> Path:
    """Two categories in Firecracker's seccompiler JSON: each denies io_uring_setup differently."""
    policy = {
        "first": {"default_action": "allow", "filter_action": {"errno": errno.EOPNOTSUPP},
                  "filter": [{"syscall": "io_uring_setup"}]},
        "second": {"default_action": "allow", "filter_action": {"errno": errno.EXDEV},
                   "filter": [{"syscall": "io_uring_setup"}]},
    }
    path.write_text(json.dumps(policy))
    return path


def test_no_seccomp_installs_nothing_and_says_so(jail: Jail) -> None:
    probe = jail.start("--no-seccomp")
    status = probe.status()
    assert (status["Seccomp"], status["Seccomp_filters"]) == ("0", "0")
    assert probe.report["Seccomp"] == 0
    assert probe.report["io_uring_setup_errno"] == errno.EFAULT  # reached the kernel
    probe.kill()
    probe.jailer.wait(timeout=30)
    assert probe.jailer.stderr is not None
    assert probe.jailer.stderr.read().decode() == NO_SECCOMP_NOTICE + "\n"


def test_default_baseline_filter(jail: Jail, toolchain: None) -> None:
    probe = jail.start()
    status = probe.status()
    assert (status["Seccomp"], status["Seccomp_filters"]) == ("2", "1")
    assert probe.report["Seccomp"] == 2
    assert probe.report["clone3_errno"] == errno.ENOSYS
    assert probe.report["io_uring_setup_errno"] == errno.EPERM


@pytest.mark.parametrize(("category", "expected"), [("first", errno.EOPNOTSUPP), ("second", errno.EXDEV)])
def test_policy_category_is_installed(jail: Jail, toolchain: None, tmp_path: Path, category: str,
                                      expected: int) -> None:
    policy = write_policy(tmp_path / "policy.json")
    probe = jail.start("--seccomp-policy", str(policy), "--seccomp-category", category)
    assert probe.status()["Seccomp_filters"] == "1"
    assert probe.report["io_uring_setup_errno"] == expected


def test_unknown_category_fails_before_anything_exists(jail: Jail, toolchain: None, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.json")
    result = jail.run("--seccomp-policy", str(policy), "--seccomp-category", "nope")
    assert error_text(result) == f"Seccomp category nope not found in {policy}\n"
    assert list(jail.base.iterdir()) == []


def test_unparsable_policy_is_one_clear_line(jail: Jail, toolchain: None, tmp_path: Path) -> None:
    policy = tmp_path / "broken.json"
    policy.write_text("{ not json")
    text = error_text(jail.run("--seccomp-policy", str(policy)))
    assert text.startswith(f"Invalid seccomp policy {policy}: ")
    assert text.count("\n") == 1
    assert list(jail.base.iterdir()) == []


def test_missing_policy_file(jail: Jail, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    text = error_text(jail.run("--seccomp-policy", str(missing)))
    if seccomp_toolchain_missing():
        assert text.startswith("Seccomp policy toolchain unavailable: ")
    else:
        assert text == f"Invalid seccomp policy {missing}: No such file or directory (os error 2)\n"
    assert list(jail.base.iterdir()) == []


def test_no_seccomp_conflicts_with_a_policy(jail: Jail, tmp_path: Path) -> None:
    text = error_text(jail.run("--no-seccomp", "--seccomp-policy", str(tmp_path)))
    assert text == ("Failed to parse arguments: The argument 'no-seccomp' cannot be used with "
                    "'seccomp-policy' or 'seccomp-category'.\n")


@pytest.fixture
def fresh_baseline_store(toolchain: None) -> bytes:
    """The program `jailer-policy precompile` stored for the shipped baseline (the bootstrap's
    setup step writes it); skips, saying so, where the package has no fresh one."""
    from jailer.policies import precompiled, shipped_policy_file

    program = precompiled.load(shipped_policy_file("baseline"), "baseline")
    if program is None:
        pytest.skip("no fresh precompiled baseline program: run `jailer-policy precompile`")
    return program


def test_default_filter_comes_from_the_precompiled_store(jail: Jail, fresh_baseline_store: bytes) -> None:
    import sys

    command = jail.argv()
    command = [sys.executable, "-X", "importtime", *(command if command[0].endswith("jailer") else command[1:])]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "jailer.policies.precompiled" in imported
    assert not {"jailer.policies.compiler", "jailer.policies.parser", "json"} & imported
    report = json.loads(result.stdout)
    assert report["Seccomp"] == 2
    assert report["clone3_errno"] == errno.ENOSYS and report["io_uring_setup_errno"] == errno.EPERM
