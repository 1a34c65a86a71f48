"""Per-thread filters on the real VMM: violations in a vCPU thread and in the main thread
end the process with status 148 and a named report; the shipped `jail` category plus the
per-thread ones run a guest to a clean exit; every thread shows its name and filters."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from support.vmm import HANG, VMM_COMMAND, jailed_vmm_command, out_al, run_vmm, serial_text, write_config, write_guest

from jailer.policies import shipped_policy_path

pytestmark = pytest.mark.kvm

BAD_SYSCALL = 148
VIOLATION_PORT = 0x4F0


def violation_guest(tmp_path: Path, request: int, *, pvh: bool = True) -> Path:
    code = serial_text("before\n") + out_al(VIOLATION_PORT, request) + serial_text("after\n") + out_al(0xF4, 0) + HANG
    return write_config(tmp_path, write_guest(tmp_path, code, pvh=pvh), vcpu_count=2)


@pytest.mark.parametrize(("request_code", "thread"), [(1, "vcpu0"), (2, "vmm")])
def test_violation_kills_the_process_with_a_named_report(tmp_path: Path, request_code: int, thread: str) -> None:
    metrics = tmp_path / "metrics"
    result = run_vmm(
        violation_guest(tmp_path, request_code), "--test-devices", "--metrics-path", str(metrics), log_path=tmp_path / "log"
    )
    line = f"seccomp violation: thread {thread} called socket (41); shutting down"
    assert result.returncode == BAD_SYSCALL
    assert line in result.log and f"vmm: {line}" in result.stderr
    assert result.stdout == "before\n", "the guest never runs past the violation"
    assert '"seccomp":{"num_faults":1}' in metrics.read_text()


@pytest.mark.parametrize(("request_code", "thread"), [(1, "vcpu0"), (2, "vmm")])
def test_violations_under_the_jail_layer_too(tmp_path: Path, request_code: int, thread: str) -> None:
    policy = shipped_policy_path("vmm")
    result = run_vmm(violation_guest(tmp_path, request_code), "--test-devices", jail_policy=policy)
    assert result.returncode == BAD_SYSCALL
    assert f"seccomp violation: thread {thread} called socket (41); shutting down" in result.stderr


def test_no_seccomp_says_so_and_lets_the_forbidden_call_through(tmp_path: Path) -> None:
    result = run_vmm(violation_guest(tmp_path, 1), "--test-devices", "--no-seccomp")
    assert "--no-seccomp: per-thread seccomp filters are disabled (debugging only)" in result.stderr
    assert (result.returncode, result.stdout) == (1, "before\nafter\n")


def test_violation_device_exists_only_with_test_devices(tmp_path: Path) -> None:
    result = run_vmm(violation_guest(tmp_path, 1))
    assert (result.returncode, result.stdout) == (1, "before\nafter\n")


@pytest.mark.parametrize("pvh", [True, False], ids=["pvh", "linux64"])
def test_guest_boots_to_a_clean_exit_under_every_category(tmp_path: Path, pvh: bool) -> None:
    """The `jail` category process-wide from before the exec, then `vmm` and `vcpu` per thread."""
    code = serial_text("jailed\n") + out_al(0x64, 0xFE) + HANG
    config = write_config(tmp_path, write_guest(tmp_path, code, pvh=pvh), vcpu_count=2)
    result = run_vmm(config, "--boot-timer", jail_policy=shipped_policy_path("vmm"), log_path=tmp_path / "log")
    assert (result.returncode, result.stdout) == (0, "jailed\n"), result.stderr
    assert "i8042" in result.log


def test_custom_policy_file_is_used(tmp_path: Path) -> None:
    """--seccomp-filter takes a JSON policy; one whose vcpu category lacks KVM_RUN kills at the first run."""
    import json

    document = json.loads(shipped_policy_path("vmm").read_text())
    document["vcpu"]["filter"] = [rule for rule in document["vcpu"]["filter"] if rule.get("args", [{}])[0].get("val") != 0xAE80]
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(document))
    config = write_config(tmp_path, write_guest(tmp_path, out_al(0xF4, 0) + HANG))
    result = run_vmm(config, "--seccomp-filter", str(policy))
    assert result.returncode == BAD_SYSCALL
    assert "seccomp violation: thread vcpu0 called ioctl (16)" in result.stderr


def thread_table(pid: int) -> dict[str, int]:
    table = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = dict(line.split(":\t", 1) for line in (task / "status").read_text().splitlines() if ":\t" in line)
        name = status["Name"].strip()
        if name.startswith("kvm-"):
            continue  # KVM's own kernel worker (kvm-nx-lpage-recovery) lives in the thread group
        table[name] = int(status.get("Seccomp_filters", "0").strip())
    return table


@pytest.mark.parametrize("jailed", [False, True], ids=["per-thread", "jail+per-thread"])
def test_each_thread_is_named_and_has_its_filters(tmp_path: Path, jailed: bool) -> None:
    config = write_config(tmp_path, write_guest(tmp_path, serial_text("up\n") + HANG), vcpu_count=2)
    prefix = jailed_vmm_command(shipped_policy_path("vmm")) if jailed else VMM_COMMAND
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(
        [*prefix, "--config-file", str(config), "--no-api"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        expected = {"vmm": 1 + jailed, "vcpu0": 1 + jailed, "vcpu1": 1 + jailed}
        table: dict[str, int] = {}
        for _ in range(100):  # the main thread installs its filter just after starting the vCPUs
            table = thread_table(process.pid)
            if table == expected:
                break
            time.sleep(0.05)
        assert table == expected
    finally:
        process.kill()
        process.communicate()


def test_violation_is_reported_even_with_logging_off(tmp_path: Path) -> None:
    result = run_vmm(violation_guest(tmp_path, 1), "--test-devices", "--level", "Off", log_path=tmp_path / "log")
    assert result.returncode == BAD_SYSCALL
    assert "seccomp violation: thread vcpu0 called socket (41)" in result.log
    assert "vmm: seccomp violation: thread vcpu0 called socket (41)" in result.stderr
