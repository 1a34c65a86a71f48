"""Malformed policies: one clear line naming category and rule, exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jailer.policies import PolicyError, cli, parser
from support.policies import category


def _error(document: object) -> str:
    with pytest.raises(PolicyError) as raised:
        parser.parse_policy(json.dumps(document) if not isinstance(document, str) else document, source="p.json")
    message = str(raised.value)
    assert "\n" not in message
    return message


def _rule(**fields: object) -> dict[str, object]:
    return {"vcpu": category([{"syscall": "read"}, {"syscall": "ioctl", **fields}])}


def _arg(**overrides: object) -> dict[str, object]:
    return _rule(args=[{"index": 1, "type": "dword", "op": "eq", "val": 44672, **overrides}])


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{", r"p.json: invalid JSON: .* line 1 column 2"),
        ('{"vcpu": ' + "9" * 5000 + "}", r"p.json: invalid JSON: Exceeds the limit \(4300 digits\)"),
        ([], "the top level must be an object of categories, not a list"),
        ({}, "no categories"),
        ({"vcpu": {"filter_action": "allow", "filter": []}}, "category 'vcpu': missing 'default_action'"),
        ({"vcpu": category([{"syscall": "no_such_call"}])}, r"category 'vcpu', rule 1 \(no_such_call\): unknown syscall"),
        (_arg(op="equals"), r"category 'vcpu', rule 2 \(ioctl\), args\[0\]: unknown op 'equals'"),
        (_arg(index=6), r"rule 2 \(ioctl\), args\[0\]: 'index' must be an integer from 0 to 5, got 6"),
        (_arg(index="1"), r"'index' must be an integer from 0 to 5"),
        (_arg(index=True), r"'index' must be an integer"),
        (_arg(val=-1), r"'val' must be an integer from 0 to 2\^64-1, got -1"),
        (_arg(val=2**64), r"'val' must be an integer"),
        (_arg(val="0xae80"), r"'val' must be an integer"),
        (_arg(type="word"), r"'type' must be \"dword\" or \"qword\""),
        (_arg(val=2**40), "dword val 0x10000000000 does not fit in 32 bits"),
        (_arg(op={"masked_eq": 4}, val=3), "has bits outside the mask"),
        (_arg(op={"masked_eq": -4}, val=0), "the masked_eq mask must be an integer"),
        (_arg(extra=1), r"args\[0\]: unknown key 'extra'"),
        (_rule(args={"index": 1}), r"rule 2 \(ioctl\): 'args' must be a list"),
        (_rule(args=[{"index": 0, "type": "qword", "op": "eq", "val": 1}, {"index": 0, "type": "qword", "op": "ne", "val": 2}]),
         "two conditions on the same argument index"),
        ({"vcpu": {"default_action": "kill", "filter_action": "allow", "filter": []}}, "default_action: unknown action 'kill'"),
        ({"vcpu": category([], on_match={"errno": 4095})}, r"errno needs an integer from 0 to 4094"),
        ({"vcpu": category([], on_match={"errno": -1})}, r"errno needs an integer"),
        ({"vcpu": category([{"syscall": "read"}], default="allow")}, "equals the default action"),
        ({"vcpu": {**category([]), "filtre": []}}, "category 'vcpu': unknown key 'filtre'"),
        ({"vcpu": category([{"syscall": 3}])}, r"rule 1: 'syscall' must be a syscall name"),
        ({"vcpu": category([{"syscall": "read\u0000x"}])}, r"unknown syscall 'read\\x00x'"),
        ({"vcpu": category([{"syscall": "READ"}])}, r"unknown syscall 'READ'"),
        ({"vcpu": category([{"syscall": "read", "action": "maybe"}])}, r"rule 1 \(read\), action: unknown action"),
        ('{"vcpu": {}, "vcpu": {}}', "duplicate key 'vcpu'"),
        ({"vcpu": category("read")}, "'filter' must be a list of rules, not a string"),
        ({"vcpu": category([{"syscall": "read"}, {"syscall": "read", "action": "trap"}])},
         r"rule 2 \(read\): its action trap differs from rule 1's allow for the same syscall"),
    ],
)
def test_malformed_policy_messages(document: object, expected: str) -> None:
    import re

    message = _error(document)
    assert message.startswith("p.json: ")
    assert re.search(expected, message), message


def test_cli_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_arg(index=9)))
    assert cli.main(["compile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "category 'vcpu', rule 2 (ioctl), args[0]" in err and "Traceback" not in err


def test_cli_unknown_category_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"vmm": category([{"syscall": "read"}])}))
    assert cli.main(["check", str(path), "--thread", "vcpu", "read"]) == 2
    assert "unknown category 'vcpu' (categories: vmm)" in capsys.readouterr().err


def test_cli_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["explain", str(tmp_path / "absent.json")]) == 2
    assert "cannot read the policy" in capsys.readouterr().err


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**65), max_value=2**65) | st.text(max_size=12)
    | st.sampled_from(["read", "ioctl", "allow", "trap", "eq", "masked_eq", "dword", "qword", "errno"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["vcpu", "default_action", "filter_action", "filter", "syscall", "args", "index", "type",
                         "op", "val", "masked_eq", "errno", "action", "comment", "x"]),
        children,
        max_size=5,
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_never_tracebacks(document: object) -> None:
    try:
        policy = parser.parse_policy(json.dumps(document), source="fuzz.json")
    except PolicyError as error:
        assert "\n" not in str(error) and str(error).startswith("fuzz.json")
        return
    from jailer.policies import compiler

    try:
        compiler.compile_policy(policy)
    except PolicyError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_random_text_never_tracebacks(text: str) -> None:
    try:
        parser.parse_policy(text, source="fuzz.json")
    except PolicyError as error:
        assert "\n" not in str(error)


def test_comments_are_kept_and_firecracker_shape_parses() -> None:
    policy = parser.parse_policy(json.dumps({"vmm": category([{"syscall": "ioctl", "comment": "why", "args": [
        {"index": 1, "type": "dword", "op": "eq", "val": 21505, "comment": "TCGETS"}]}], default="trap")}))
    rule = policy.category("vmm").rules[0]
    assert rule.comment == "why" and rule.args[0].comment == "TCGETS"
    assert policy.to_json()["vmm"]["filter"][0]["args"][0]["comment"] == "TCGETS"
