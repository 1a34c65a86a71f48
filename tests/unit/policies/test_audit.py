"""audit findings on small policies with known flaws, and on everything the project ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import audit, cli, compiler, model
from support.policies import category, write_policy

SHIPPED = sorted(Path(policies.__file__).parent.glob("*.json"))

PROT_EXEC_OFF = {"index": 2, "type": "dword", "op": {"masked_eq": 4}, "val": 0}


def _ids(rules: list[dict[str, object]], tmp_path: Path, **kwargs: object) -> set[str]:
    policy = policies.load_policy(write_policy(tmp_path, {"t": category(rules, **kwargs)}))
    return {finding.id for finding in audit.audit_policy(policy)}


def test_tight_allowlist_has_no_high_findings(tmp_path: Path) -> None:
    ids = _ids([{"syscall": "read"}, {"syscall": "restart_syscall"}, {"syscall": "mmap", "args": [PROT_EXEC_OFF]},
                {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 0xAE80}]}], tmp_path)
    assert ids == set()


@pytest.mark.parametrize(
    ("rules", "finding"),
    [
        ([{"syscall": "ptrace"}], "dangerous:ptrace"),
        ([{"syscall": "io_uring_setup"}], "dangerous:io_uring_setup"),
        ([{"syscall": "process_vm_writev"}], "dangerous:process_vm_writev"),
        ([{"syscall": "execveat"}], "dangerous:execveat"),
        ([{"syscall": "personality"}], "dangerous:personality"),
        ([{"syscall": "ioctl"}], "unfiltered:ioctl"),
        ([{"syscall": "socket"}], "unfiltered:socket"),
        ([{"syscall": "mmap"}], "wx-mapping:mmap"),
        ([{"syscall": "mprotect", "args": [{"index": 2, "type": "dword", "op": "eq", "val": 7}]}], "wx-mapping:mprotect"),
        ([{"syscall": "clone"}], "clone-namespaces"),
        ([{"syscall": "clone", "args": [{"index": 0, "type": "qword", "op": {"masked_eq": 0x10000}, "val": 0x10000}]},
          {"syscall": "clone3"}], "equivalent-gap:clone/clone3"),
        ([{"syscall": "openat", "args": [{"index": 2, "type": "dword", "op": "eq", "val": 0}]}, {"syscall": "openat2"}],
         "equivalent-gap:openat/openat2"),
        ([{"syscall": "read"}, {"syscall": "read"}], "duplicate-rule:2"),
        ([{"syscall": "read"}], "restart-syscall-denied"),
        ([{"syscall": "read", "args": [{"index": 0, "type": "qword", "op": "lt", "val": 0}]}], "dead-rule:1"),
    ],
)
def test_flawed_allowlists(tmp_path: Path, rules: list[dict[str, object]], finding: str) -> None:
    assert finding in _ids(rules, tmp_path)


def test_clone_restricted_to_threads_is_not_flagged(tmp_path: Path) -> None:
    rules = [{"syscall": "clone", "args": [{"index": 0, "type": "qword", "op": {"masked_eq": 0x10000}, "val": 0x10000}]},
             {"syscall": "clone3", "action": {"errno": 38}}]
    ids = _ids(rules, tmp_path)
    assert not {"clone-namespaces", "equivalent-gap:clone/clone3"} & ids
    assert "clone-namespaces-privileged" in ids  # CLONE_THREAD|CLONE_NEWNET is still accepted by the kernel


def test_deny_list_findings(tmp_path: Path) -> None:
    ids = _ids([{"syscall": "execve"}], tmp_path, default="allow", on_match={"errno": 1})
    assert {"default-allow", "dangerous:ptrace", "equivalent-gap:execve/execveat", "clone-namespaces"} <= ids


def test_kill_thread_is_flagged(tmp_path: Path) -> None:
    assert "kill-thread" in _ids([{"syscall": "read"}], tmp_path, default="kill_thread")


def test_program_checks_catch_a_filter_without_arch_or_x32_checks() -> None:
    allow_all = bytes.fromhex("0600000000 00ff7f".replace(" ", ""))  # RET ALLOW, no checks at all
    cat = model.Category("t", model.Action("kill_process"), model.Action("allow"), (model.Rule("read"),))
    ids = {finding.id for finding in audit.audit_category(cat, allow_all)}
    assert {"arch-not-validated", "x32-not-blocked"} <= ids


def test_acknowledged_findings_do_not_fail_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = {"t": {**category([{"syscall": "ptrace"}]), "audit_acknowledged": {"dangerous:ptrace": "a debugger"}}}
    path = write_policy(tmp_path, document)
    assert cli.main(["audit", str(path)]) == 0
    assert "high (ack)" in capsys.readouterr().out
    unacknowledged = write_policy(tmp_path, {"t": category([{"syscall": "ptrace"}])}, "u.json")
    assert cli.main(["audit", str(unacknowledged)]) == 1


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_shipped_policies_have_no_unacknowledged_high_findings(path: Path) -> None:
    policy = policies.load_policy(path)
    assert compiler.compile_policy(policy)
    unacknowledged = [f"{f.category}: {f.id}: {f.title}" for f in audit.audit_policy(policy)
                      if f.severity == "high" and f.acknowledged is None]
    assert unacknowledged == []
