"""diff between policy versions, and OCI/Docker profile import/export (runc's rules)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jailer import policies
from jailer.policies import PolicyError, bpf, cli, compiler, diff, model, oci, parser, syscalls
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


def _entry(**fields: object) -> dict[str, object]:
    return {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", **fields}]}


def _arg(**fields: object) -> dict[str, object]:
    return _entry(args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ", **fields}])


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": 5}, "p.json: architectures: must be a list, not a number"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": [1]}, r"p.json: architectures\[0\]: must be a string, not a number"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": "SCMP_ARCH_X86_64"}, "architectures: must be a list, not a string"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": 5}, "p.json: syscalls: must be a list, not a number"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {}}, "p.json: syscalls: must be a list, not an object"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [5]}, r"syscalls\[0\]: must be an object, not a number"),
        (_entry(includes="x"), r"syscalls\[0\].includes: must be an object, not a string"),
        (_entry(includes={"arches": 5}), r"syscalls\[0\].includes.arches: must be a list, not a number"),
        (_entry(includes={"arches": [1]}), r"syscalls\[0\].includes.arches\[0\]: must be a string"),
        (_entry(includes={"caps": "CAP_SYS_ADMIN"}), r"syscalls\[0\].includes.caps: must be a list"),
        (_entry(includes={"minKernel": 5}), r"syscalls\[0\].includes.minKernel: must be a kernel version such as \"4.8\", got 5"),
        (_entry(includes={"minKernel": "four"}), r"includes.minKernel: must be a kernel version"),
        (_entry(includes={"minKernel": "4." + "9" * 5000}), r"includes.minKernel: must be a kernel version"),
        (_entry(excludes="x"), r"syscalls\[0\].excludes: must be an object, not a string"),
        (_entry(excludes={"arches": [1]}), r"syscalls\[0\].excludes.arches\[0\]: must be a string"),
        (_entry(excludes={"caps": [None]}), r"syscalls\[0\].excludes.caps\[0\]: must be a string, not null"),
        (_entry(names="read"), r"syscalls\[0\].names: must be a list, not a string"),
        (_entry(names=[3]), r"syscalls\[0\].names\[0\]: must be a string"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"name": 5, "action": "SCMP_ACT_ALLOW"}]},
         r"syscalls\[0\].name: must be a string, not a number"),
        (_entry(name="write"), r"syscalls\[0\]: has both 'name' and 'names'"),
        (_entry(comment=5), r"syscalls\[0\].comment: must be a string"),
        (_entry(errnoRet="1"), r"syscalls\[0\].errnoRet: must be an unsigned 64-bit integer, got '1'"),
        (_entry(action=["SCMP_ACT_ALLOW"]), r"syscalls\[0\].action: unsupported action \[\"SCMP_ACT_ALLOW\"\]"),
        (_entry(args={"index": 0}), r"syscalls\[0\].args: must be a list, not an object"),
        (_entry(args=[5]), r"syscalls\[0\].args\[0\]: must be an object, not a number"),
        (_arg(op=[]), r"syscalls\[0\].args\[0\].op: unknown op \[\]"),
        (_arg(op={}), r"syscalls\[0\].args\[0\].op: unknown op \{\}"),
        (_arg(op=None), r"syscalls\[0\].args\[0\].op: unknown op null"),
        (_arg(index=True), r"syscalls\[0\].args\[0\].index: must be an unsigned 64-bit integer, got true"),
        (_arg(value=[1]), r"syscalls\[0\].args\[0\].value: must be an unsigned 64-bit integer, got \[1\]"),
        (_arg(valueTwo=-1), r"syscalls\[0\].args\[0\].valueTwo: must be an unsigned 64-bit integer, got -1"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                                                          {"names": ["read"], "action": "SCMP_ACT_KILL"}]},
         r"syscalls\[1\]: read gets kill_thread here but allow in syscalls\[0\]; use one action per syscall"),
    ],
)
def test_oci_import_checks_every_field_type(profile: dict[str, object], message: str) -> None:
    """Wrong types were TypeErrors (`unhashable type: 'dict'` for an object as op) or were
    silently dropped (`"name": 5`); each is now one line naming the field."""
    with pytest.raises(PolicyError, match=message) as raised:
        oci.import_profile(profile, source="p.json")
    assert "\n" not in str(raised.value)


def test_oci_import_refuses_duplicate_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["ptrace"], '
                       '"action": "SCMP_ACT_ERRNO", "action": "SCMP_ACT_ALLOW"}]}')
    assert cli.main(["import-oci", str(profile)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"jailer-policy: {profile}: duplicate key 'action'\n"


def test_oci_import_null_fields_mean_their_defaults() -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": None, "syscalls": [
        {"names": ["read"], "name": None, "action": "SCMP_ACT_ALLOW", "args": None, "comment": None,
         "includes": None, "excludes": {"arches": None, "caps": ["CAP_SYS_ADMIN"]}},
        {"name": "write", "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "3.10"}},
    ]}
    assert oci.import_profile(profile).category.syscalls() == ["read", "write"]


OCI_KEYS = ["defaultAction", "defaultErrnoRet", "architectures", "syscalls", "names", "name", "action", "errnoRet",
            "args", "index", "value", "valueTwo", "op", "comment", "includes", "excludes", "arches", "caps", "minKernel"]
oci_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**65), max_value=2**65) | st.text(max_size=8)
    | st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_CMP_EQ", "SCMP_ARCH_X86_64", "amd64", "read", "4.8"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(OCI_KEYS), children, max_size=6),
    max_leaves=30,
)


def _field(plausible: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly (9 in 10) a plausible value, so that the import gets past one field to the next;
    else any JSON value."""
    return st.integers(0, 9).flatmap(lambda draw: oci_values if draw == 0 else plausible)


_actions = st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_LOG", "SCMP_ACT_TRACE",
                            "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY"])
_condition = st.fixed_dictionaries({}, optional={
    "index": _field(st.integers(0, 6)), "value": _field(st.integers(0, 2**64)), "valueTwo": _field(st.integers(0, 2**33)),
    "op": _field(st.sampled_from(["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_X"])),
})
_filter = st.fixed_dictionaries({}, optional={
    "arches": _field(st.lists(st.sampled_from(["amd64", "arm64", "x86_64", "x32"]), max_size=2)),
    "caps": _field(st.lists(st.just("CAP_SYS_ADMIN"), max_size=1)), "minKernel": _field(st.sampled_from(["4.8", "99.1"])),
})
_entry = st.fixed_dictionaries({
    "action": _field(_actions),
    "names": _field(st.lists(st.sampled_from(["read", "ioctl", "clone", "no_such_call", "read\x00"]), max_size=3)),
}, optional={
    "name": _field(st.sampled_from(["write", "ptrace"])),
    "errnoRet": _field(st.integers(0, 4200)), "args": _field(st.lists(_condition, max_size=3)),
    "comment": _field(st.text(max_size=5)), "includes": _field(_filter), "excludes": _field(_filter),
})
oci_profiles = st.fixed_dictionaries({"defaultAction": _field(_actions)}, optional={
    "defaultErrnoRet": _field(st.integers(0, 4200)), "syscalls": _field(st.lists(_entry, max_size=4)),
    "architectures": _field(st.lists(st.sampled_from(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"]), max_size=2)),
})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(oci_profiles | oci_values)
def test_random_profiles_fail_only_with_policy_errors(document: object) -> None:
    """Never anything but a one-line PolicyError; and what is imported is a policy the
    toolchain's own parser accepts (the CLI prints it for exactly that use)."""
    try:
        imported = oci.import_profile(document, name="fuzz", source="fuzz.json")
    except PolicyError as error:
        assert "\n" not in str(error) and str(error).startswith("fuzz.json: "), str(error)
        return
    parser.policy_from_json(json.loads(json.dumps({"fuzz": imported.category.to_json()})), source="imported")


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
