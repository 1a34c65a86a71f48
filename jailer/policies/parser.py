"""Firecracker seccompiler JSON (plus our per-rule `action`) -> `model.Policy`.

Stricter than seccompiler on purpose: unknown keys, duplicate keys, unknown syscalls and
values that could never match are errors, because in a security policy a typo silently turns
into a rule that does nothing. Every error is one line naming the category, the rule (1-based,
with its syscall) and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from jailer.policies import model
from jailer.policies.errors import PolicyError

TYPE_CHECKING = False  # no typing import on the jailer's start-up path
if TYPE_CHECKING:
    from typing import Any

_SYSCALL_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_CATEGORY_KEYS = {"default_action", "filter_action", "filter", "comment", "audit_acknowledged"}
_RULE_KEYS = {"syscall", "args", "comment", "action"}
_CONDITION_KEYS = {"index", "type", "op", "val", "comment"}


def load_policy(path: str | Path) -> model.Policy:
    """Read and parse a policy file; OSError for an unreadable file, PolicyError otherwise."""
    return policy_from_json(load_json(path), source=str(Path(path)))


def parse_policy(text: str, *, source: str = "<policy>") -> model.Policy:
    return policy_from_json(parse_json(text, source=source), source=source)


def load_json(path: str | Path) -> Any:
    """The JSON document in the file at `path` (a regular file only: `read_regular_file`),
    parsed as `parse_json` does; OSError for an unreadable file, PolicyError otherwise."""
    from jailer.policies import read_regular_file

    text = read_regular_file(path).decode("utf-8", errors="surrogateescape")
    return parse_json(text, source=str(Path(path)))


def parse_json(text: str, *, source: str) -> Any:
    """JSON as the toolchain accepts it (policies and OCI profiles alike): a duplicate key is an
    error, not a silent override of the first value, and every failure is one PolicyError line."""
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as error:
        raise PolicyError(f"{source}: invalid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except _DuplicateKey as duplicate:
        raise PolicyError(f"{source}: duplicate key {duplicate.args[0]!r}") from None
    except RecursionError:
        raise PolicyError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError as error:  # an integer beyond Python's 4300-digit conversion limit
        raise PolicyError(f"{source}: invalid JSON: {str(error).split(';')[0]}") from None


class _DuplicateKey(Exception):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def policy_from_json(document: Any, *, source: str = "<policy>") -> model.Policy:
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: the top level must be an object of categories, not {describe_kind(document)}")
    if not document:
        raise PolicyError(f"{source}: the policy has no categories")
    categories = {}
    for name, body in document.items():
        where = f"{source}: category {name!r}"
        if not name or not isinstance(name, str):
            raise PolicyError(f"{source}: a category needs a non-empty name")
        categories[name] = _category(name, body, where)
    return model.Policy(categories=categories, source=source)


def _category(name: str, body: Any, where: str) -> model.Category:
    if not isinstance(body, dict):
        raise PolicyError(f"{where}: must be an object, not {describe_kind(body)}")
    _check_keys(body, _CATEGORY_KEYS, where)
    for required in ("default_action", "filter_action", "filter"):
        if required not in body:
            raise PolicyError(f"{where}: missing {required!r}")
    default_action = parse_action(body["default_action"], f"{where}, default_action")
    filter_action = parse_action(body["filter_action"], f"{where}, filter_action")
    rules_json = body["filter"]
    if not isinstance(rules_json, list):
        raise PolicyError(f"{where}: 'filter' must be a list of rules, not {describe_kind(rules_json)}")
    rules = tuple(_rule(rule, f"{where}, rule {number}") for number, rule in enumerate(rules_json, 1))
    for number, rule in enumerate(rules, 1):
        if (rule.action or filter_action) == default_action:
            raise PolicyError(
                f"{where}, rule {number} ({rule.syscall}): its action {default_action} equals the "
                "default action, so the rule would do nothing"
            )
    conflict = model.Category(name, default_action, filter_action, rules).action_conflict()
    if conflict:
        raise PolicyError(f"{where}, {conflict}")
    acknowledged = body.get("audit_acknowledged", {})
    if not isinstance(acknowledged, dict) or not all(
        isinstance(key, str) and isinstance(value, str) and value.strip() for key, value in acknowledged.items()
    ):
        raise PolicyError(f"{where}: 'audit_acknowledged' must map finding ids to non-empty reasons")
    return model.Category(
        name=name,
        default_action=default_action,
        filter_action=filter_action,
        rules=rules,
        audit_acknowledged=dict(acknowledged),
    )


def _rule(body: Any, where: str) -> model.Rule:
    if not isinstance(body, dict):
        raise PolicyError(f"{where}: must be an object, not {describe_kind(body)}")
    syscall = body.get("syscall")
    if not isinstance(syscall, str) or not syscall:
        raise PolicyError(f"{where}: 'syscall' must be a syscall name")
    # Only a name of syscall-name characters is shown as it is: any other (a NUL, an escape
    # sequence) is shown escaped, never written raw to the user's terminal.
    well_formed = is_syscall_name(syscall)
    where = f"{where} ({syscall if well_formed else repr(syscall)})"
    _check_keys(body, _RULE_KEYS, where)
    from jailer.policies import syscalls

    if not well_formed or not syscalls.is_known(syscall):
        raise PolicyError(f"{where}: unknown syscall {syscall!r}")
    args_json = body.get("args", [])
    if not isinstance(args_json, list):
        raise PolicyError(f"{where}: 'args' must be a list of conditions, not {describe_kind(args_json)}")
    if len(args_json) > 6:
        raise PolicyError(f"{where}: at most 6 conditions per rule, got {len(args_json)}")
    conditions = tuple(_condition(cond, f"{where}, args[{n}]") for n, cond in enumerate(args_json))
    indexes = [condition.index for condition in conditions]
    if len(set(indexes)) != len(indexes):
        raise PolicyError(
            f"{where}: two conditions on the same argument index (libseccomp cannot AND them); "
            "use masked_eq or split the rule"
        )
    action = parse_action(body["action"], f"{where}, action") if "action" in body else None
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise PolicyError(f"{where}: 'comment' must be a string")
    return model.Rule(syscall=syscall, args=conditions, comment=comment, action=action)


def _condition(body: Any, where: str) -> model.Condition:
    if not isinstance(body, dict):
        raise PolicyError(f"{where}: must be an object, not {describe_kind(body)}")
    _check_keys(body, _CONDITION_KEYS, where)
    for required in ("index", "type", "op", "val"):
        if required not in body:
            raise PolicyError(f"{where}: missing {required!r}")
    index = body["index"]
    if not _is_int(index) or not 0 <= index <= model.MAX_ARG_INDEX:
        raise PolicyError(f"{where}: 'index' must be an integer from 0 to 5, got {index!r}")
    arg_type = body["type"]
    if arg_type not in model.ARG_TYPES:
        raise PolicyError(f"{where}: 'type' must be \"dword\" or \"qword\", got {describe_value(arg_type)}")
    val = body["val"]
    if not _is_int(val) or not 0 <= val <= model.U64:
        raise PolicyError(f"{where}: 'val' must be an integer from 0 to 2^64-1, got {describe_value(val)}")
    op_json = body["op"]
    mask = None
    if isinstance(op_json, dict) and list(op_json) == ["masked_eq"]:
        op, mask = "masked_eq", op_json["masked_eq"]
        if not _is_int(mask) or not 0 <= mask <= model.U64:
            raise PolicyError(f"{where}: the masked_eq mask must be an integer from 0 to 2^64-1, got {describe_value(mask)}")
        if val & ~mask:
            raise PolicyError(f"{where}: val {val:#x} has bits outside the mask {mask:#x}, so it can never match")
    elif isinstance(op_json, str) and op_json in model.OPERATORS and op_json != "masked_eq":
        op = op_json
    else:
        raise PolicyError(
            f"{where}: unknown op {describe_value(op_json)} (expected eq, ne, lt, le, gt, ge or {{\"masked_eq\": MASK}})"
        )
    if op == "eq" and arg_type == "dword" and val > model.U32:
        raise PolicyError(f"{where}: dword val {val:#x} does not fit in 32 bits, so it can never match")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise PolicyError(f"{where}: 'comment' must be a string")
    return model.Condition(index=index, type=arg_type, op=op, val=val, mask=mask, comment=comment)


def parse_action(value: Any, where: str) -> model.Action:
    if isinstance(value, str) and value in model.ACTION_KINDS and value not in model.ACTIONS_WITH_VALUE:
        return model.Action(value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, data),) = value.items()
        if kind in model.ACTIONS_WITH_VALUE:
            limit = 4094 if kind == "errno" else 0xFFFF  # libseccomp refuses MAX_ERRNO itself
            if not _is_int(data) or not 0 <= data <= limit:
                raise PolicyError(f"{where}: {kind} needs an integer from 0 to {limit}, got {describe_value(data)}")
            return model.Action(kind, data)
    raise PolicyError(
        f"{where}: unknown action {describe_value(value)} (expected allow, kill_thread, kill_process, log, trap, "
        "{\"errno\": N} or {\"trace\": N})"
    )


def _check_keys(body: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_syscall_name(text: str) -> bool:
    """Whether `text` has the form of a syscall name (which libseccomp then may or may not know)."""
    return _SYSCALL_NAME.fullmatch(text) is not None


def describe_kind(value: Any) -> str:
    """What kind of JSON value `value` is, for messages ("a list", "a string")."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def describe_value(value: Any) -> str:
    """`value` for a one-line message: escaped (repr for strings, JSON otherwise), at most 60 characters."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
