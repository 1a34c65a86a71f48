"""Compare two policies category by category: what an update allows that it did not before.

Per syscall, a change is `added`/`removed` (it gained or lost all its rules), `widened` (new
rule alternatives or a condition dropped: more calls get through), `narrowed` (the reverse) or
`changed` (both at once). For rules that deny (a deny-list's errno rules) the direction is
reversed: more deny rules let fewer calls through. Category-level action changes are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from jailer.policies import model


@dataclass(frozen=True)
class Change:
    category: str
    subject: str
    kind: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return dict(self.__dict__)


def diff_policies(old: model.Policy, new: model.Policy) -> list[Change]:
    changes: list[Change] = []
    for name in old.categories.keys() - new.categories.keys():
        changes.append(Change(name, "*", "category removed", f"{len(old.categories[name].rules)} rules"))
    for name in new.categories.keys() - old.categories.keys():
        changes.append(Change(name, "*", "category added", f"{len(new.categories[name].rules)} rules"))
    for name in old.categories.keys() & new.categories.keys():
        changes.extend(diff_categories(old.categories[name], new.categories[name]))
    return sorted(changes, key=lambda change: (change.category, change.subject, change.kind))


def diff_categories(old: model.Category, new: model.Category) -> list[Change]:
    name = old.name
    changes = []
    for label in ("default_action", "filter_action"):
        before, after = getattr(old, label), getattr(new, label)
        if before != after:
            changes.append(Change(name, label, "changed", f"{before} -> {after}"))
    old_rules, new_rules = _by_syscall(old), _by_syscall(new)
    for syscall in sorted(old_rules.keys() | new_rules.keys()):
        before, after = old_rules.get(syscall, {}), new_rules.get(syscall, {})
        if before == after:
            continue
        if not before:
            changes.append(Change(name, syscall, "added", _render(after)))
        elif not after:
            changes.append(Change(name, syscall, "removed", _render(before)))
        else:
            gained = {key: value for key, value in after.items() if before.get(key) != value}
            lost = {key: value for key, value in before.items() if after.get(key) != value}
            if _unconditional(after) and not _unconditional(before):
                kind = "widened"
            elif _unconditional(before) and not _unconditional(after):
                kind = "narrowed"
            else:
                kind = "widened" if gained and not lost else "narrowed" if lost and not gained else "changed"
            if _denies(before) and _denies(after) and kind in _OPPOSITE:
                kind = _OPPOSITE[kind]  # more deny rules let fewer calls through
            detail = "; ".join(
                part for part in (f"+ {_render(gained)}" if gained else "", f"- {_render(lost)}" if lost else "") if part
            )
            changes.append(Change(name, syscall, kind, detail))
    return changes


RuleKey = frozenset[tuple[int, str, int, int]]


def _by_syscall(category: model.Category) -> dict[str, dict[RuleKey, tuple[str, str]]]:
    result: dict[str, dict[RuleKey, tuple[str, str]]] = {}
    for rule in category.rules:
        _, conditions = rule.key()
        text = " && ".join(condition.describe() for condition in rule.args) or "always"
        result.setdefault(rule.syscall, {})[conditions] = (text, str(category.action_of(rule)))
    return result


_OPPOSITE = {"widened": "narrowed", "narrowed": "widened"}


def _denies(rules: dict[RuleKey, tuple[str, str]]) -> bool:
    """Whether these rules stop the calls they match (a deny-list's rules)."""
    return all(not action.startswith(("allow", "log", "trace")) for _, action in rules.values())


def _unconditional(rules: dict[RuleKey, tuple[str, str]]) -> bool:
    return frozenset() in rules


def _render(rules: dict[RuleKey, tuple[str, str]]) -> str:
    return " | ".join(f"{text} -> {action}" for text, action in sorted(rules.values()))
