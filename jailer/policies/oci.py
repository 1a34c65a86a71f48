"""OCI runtime-spec / Docker seccomp profiles <-> our model, following runc's rules.

Import (runc `libcontainer/seccomp`): a rule whose action equals the default action is
skipped; unknown syscall names are skipped (and reported); conditions are ANDed into one
rule unless two of them use the same argument index, in which case each becomes its own rule
(ORed), as runc keeps for compatibility; `SCMP_CMP_MASKED_EQ` is `(arg & value) == valueTwo`.
Docker's `includes`/`excludes` are resolved for the target architecture, assuming no
capabilities. Stricter than runc where runc's result would be ambiguous or unusable: every field
is type-checked, duplicate JSON keys are refused (`parser.parse_json`), one syscall given two
different actions is an error (libseccomp would keep one of them), and the category name must
be usable as a file name. Export writes one profile per category; a dword `eq` becomes
MASKED_EQ with value 0xffffffff so that the low-32-bit semantics survive (OCI has no dword/qword).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jailer.policies import model, syscalls
from jailer.policies.errors import PolicyError
from jailer.policies.parser import describe_kind, describe_value, is_syscall_name

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
_KERNEL_VERSION = re.compile(r"[0-9]{1,6}\.[0-9]{1,6}(\.[0-9]{1,6})*", re.ASCII)
EPERM = 1


@dataclass
class Imported:
    category: model.Category
    skipped_names: list[str] = field(default_factory=list)


def import_profile(document: Any, *, name: str = "oci", arch: str = "x86_64", source: str = "<profile>") -> Imported:
    """The category `name` that `document` (a parsed OCI/Docker profile) means on `arch`.

    Every field that is read is type-checked first: a wrong type is a one-line PolicyError
    naming the field (`syscalls[2].includes.arches`), never a silently dropped field or a
    TypeError. Absent and null fields mean their default, as in runc.
    """
    from jailer.policies.files import check_category_file_name

    check_category_file_name(name)  # the category is exported to `<name>.oci.json` and `<name>.bpf`
    if not isinstance(document, dict) or "defaultAction" not in document:
        raise PolicyError(f"{source}: not an OCI seccomp profile (no 'defaultAction')")
    default_errno = _uint(document.get("defaultErrnoRet", EPERM), f"{source}: defaultErrnoRet")
    default = _action(document["defaultAction"], default_errno, f"{source}: defaultAction")
    architectures = _strings(document.get("architectures"), f"{source}: architectures")
    if architectures and _OCI_ARCH[arch] not in architectures:
        listed = ", ".join(describe_value(architecture) for architecture in architectures)
        raise PolicyError(f"{source}: the profile does not cover {_OCI_ARCH[arch]} (it lists {listed})")
    rules: list[model.Rule] = []
    skipped: list[str] = []
    first_action: dict[str, tuple[str, model.Action]] = {}
    for number, entry in enumerate(_list(document.get("syscalls"), f"{source}: syscalls")):
        where = f"{source}: syscalls[{number}]"
        if not isinstance(entry, dict):
            raise PolicyError(f"{where}: must be an object, not {describe_kind(entry)}")
        names = _names(entry, where)
        errno_ret = _uint(entry.get("errnoRet", default_errno), f"{where}.errnoRet")
        action = _action(entry.get("action"), errno_ret, f"{where}.action")
        condition_sets = _conditions(entry.get("args"), where)
        comment = entry.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise PolicyError(f"{where}.comment: must be a string, not {describe_kind(comment)}")
        if not _applies(entry, arch, where) or action == default:
            continue
        for syscall in names:
            if not is_syscall_name(syscall) or syscalls.number(syscall, arch) is None:
                skipped.append(syscall)
                continue
            earlier_entry, earlier_action = first_action.setdefault(syscall, (f"syscalls[{number}]", action))
            if earlier_action != action:  # libseccomp would silently keep one of the two
                raise PolicyError(f"{where}: {syscall} gets {action} here but {earlier_action} in {earlier_entry}; "
                                  "use one action per syscall")
            for conditions in condition_sets:
                rules.append(model.Rule(syscall=syscall, args=conditions, comment=comment or None, action=action))
    filter_action = _most_common([rule.action for rule in rules if rule.action]) or model.Action("allow")
    rules = [
        model.Rule(rule.syscall, rule.args, rule.comment, None if rule.action == filter_action else rule.action)
        for rule in rules
    ]
    if filter_action == default:
        raise PolicyError(f"{source}: every rule has the default action; nothing to import")
    category = model.Category(name=name, default_action=default, filter_action=filter_action, rules=tuple(rules))
    return Imported(category=category, skipped_names=sorted(set(skipped)))


def _names(entry: dict[str, Any], where: str) -> list[str]:
    """The entry's syscall names: `names`, or Docker's older single `name` (not both, as in moby)."""
    names = _strings(entry.get("names"), f"{where}.names")
    single = entry.get("name")
    if single is None:
        return names
    if not isinstance(single, str):
        raise PolicyError(f"{where}.name: must be a string, not {describe_kind(single)}")
    if names:
        raise PolicyError(f"{where}: has both 'name' and 'names'; use one of them")
    return [single]


def _applies(entry: dict[str, Any], arch: str, where: str) -> bool:
    """Docker's includes/excludes, for `arch`, with no capabilities and the running kernel."""
    includes = _object(entry.get("includes"), f"{where}.includes")
    excludes = _object(entry.get("excludes"), f"{where}.excludes")
    spellings = {arch, _OCI_ARCH[arch].removeprefix("SCMP_ARCH_").lower(), "amd64" if arch == "x86_64" else "arm64"}
    included_arches = [a.lower() for a in _strings(includes.get("arches"), f"{where}.includes.arches")]
    excluded_arches = [a.lower() for a in _strings(excludes.get("arches"), f"{where}.excludes.arches")]
    included_caps = _strings(includes.get("caps"), f"{where}.includes.caps")
    _strings(excludes.get("caps"), f"{where}.excludes.caps")  # no capabilities are held: never excludes
    min_kernel = _kernel_version(includes.get("minKernel"), f"{where}.includes.minKernel")
    _kernel_version(excludes.get("minKernel"), f"{where}.excludes.minKernel")
    if included_arches and not spellings & set(included_arches):
        return False
    if included_caps:
        return False
    if min_kernel is not None and _running_kernel() < min_kernel:
        return False
    return not spellings & set(excluded_arches)


def _kernel_version(value: Any, where: str) -> tuple[int, int] | None:
    """Docker's `minKernel`, "MAJOR.MINOR" (further parts ignored, as moby's parser does)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _KERNEL_VERSION.fullmatch(value):
        raise PolicyError(f"{where}: must be a kernel version such as \"4.8\", got {describe_value(value)}")
    major, minor = value.split(".")[:2]
    return int(major), int(minor)


def _running_kernel() -> tuple[int, int]:
    import os

    try:
        major, minor = os.uname().release.split("-")[0].split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def _conditions(args: Any, where: str) -> list[tuple[model.Condition, ...]]:
    conditions = []
    for number, arg in enumerate(_list(args, f"{where}.args")):
        here = f"{where}.args[{number}]"
        if not isinstance(arg, dict):
            raise PolicyError(f"{here}: must be an object, not {describe_kind(arg)}")
        index = _uint(arg.get("index"), f"{here}.index")
        if index > model.MAX_ARG_INDEX:
            raise PolicyError(f"{here}: index must be 0 to 5, got {index}")
        op_name = arg.get("op")
        op = _OPS.get(op_name) if isinstance(op_name, str) else None
        if op is None:
            raise PolicyError(f"{here}.op: unknown op {describe_value(op_name)} (expected one of {', '.join(_OPS)})")
        value = _uint(arg.get("value"), f"{here}.value")
        value_two = _uint(arg.get("valueTwo", 0), f"{here}.valueTwo")
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


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(f"{where}: must be a list, not {describe_kind(value)}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    items = _list(value, where)
    for number, item in enumerate(items):
        if not isinstance(item, str):
            raise PolicyError(f"{where}[{number}]: must be a string, not {describe_kind(item)}")
    return items


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: must be an object, not {describe_kind(value)}")
    return value


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
        raise PolicyError(
            f"{where}: unsupported action {describe_value(name)} (SCMP_ACT_NOTIFY needs an agent and is not supported)"
        )
    if kind == "errno":
        if errno_ret > 4094:
            raise PolicyError(f"{where}: errnoRet {errno_ret} is above 4094")
        return model.Action("errno", errno_ret)
    if kind == "trace":
        return model.Action("trace", errno_ret & 0xFFFF)
    return model.Action(kind)


def _uint(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= model.U64:
        raise PolicyError(f"{where}: must be an unsigned 64-bit integer, got {describe_value(value)}")
    return value


def _most_common(actions: list[model.Action]) -> model.Action | None:
    if not actions:
        return None
    return max(set(actions), key=lambda action: (actions.count(action), -actions.index(action)))
