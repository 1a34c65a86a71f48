"""Plain data for a seccomp policy: categories of rules, conditions and actions.

The shape is Firecracker's seccompiler JSON: a policy maps a thread category (`vmm`, `vcpu`,
...) to a filter with a `default_action` (no rule matched), a `filter_action` (some rule
matched) and rules ORed together, each an AND of argument conditions. One extension: a rule
may carry its own `action`, overriding the category's `filter_action` for that rule. It exists
because a deny-list such as the shipped `baseline` needs EPERM for most calls but ENOSYS for
clone3 (glibc falls back to clone only on ENOSYS). Strict Firecracker export rejects it.

Semantics match Firecracker's compiler: a `dword` `eq` compares only the low 32 bits (compiled
as MASKED_EQ 0xffffffff); every other operator compares all 64 bits whatever `type` says.
"""

from __future__ import annotations

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF

ACTION_KINDS = ("allow", "errno", "kill_thread", "kill_process", "log", "trace", "trap")
ACTIONS_WITH_VALUE = ("errno", "trace")
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "masked_eq")
ARG_TYPES = ("dword", "qword")
MAX_ARG_INDEX = 5
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

class _Record:
    """Immutable value object: equality, hashing and repr over `__slots__`.

    Plain classes rather than dataclasses: this module is on the jailer's start-up path, and
    importing dataclasses (with inspect) and generating the classes costs ~20 ms there.
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def _set(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


_RET_BASE = {
    "allow": SECCOMP_RET_ALLOW,
    "errno": SECCOMP_RET_ERRNO,
    "kill_thread": SECCOMP_RET_KILL_THREAD,
    "kill_process": SECCOMP_RET_KILL_PROCESS,
    "log": SECCOMP_RET_LOG,
    "trace": SECCOMP_RET_TRACE,
    "trap": SECCOMP_RET_TRAP,
}

# Kernel precedence, strictest first (seccomp(2)): what wins when stacked filters disagree.
_PRECEDENCE = (
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF,
    SECCOMP_RET_TRACE,
    SECCOMP_RET_LOG,
    SECCOMP_RET_ALLOW,
)


class Action(_Record):
    """A seccomp action; `value` is the errno or trace message for `errno`/`trace`."""

    __slots__ = ("kind", "value")
    kind: str
    value: int | None

    def __init__(self, kind: str, value: int | None = None) -> None:
        self._set(kind=kind, value=value)

    @property
    def ret(self) -> int:
        """The filter's 32-bit return value (SECCOMP_RET_*)."""
        return _RET_BASE[self.kind] | ((self.value or 0) & SECCOMP_RET_DATA)

    def __str__(self) -> str:
        return f"{self.kind}({self.value})" if self.kind in ACTIONS_WITH_VALUE else self.kind

    def to_json(self) -> str | dict[str, int]:
        return {self.kind: self.value or 0} if self.kind in ACTIONS_WITH_VALUE else self.kind

    @property
    def stops(self) -> bool:
        """Whether the syscall is prevented from running (everything but allow/log/trace)."""
        return self.kind not in ("allow", "log", "trace")


def action_from_ret(ret: int) -> Action:
    """Decode a filter return value back into an Action."""
    base = ret & SECCOMP_RET_ACTION_FULL
    data = ret & SECCOMP_RET_DATA
    for kind, kind_base in _RET_BASE.items():
        if base == kind_base:
            return Action(kind, data if kind in ACTIONS_WITH_VALUE else None)
    if base == SECCOMP_RET_USER_NOTIF:
        return Action("user_notif")
    # The kernel treats unknown actions as KILL_PROCESS.
    return Action("kill_process")


def strictness(ret: int) -> int:
    """Rank of a return value: lower is stricter (0 = KILL_PROCESS)."""
    base = ret & SECCOMP_RET_ACTION_FULL
    return _PRECEDENCE.index(base) if base in _PRECEDENCE else 0


def strictest(rets: list[int]) -> int:
    """What the kernel returns for stacked filters' results (first seen of highest precedence)."""
    return min(rets, key=strictness)


class Condition(_Record):
    """One argument check: `args[index] OP val` (for masked_eq: `args[index] & mask == val`)."""

    __slots__ = ("index", "type", "op", "val", "mask", "comment")
    index: int
    type: str
    op: str
    val: int
    mask: int | None
    comment: str | None

    def __init__(self, index: int, type: str, op: str, val: int, mask: int | None = None, comment: str | None = None) -> None:
        self._set(index=index, type=type, op=op, val=val, mask=mask, comment=comment)

    @property
    def effective_mask(self) -> int:
        """The bits actually compared, following Firecracker's dword quirk."""
        if self.op == "masked_eq":
            return self.mask if self.mask is not None else U64
        if self.op == "eq" and self.type == "dword":
            return U32
        return U64

    def matches(self, args: tuple[int, ...] | list[int]) -> bool:
        value = args[self.index] & U64
        if self.op in ("masked_eq",) or (self.op == "eq" and self.type == "dword"):
            return (value & self.effective_mask) == self.val
        return {
            "eq": value == self.val,
            "ne": value != self.val,
            "lt": value < self.val,
            "le": value <= self.val,
            "gt": value > self.val,
            "ge": value >= self.val,
        }[self.op]

    def describe(self) -> str:
        if self.op == "masked_eq":
            return f"arg{self.index} & {self.mask:#x} == {self.val:#x}"
        symbol = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[self.op]
        low = " (low 32 bits)" if self.op == "eq" and self.type == "dword" else ""
        return f"arg{self.index}{low} {symbol} {self.val:#x}"

    def key(self) -> tuple[int, str, int, int]:
        """Identity of what the condition tests (type only matters where it changes semantics)."""
        return (self.index, "masked_eq" if self.effective_mask != U64 else self.op, self.val, self.effective_mask)

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "index": self.index,
            "type": self.type,
            "op": {"masked_eq": self.mask} if self.op == "masked_eq" else self.op,
            "val": self.val,
        }
        if self.comment:
            data["comment"] = self.comment
        return data


class Rule(_Record):
    """A syscall allowed (or acted on) when all its conditions hold; no conditions = always."""

    __slots__ = ("syscall", "args", "comment", "action")
    syscall: str
    args: tuple[Condition, ...]
    comment: str | None
    action: Action | None

    def __init__(self, syscall: str, args: tuple[Condition, ...] = (), comment: str | None = None,
                 action: Action | None = None) -> None:
        self._set(syscall=syscall, args=tuple(args), comment=comment, action=action)

    def matches(self, args: tuple[int, ...] | list[int]) -> bool:
        return all(condition.matches(args) for condition in self.args)

    def describe(self) -> str:
        if not self.args:
            return self.syscall
        return f"{self.syscall} when " + " && ".join(condition.describe() for condition in self.args)

    def key(self) -> tuple[str, frozenset[tuple[int, str, int, int]]]:
        return (self.syscall, frozenset(condition.key() for condition in self.args))

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {"syscall": self.syscall}
        if self.args:
            data["args"] = [condition.to_json() for condition in self.args]
        if self.action is not None:
            data["action"] = self.action.to_json()
        if self.comment:
            data["comment"] = self.comment
        return data


class Category(_Record):
    """The filter of one thread kind."""

    __slots__ = ("name", "default_action", "filter_action", "rules", "audit_acknowledged")
    name: str
    default_action: Action
    filter_action: Action
    rules: tuple[Rule, ...]
    audit_acknowledged: dict[str, str]

    def __init__(self, name: str, default_action: Action, filter_action: Action, rules: tuple[Rule, ...],
                 audit_acknowledged: dict[str, str] | None = None) -> None:
        self._set(name=name, default_action=default_action, filter_action=filter_action, rules=tuple(rules),
                  audit_acknowledged=dict(audit_acknowledged or {}))

    def action_of(self, rule: Rule) -> Action:
        return rule.action or self.filter_action

    def decide(self, syscall: str, args: tuple[int, ...] | list[int]) -> tuple[Action, Rule | None]:
        """What this category does with a call, and the rule that decided (None = default).

        Several matching rules with different actions resolve to the strictest, as libseccomp
        does when it merges them into one syscall's decision tree.
        """
        matching = [rule for rule in self.rules if rule.syscall == syscall and rule.matches(args)]
        if not matching:
            return self.default_action, None
        best = min(matching, key=lambda rule: strictness(self.action_of(rule).ret))
        return self.action_of(best), best

    def syscalls(self) -> list[str]:
        return sorted({rule.syscall for rule in self.rules})

    def action_conflict(self) -> str | None:
        """Why the rules are ambiguous, or None: one syscall's rules must share one action.

        libseccomp accepts two rules for a syscall with different actions and silently keeps
        one of them where they overlap; no policy should depend on which.
        """
        first: dict[str, tuple[int, Action]] = {}
        for number, rule in enumerate(self.rules, 1):
            action = self.action_of(rule)
            earlier = first.setdefault(rule.syscall, (number, action))
            if earlier[1] != action:
                return (
                    f"rule {number} ({rule.syscall}): its action {action} differs from rule {earlier[0]}'s "
                    f"{earlier[1]} for the same syscall (libseccomp would silently keep one); use one action per syscall"
                )
        return None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "default_action": self.default_action.to_json(),
            "filter_action": self.filter_action.to_json(),
            "filter": [rule.to_json() for rule in self.rules],
        }
        if self.audit_acknowledged:
            data["audit_acknowledged"] = dict(self.audit_acknowledged)
        return data


class Policy(_Record):
    """Categories by name, in file order; `source` says where it came from (for messages)."""

    __slots__ = ("categories", "source")
    categories: dict[str, Category]
    source: str

    def __init__(self, categories: dict[str, Category], source: str = "<policy>") -> None:
        self._set(categories=dict(categories), source=source)

    def category(self, name: str) -> Category:
        from jailer.policies.errors import PolicyError

        try:
            return self.categories[name]
        except KeyError:
            known = ", ".join(self.categories) or "none"
            raise PolicyError(f"{self.source}: unknown category {name!r} (categories: {known})") from None

    def to_json(self) -> dict[str, object]:
        return {name: category.to_json() for name, category in self.categories.items()}

    def to_firecracker_json(self) -> dict[str, object]:
        """Strict seccompiler JSON: refuses our per-rule `action` extension, which
        seccompiler would silently ignore (turning a deny into the filter_action)."""
        from jailer.policies.errors import PolicyError

        document: dict[str, object] = {}
        for name, category in self.categories.items():
            for number, rule in enumerate(category.rules, 1):
                if rule.action is not None and rule.action != category.filter_action:
                    raise PolicyError(
                        f"{self.source}: category {name!r}, rule {number} ({rule.syscall}): its own action "
                        f"{rule.action} cannot be expressed in Firecracker's format (one filter_action per "
                        "category); split the category or drop the rule"
                    )
            data = category.to_json()
            data.pop("audit_acknowledged", None)
            for rule in data["filter"]:  # type: ignore[attr-defined]
                rule.pop("action", None)
            document[name] = data
        return document
