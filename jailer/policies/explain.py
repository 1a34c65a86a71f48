"""Per-category summaries of a policy: what is allowed, under which conditions, with counts."""

from __future__ import annotations

from dataclasses import dataclass

from jailer.policies import model


@dataclass(frozen=True)
class Summary:
    """The counts Firecracker's documentation uses: rule objects, distinct syscalls, and how
    many syscalls are allowed unconditionally versus only with argument filters."""

    category: str
    default_action: str
    filter_action: str
    rules: int
    syscalls: int
    unconditional: int
    with_arg_filters: int
    entries: dict[str, list[str]]

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def summarize(category: model.Category) -> Summary:
    entries: dict[str, list[str]] = {}
    unconditional: set[str] = set()
    for rule in category.rules:
        action = category.action_of(rule)
        suffix = "" if rule.action is None else f" -> {action}"
        if not rule.args:
            unconditional.add(rule.syscall)
            entries.setdefault(rule.syscall, []).insert(0, "always" + suffix)
        else:
            entries.setdefault(rule.syscall, []).append(
                " && ".join(condition.describe() for condition in rule.args) + suffix
            )
    names = category.syscalls()
    return Summary(
        category=category.name,
        default_action=str(category.default_action),
        filter_action=str(category.filter_action),
        rules=len(category.rules),
        syscalls=len(names),
        unconditional=len(unconditional),
        with_arg_filters=len(names) - len(unconditional),
        entries={name: entries[name] for name in names},
    )
