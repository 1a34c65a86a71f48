"""OCI runtime-spec / Docker seccomp profiles <-> our model, following runc's rules.

Import (runc `libcontainer/seccomp`): a rule whose action equals the default action is
skipped; unknown syscall names are skipped (and reported); conditions are ANDed into one
rule unless two of them use the same argument index, in which case each becomes its own rule
(ORed), as runc keeps for compatibility; `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`.
Docker's `includes`/`excludes` are resolved for the target architecture, assuming no
capabilities. Export writes one profile per category; a dword `eq` becomes MASKED_EQ with
value 0xffffffff so that the low-32-bit semantics survive (OCI has no dword/qword).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jailer.policies import model, syscalls
from jailer.policies.errors import PolicyError

_ACTIONS = {
    "SCMP_ACT_ALLOW": "allow",
    "SCMP_ACT_ERRNO": "errno",
    "SCMP_ACT_KILL": "kill_thread",
    "SCMP_ACT_KILL_THREAD": "kill_thread",
    "SCMP_ACT_KILL_PROCESS": "kill_process",
    "SCMP_ACT_LOG": "log",
    "SCMP_ACT_TRACE": "trace",
    "SCMP_ACT_TRAP": "trap",
}
_EXPORT_ACTIONS = {
    "allow": "SCMP_ACT_ALLOW",
    "errno": "SCMP_ACT_ERRNO",
    "kill_thread": "SCMP_ACT_KILL_THREAD",
    "kill_process": "SCMP_ACT_KILL_PROCESS",
    "log": "SCMP_ACT_LOG",
    "trace": "SCMP_ACT_TRACE",
    "trap": "SCMP_ACT_TRAP",
}
_OPS = {
    "SCMP_CMP_NE": "ne",
    "SCMP_CMP_LT": "lt",
    "SCMP_CMP_LE": "le",
    "SCMP_CMP_EQ": "eq",
    "SCMP_CMP_GE": "ge",
    "SCMP_CMP_GT": "gt",
    "SCMP_CMP_MASKED_EQ": "masked_eq",
}
_OCI_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
EPERM = 1


@dataclass
class Imported:
    category: model.Category
    skipped_names: list[str] = field(default_factory=list)


def import_profile(document: Any, *, name: str = "oci", arch: str = "x86_64", source: str = "<profile>") -> Imported:
    if not isinstance(document, dict) or "defaultAction" not in document:
        raise PolicyError(f"{source}: not an OCI seccomp profile (no 'defaultAction')")
    default_errno = _uint(document.get("defaultErrnoRet", EPERM), f"{source}: defaultErrnoRet")
    default = _action(document["defaultAction"], default_errno, f"{source}: defaultAction")
    architectures = document.get("architectures") or []
    if architectures and _OCI_ARCH[arch] not in architectures:
        raise PolicyError(f"{source}: the profile does not cover {_OCI_ARCH[arch]} (it lists {', '.join(architectures)})")
    rules: list[model.Rule] = []
    skipped: list[str] = []
    for number, entry in enumerate(document.get("syscalls") or [], 1):
        where = f"{source}: syscalls[{number - 1}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where}: must be an object")
        if not _applies(entry, arch):
            continue
        action = _action(entry.get("action"), _uint(entry.get("errnoRet", default_errno), f"{where}: errnoRet"), f"{where}: action")
        if action == default:
            continue
        names = entry.get("names") or ([entry["name"]] if isinstance(entry.get("name"), str) else [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise PolicyError(f"{where}: 'names' must be a list of syscall names")
        condition_sets = _conditions(entry.get("args") or [], where)
        comment = entry.get("comment") if isinstance(entry.get("comment"), str) and entry.get("comment") else None
        for syscall in names:
            if syscalls.number(syscall, arch) is None:
                skipped.append(syscall)
                continue
            for conditions in condition_sets:
                rules.append(model.Rule(syscall=syscall, args=conditions, comment=comment, action=action))
    filter_action = _most_common([rule.action for rule in rules if rule.action]) or model.Action("allow")
    rules = [
        model.Rule(rule.syscall, rule.args, rule.comment, None if rule.action == filter_action else rule.action)
        for rule in rules
    ]
    if filter_action == default:
        raise PolicyError(f"{source}: every rule has the default action; nothing to import")
    category = model.Category(name=name, default_action=default, filter_action=filter_action, rules=tuple(rules))
    return Imported(category=category, skipped_names=sorted(set(skipped)))


def _applies(entry: dict[str, Any], arch: str) -> bool:
    """Docker's includes/excludes, for `arch`, with no capabilities and the running kernel."""
    includes, excludes = entry.get("includes") or {}, entry.get("excludes") or {}
    if includes.get("arches") and _OCI_ARCH[arch].removeprefix("SCMP_ARCH_").lower() not in [
        a.lower() for a in includes["arches"]
    ] and arch not in includes["arches"] and ("amd64" if arch == "x86_64" else "arm64") not in includes["arches"]:
        return False
    if includes.get("caps"):
        return False
    if includes.get("minKernel") and not _kernel_at_least(includes["minKernel"]):
        return False
    excluded_arches = [a.lower() for a in excludes.get("arches") or []]
    if arch in excluded_arches or ("amd64" if arch == "x86_64" else "arm64") in excluded_arches:
        return False
    return True


def _kernel_at_least(version: str) -> bool:
    import os

    try:
        wanted = tuple(int(part) for part in version.split(".")[:2])
        running = tuple(int(part) for part in os.uname().release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return running >= wanted


def _conditions(args: Any, where: str) -> list[tuple[model.Condition, ...]]:
    if not isinstance(args, list):
        raise PolicyError(f"{where}: 'args' must be a list")
    conditions = []
    for number, arg in enumerate(args):
        here = f"{where}.args[{number}]"
        if not isinstance(arg, dict):
            raise PolicyError(f"{here}: must be an object")
        index = _uint(arg.get("index"), f"{here}: index")
        if index > model.MAX_ARG_INDEX:
            raise PolicyError(f"{here}: index must be 0 to 5, got {index}")
        op = _OPS.get(arg.get("op"))  # type: ignore[arg-type]
        if op is None:
            raise PolicyError(f"{here}: unknown op {arg.get('op')!r}")
        value = _uint(arg.get("value"), f"{here}: value")
        value_two = _uint(arg.get("valueTwo", 0), f"{here}: valueTwo")
        if op == "masked_eq":
            if value == model.U32 and value_two <= model.U32:
                conditions.append(model.Condition(index, "dword", "eq", value_two))
            else:
                conditions.append(model.Condition(index, "qword", "masked_eq", value_two & value, mask=value))
        else:
            conditions.append(model.Condition(index, "qword", op, value))
    indexes = [condition.index for condition in conditions]
    if len(set(indexes)) != len(indexes):
        return [(condition,) for condition in conditions]  # runc: same index -> separate (ORed) rules
    return [tuple(conditions)]


def export_category(category: model.Category, arch: str = "x86_64") -> dict[str, Any]:
    profile: dict[str, Any] = {"defaultAction": _EXPORT_ACTIONS[category.default_action.kind]}
    if category.default_action.kind == "errno":
        profile["defaultErrnoRet"] = category.default_action.value
    profile["architectures"] = [_OCI_ARCH[arch]]
    entries: list[dict[str, Any]] = []
    for rule in category.rules:
        action = category.action_of(rule)
        entry: dict[str, Any] = {"names": [rule.syscall], "action": _EXPORT_ACTIONS[action.kind]}
        if action.kind == "errno":
            entry["errnoRet"] = action.value
        if rule.args:
            entry["args"] = [_export_condition(condition) for condition in rule.args]
        previous = entries[-1] if entries else None
        if previous and {k: v for k, v in previous.items() if k != "names"} == {k: v for k, v in entry.items() if k != "names"}:
            previous["names"].append(rule.syscall)
        else:
            entries.append(entry)
    profile["syscalls"] = entries
    return profile


def _export_condition(condition: model.Condition) -> dict[str, Any]:
    if condition.op == "masked_eq" or (condition.op == "eq" and condition.type == "dword"):
        return {"index": condition.index, "value": condition.effective_mask, "valueTwo": condition.val, "op": "SCMP_CMP_MASKED_EQ"}
    op = {value: key for key, value in _OPS.items()}[condition.op]
    return {"index": condition.index, "value": condition.val, "op": op}


def export_policy(policy: model.Policy, arch: str = "x86_64") -> dict[str, dict[str, Any]]:
    return {name: export_category(category, arch) for name, category in policy.categories.items()}


def _action(name: Any, errno_ret: int, where: str) -> model.Action:
    kind = _ACTIONS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise PolicyError(f"{where}: unsupported action {name!r} (SCMP_ACT_NOTIFY needs an agent and is not supported)")
    if kind == "errno":
        if errno_ret > 4094:
            raise PolicyError(f"{where}: errnoRet {errno_ret} is above 4094")
        return model.Action("errno", errno_ret)
    if kind == "trace":
        return model.Action("trace", errno_ret & 0xFFFF)
    return model.Action(kind)


def _uint(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= model.U64:
        raise PolicyError(f"{where}: must be an unsigned 64-bit integer, got {value!r}")
    return value


def _most_common(actions: list[model.Action]) -> model.Action | None:
    if not actions:
        return None
    return max(set(actions), key=lambda action: (actions.count(action), -actions.index(action)))
