"""The compiler never emits a program weaker than its policy, and never hangs, even where
libseccomp errs.

libseccomp before 2.6.1 mis-merges several ordered 64-bit comparisons on one argument
(GHSA-4q85-33p6-j5g6): found here by `test_model_vs_libseccomp`'s property test, on Debian
12's libseccomp 2.5.4. The compiler checks that shape in the emulator and refuses it. The same
property test found rules libseccomp's merge loops on for ever (`seccomp_rule_add` never
returns): the compiler refuses their shape before libseccomp sees it.
"""

from __future__ import annotations

import ctypes
import json
import re
from pathlib import Path

import pytest

from jailer.policies import PolicyError, bpf, compiler, load_policy, shipped_policy_names, shipped_policy_path, syscalls
from jailer.policies.model import Policy
from support.policies import category, write_policy

GHSA_SHAPE = {
    "t": {
        "default_action": {"errno": 1},
        "filter_action": "allow",
        "filter": [
            {"syscall": "ioctl", "args": [{"index": 0, "type": "qword", "op": "ge", "val": 4294967297}]},
            {"syscall": "ioctl", "args": [{"index": 0, "type": "qword", "op": "lt", "val": 1}]},
        ],
    }
}


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def libseccomp_version() -> tuple[int, int, int]:
    library = syscalls._libseccomp()
    library.seccomp_version.restype = ctypes.POINTER(_Version)
    version = library.seccomp_version().contents
    return version.major, version.minor, version.micro


def refused_or_compiled_right(policy: Policy, syscall: str, wrong: str, cases: list[tuple[tuple[int, ...], str]],
                              fixed_in: tuple[int, int, int] | None = None) -> None:
    """Compiling category `t` is refused for the mis-merge `wrong` (on a libseccomp before
    `fixed_in`, when given), or gives a program that decides each of `cases` right."""
    try:
        program = compiler.compile_category(policy, "t")
    except PolicyError as error:
        assert "GHSA-4q85-33p6-j5g6" in str(error)
        assert f"{wrong} but the policy says" in str(error), str(error)
        if fixed_in is not None:
            assert libseccomp_version() < fixed_in, "a fixed libseccomp must compile this shape right"
        return
    for args, expected in cases:
        got = bpf.emulate(program, bpf.SeccompData(syscalls.number(syscall), args=(*args, 0, 0, 0, 0, 0)[:6])).action
        assert str(got) == expected, args


def test_mis_merged_ranges_are_refused_or_compiled_right(tmp_path: Path) -> None:
    path = tmp_path / "ranges.json"
    path.write_text(json.dumps(GHSA_SHAPE))
    cases = [((0,), "allow"), ((1,), "errno(1)"), ((1 << 32,), "errno(1)"), (((1 << 32) + 1,), "allow")]
    refused_or_compiled_right(load_policy(path), "ioctl", "ioctl(1, 0, 0, 0, 0, 0) gets allow", cases, (2, 6, 1))


@pytest.mark.parametrize("name", shipped_policy_names())
def test_shipped_policies_do_not_have_the_shape(name: str) -> None:
    """So compiling them pays nothing for the guard (and libseccomp's bug cannot touch them)."""
    policy = load_policy(shipped_policy_path(name))
    for category in policy.categories.values():
        assert compiler._merged_branching(category) == [], category.name


def _ioctl(*conditions: tuple[int, str, int]) -> dict[str, object]:
    return {"syscall": "ioctl", "args": [{"index": index, "type": "qword", "op": op, "val": val}
                                         for index, op, val in conditions]}


def _no_libseccomp() -> None:
    raise AssertionError("libseccomp was called")


# Each of these loops for ever in libseccomp 2.5.4's seccomp_rule_add (the first is the
# property test's find); the compiler's message names the rule it refuses.
LOOPING = [
    ([_ioctl((0, "ne", 128), (1, "ge", 5)), _ioctl((0, "ne", 128), (1, "ne", 0))],
     "rule 1 (ioctl): compares arg0 with ne before arg1 while rule 2 also compares several arguments of ioctl"),
    ([_ioctl((0, "gt", 7), (1, "ge", 5)), _ioctl((0, "gt", 7), (1, "ne", 0))],
     "rule 1 (ioctl): compares arg0 with gt before arg1 while rule 2 also"),
    ([_ioctl((0, "eq", 2), (1, "ne", 3), (2, "ge", 5)), _ioctl((0, "eq", 2), (1, "ne", 3), (2, "ne", 0))],
     "rule 1 (ioctl): compares arg1 with ne before arg2 while rule 2 also"),
    ([_ioctl((1, "gt", 1), (0, "le", 1)), {"syscall": "futex"},
      {"syscall": "ioctl", "args": [{"index": 0, "type": "qword", "op": "le", "val": 1},
                                    {"index": 1, "type": "dword", "op": "eq", "val": 0xFFFFFFFF}]}],
     "rule 1 (ioctl): compares arg0 with le before arg1 while rule 3 also"),
]


@pytest.mark.parametrize(("rules", "message"), LOOPING)
def test_rules_libseccomp_loops_on_are_refused_before_it_sees_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rules: list[dict[str, object]], message: str) -> None:
    policy = load_policy(write_policy(tmp_path, {"t": category(rules, default={"errno": 1}, on_match={"errno": 38})}))
    monkeypatch.setattr(compiler, "_bindings", _no_libseccomp)
    with pytest.raises(PolicyError, match=re.escape(message)) as raised:
        compiler.compile_category(policy, "t")
    assert "libseccomp can loop for ever merging such rules, so they are refused" in str(raised.value)


@pytest.mark.parametrize(
    "rules",
    [
        [_ioctl((0, "ne", 128), (1, "ge", 5)), _ioctl((1, "ne", 0))],  # one rule compares several arguments
        [_ioctl((0, "eq", 128), (1, "ge", 5)), _ioctl((0, "eq", 128), (1, "ne", 0))],  # ne/ge on the last one only
        [_ioctl((0, "ne", 128), (1, "ge", 5)), {"syscall": "read", "args": [{"index": 0, "type": "qword", "op": "ne",
                                                                              "val": 1}, {"index": 1, "type": "qword",
                                                                              "op": "eq", "val": 2}]}],
    ],
)
def test_shapes_next_to_it_compile(tmp_path: Path, rules: list[dict[str, object]]) -> None:
    """Each of these compiled on libseccomp 2.5.4, so the refusal stops short of them."""
    policy = load_policy(write_policy(tmp_path, {"t": category(rules, default={"errno": 38})}))
    assert compiler.compile_category(policy, "t")


@pytest.mark.parametrize(
    "second",
    [
        _ioctl((0, "le", 0), (1, "eq", 0)),
        _ioctl((0, "le", 0), (1, "lt", 0)),  # a rule nothing matches merges wrongly too
    ],
)
def test_a_mis_merge_seen_only_through_another_argument_is_refused(tmp_path: Path, second: dict[str, object]) -> None:
    """`arg0 < 1` beside `arg0 <= 0 && arg1 ...`: libseccomp 2.5.4 lets ioctl(0, 1) through but not
    ioctl(0, 0), so the check must vary the other argument too (`test_model_vs_libseccomp` found both)."""
    rules = [_ioctl((0, "lt", 1)), second]
    policy = load_policy(write_policy(tmp_path, {"t": category(rules, default="allow", on_match={"errno": 1})}))
    cases = [((0, 0), "errno(1)"), ((0, 1), "errno(1)"), ((1, 0), "allow"), ((1, 1), "allow")]
    refused_or_compiled_right(policy, "ioctl", "ioctl(0, 1, 0, 0, 0, 0) gets allow", cases, (2, 6, 1))


def test_a_mis_merged_ne_is_refused(tmp_path: Path) -> None:
    """libseccomp 2.5.4 merges `arg0 != 1 && arg1 & 0x80 == 0` and `arg0 != 0` into a tree that
    lets futex(0, 0x80) through (`test_model_vs_libseccomp` found it): no ordered comparison in
    sight, so the check covers every syscall with several rules and ne/lt/le/gt/ge among them."""
    rules = [{"syscall": "futex", "args": [{"index": 0, "type": "qword", "op": "ne", "val": 1},
                                          {"index": 1, "type": "qword", "op": {"masked_eq": 0x80}, "val": 0}]},
             {"syscall": "futex", "args": [{"index": 0, "type": "qword", "op": "ne", "val": 0}]}]
    policy = load_policy(write_policy(tmp_path, {"t": category(rules, default={"errno": 1})}))
    cases = [((0, 0x80), "errno(1)"), ((0, 0), "allow"), ((1, 0x80), "allow"), ((1, 0), "allow")]
    refused_or_compiled_right(policy, "futex", "futex(0, 128, 0, 0, 0, 0) gets allow", cases)


def test_the_merge_check_is_bounded_and_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ordered comparisons on two arguments whose boundary values combine beyond the bound are
    refused without emulating anything, not checked for minutes, nor passed unchecked."""

    def emulate(*args: object) -> None:
        raise AssertionError("the merge check emulated the program")

    monkeypatch.setattr(bpf, "emulate", emulate)
    rules = [_ioctl((index, "gt", 3 * n + 1)) for index in (0, 1) for n in range(40)]
    policy = load_policy(write_policy(tmp_path, {"t": category(rules, default={"errno": 1})}))
    with pytest.raises(PolicyError, match=r"ioctl's comparisons give \d+ combinations of boundary values to check"):
        compiler.compile_category(policy, "t")
