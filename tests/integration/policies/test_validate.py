"""`validate` on the real kernel: every rule's verdict observed in a forked child."""

from __future__ import annotations

from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import compiler, validate
from support.policies import FIRECRACKER_X86_64, category, write_policy


def _failures(results: list[validate.Result]) -> list[str]:
    return [f"{r.category} rule {r.rule_number} {r.syscall} {r.description}: {r.expected} != {r.observed}" for r in results if not r.ok]


def test_baseline_validates_on_this_kernel() -> None:
    results = validate.validate_policy(policies.load_policy(policies.shipped_policy_path("baseline")))
    assert _failures(results) == []
    observed = {r.observed for r in results}
    assert {"allowed", "errno 1", "errno 38", "SIGSYS"} <= observed


def test_firecracker_x86_64_validates_on_this_kernel(firecracker_reference: Path) -> None:
    results = validate.validate_policy(policies.load_policy(firecracker_reference / FIRECRACKER_X86_64))
    assert _failures(results) == []
    assert len(results) > 400


def test_validate_catches_a_program_that_does_not_match_the_policy(tmp_path: Path) -> None:
    document = {
        "strict": category([{"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 0x5421}]}]),
        "loose": category([{"syscall": "ioctl"}]),
    }
    policy = policies.load_policy(write_policy(tmp_path, document))
    wrong_program = compiler.compile_category(policy, "loose")
    results = validate.validate_category(policy.category("strict"), wrong_program)
    failures = [r for r in results if not r.ok]
    assert failures and all(r.expected == "SIGSYS" and r.observed == "allowed" for r in failures)


def test_probed_syscalls_never_run(tmp_path: Path) -> None:
    # kill(0, SIGKILL) would end the test's process group if the marker filter let it through.
    document = {"t": category([{"syscall": "kill", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 9}]}])}
    results = validate.validate_policy(policies.load_policy(write_policy(tmp_path, document)))
    assert _failures(results) == []
    assert any(r.syscall == "kill" and r.observed == "allowed" for r in results)


@pytest.mark.parametrize("name", ["trap", "kill_thread", {"errno": 13}])
def test_each_default_action_is_observed(tmp_path: Path, name: object) -> None:
    document = {"t": category([{"syscall": "getpid"}], default=name)}
    results = validate.validate_policy(policies.load_policy(write_policy(tmp_path, document)))
    assert _failures(results) == []


SHIPPED = sorted(Path(policies.__file__).parent.glob("*.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_shipped_policies_validate_on_this_kernel(path: Path) -> None:
    assert _failures(validate.validate_policy(policies.load_policy(path))) == []


def test_prctl_and_seccomp_rules_can_be_probed(tmp_path: Path) -> None:
    # The child installs filters with prctl and seccomp itself: probing them must not break that.
    document = {"t": category([
        {"syscall": "prctl", "args": [{"index": 0, "type": "dword", "op": "eq", "val": 15}]},
        {"syscall": "seccomp", "args": [{"index": 0, "type": "dword", "op": "eq", "val": 1}]},
    ])}
    results = validate.validate_policy(policies.load_policy(write_policy(tmp_path, document)))
    assert _failures(results) == []
    assert {r.observed for r in results if r.syscall in ("prctl", "seccomp")} == {"allowed", "SIGSYS"}
