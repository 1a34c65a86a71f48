"""Argument vectors that exercise each rule: one that matches it, and perturbations that do not.

Shared by the emulator cross-check (tests), `validate` (the real kernel) and `audit`. The
expected verdict of every probe comes from the model (`Category.decide`), so a perturbed value
that another rule happens to allow is expected to be allowed: no probe asserts something the
policy does not say.
"""

from __future__ import annotations

from dataclasses import dataclass

from jailer.policies import model

# Upper-half garbage used to prove that dword `eq` compares only the low 32 bits.
HIGH_GARBAGE = 0xDEADBEEF_00000000


@dataclass(frozen=True)
class Probe:
    """One system call to try: its arguments, what the policy says, and why it is tried."""

    syscall: str
    args: tuple[int, ...]
    expected: model.Action
    rule_number: int
    description: str


def matching_args(rule: model.Rule) -> tuple[int, ...] | None:
    """Arguments satisfying every condition of `rule`, or None if no value can (a dead rule)."""
    args = [0] * 6
    for condition in rule.args:
        value = _satisfying(condition)
        if value is None:
            return None
        args[condition.index] = value
    return tuple(args) if rule.matches(args) else None


def _satisfying(condition: model.Condition) -> int | None:
    val = condition.val
    return {
        "eq": val,
        "masked_eq": val,
        "ne": val ^ 1,
        "lt": val - 1 if val > 0 else None,
        "le": val,
        "gt": val + 1 if val < model.U64 else None,
        "ge": val,
    }[condition.op]


def perturbed(condition: model.Condition) -> list[int]:
    """Values that violate `condition` (Firecracker's idea: `val ^ mask` for masked_eq)."""
    val = condition.val
    candidates = {
        "eq": [val ^ 1, val + 1, (val ^ 0x80000000) & model.U32 if condition.type == "dword" else val ^ (1 << 63)],
        "masked_eq": [val ^ condition.effective_mask],
        "ne": [val],
        "lt": [val, val + 1],
        "le": [val + 1],
        "gt": [val, val - 1],
        "ge": [val - 1],
    }[condition.op]
    return [value for value in candidates if 0 <= value <= model.U64 and not condition.matches(_at(condition.index, value))]


def _at(index: int, value: int) -> list[int]:
    args = [0] * 6
    args[index] = value
    return args


def rule_probes(category: model.Category) -> list[Probe]:
    """For every rule: the matching call, a dword-quirk variant, and each condition perturbed."""
    probes: list[Probe] = []
    for number, rule in enumerate(category.rules, 1):
        base = matching_args(rule)
        if base is None:
            continue
        probes.append(_probe(category, rule.syscall, base, number, "matching"))
        for condition in rule.args:
            if condition.op == "eq" and condition.type == "dword":
                args = list(base)
                args[condition.index] |= HIGH_GARBAGE
                probes.append(_probe(category, rule.syscall, tuple(args), number, f"arg{condition.index} high half set"))
            for value in perturbed(condition):
                args = list(base)
                args[condition.index] = value
                probes.append(_probe(category, rule.syscall, tuple(args), number, f"arg{condition.index} = {value:#x}"))
    return probes


def _probe(category: model.Category, syscall: str, args: tuple[int, ...], number: int, why: str) -> Probe:
    expected, _ = category.decide(syscall, args)
    return Probe(syscall=syscall, args=args, expected=expected, rule_number=number, description=why)
