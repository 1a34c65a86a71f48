"""diff between policy versions, and OCI/Docker profile import/export (runc's rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import PolicyError, bpf, compiler, diff, model, oci, syscalls
from support.policies import FIRECRACKER_X86_64, category, write_policy

IOCTL_TCGETS = {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 0x5401}]}
IOCTL_TCSETS = {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 0x5402}]}


def _changes(tmp_path: Path, old: list[dict[str, object]], new: list[dict[str, object]], **kwargs: object) -> dict[str, str]:
    old_policy = policies.load_policy(write_policy(tmp_path, {"t": category(old)}, "old.json"))
    new_policy = policies.load_policy(write_policy(tmp_path, {"t": category(new, **kwargs)}, "new.json"))
    return {change.subject: change.kind for change in diff.diff_policies(old_policy, new_policy)}


def test_diff_kinds(tmp_path: Path) -> None:
    old = [{"syscall": "read"}, {"syscall": "write"}, IOCTL_TCGETS, {"syscall": "fcntl"}, {"syscall": "futex", "args": [
        {"index": 1, "type": "dword", "op": "eq", "val": 0}]}]
    new = [{"syscall": "read"}, {"syscall": "close"}, IOCTL_TCGETS, IOCTL_TCSETS,
           {"syscall": "fcntl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 1}]},
           {"syscall": "futex", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 1}]}]
    assert _changes(tmp_path, old, new, default="trap") == {
        "default_action": "changed", "write": "removed", "close": "added", "ioctl": "widened",
        "fcntl": "narrowed", "futex": "changed",
    }


def test_identical_policies_have_no_diff(firecracker_reference: Path) -> None:
    policy = policies.load_policy(firecracker_reference / FIRECRACKER_X86_64)
    assert diff.diff_policies(policy, policy) == []


def test_oci_import_follows_runc_rules() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [
            {"names": ["read", "write", "no_such_syscall"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},  # equals the default: skipped
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"]}},
        ],
    }
    imported = oci.import_profile(profile)
    cat = imported.category
    assert imported.skipped_names == ["no_such_syscall"]
    assert cat.default_action == model.Action("errno", 1) and cat.filter_action == model.Action("allow")
    assert cat.syscalls() == ["arch_prctl", "clone", "clone3", "personality", "read", "write"]
    clone = next(rule for rule in cat.rules if rule.syscall == "clone")
    assert clone.args == (model.Condition(0, "qword", "masked_eq", 0, mask=2114060288),)
    personality = [rule for rule in cat.rules if rule.syscall == "personality"]
    assert len(personality) == 2  # same index twice: separate ORed rules
    program = compiler.compile_category(model.Policy({"oci": cat}), "oci")

    def verdict(name: str, *args: int) -> model.Action:
        return bpf.emulate(program, bpf.SeccompData(syscalls.number(name), args=args)).action

    assert verdict("clone", 0x3D0F00) == model.Action("allow")
    assert verdict("clone", 0x10000000) == model.Action("errno", 1)
    assert verdict("clone3") == model.Action("errno", 38)
    assert verdict("personality", 8) == model.Action("allow")


def test_oci_round_trip_keeps_semantics(firecracker_reference: Path) -> None:
    policy = policies.load_policy(firecracker_reference / FIRECRACKER_X86_64)
    for name, profile in oci.export_policy(policy).items():
        assert profile["architectures"] == ["SCMP_ARCH_X86_64"]
        back = oci.import_profile(profile, name=name).category
        assert back.default_action == policy.category(name).default_action
        assert [rule.key() for rule in back.rules] == [rule.key() for rule in policy.category(name).rules]
        assert compiler.compile_category(model.Policy({name: back}), name) == compiler.compile_category(policy, name)


def test_dword_eq_exports_as_masked_eq_low_32() -> None:
    cat = model.Category("t", model.Action("trap"), model.Action("allow"),
                         (model.Rule("ioctl", (model.Condition(1, "dword", "eq", 0x5401),)),))
    assert oci.export_category(cat)["syscalls"][0]["args"] == [
        {"index": 1, "value": 0xFFFFFFFF, "valueTwo": 0x5401, "op": "SCMP_CMP_MASKED_EQ"}]


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({}, "not an OCI seccomp profile"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_AARCH64"]}, "does not cover SCMP_ARCH_X86_64"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
          "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}]}]}, "index must be 0 to 5"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
          "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}, "unknown op"),
    ],
)
def test_oci_import_errors(profile: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        oci.import_profile(profile)


def test_diff_direction_for_deny_rules(tmp_path: Path) -> None:
    thread = {"index": 0, "type": "qword", "op": {"masked_eq": 0x10000000}, "val": 0x10000000}
    old = [{"syscall": "clone", "args": [thread]}, {"syscall": "ptrace"}]
    new = [{"syscall": "clone"}]
    changes = _changes_deny(tmp_path, old, new)
    assert changes == {"clone": "narrowed", "ptrace": "removed"}  # clone now always denied: fewer calls get through


def _changes_deny(tmp_path: Path, old: list[dict[str, object]], new: list[dict[str, object]]) -> dict[str, str]:
    def doc(rules: list[dict[str, object]]) -> dict[str, object]:
        return {"t": category(rules, default="allow", on_match={"errno": 1})}

    old_policy = policies.load_policy(write_policy(tmp_path, doc(old), "old.json"))
    new_policy = policies.load_policy(write_policy(tmp_path, doc(new), "new.json"))
    return {change.subject: change.kind for change in diff.diff_policies(old_policy, new_policy)}
