"""Generate a policy from what a command's threads actually do (strace -f).

The command runs under `strace -f -qq -X raw -e signal=none -e raw=!prctl,execve`: every
argument is printed as a raw number (easy to parse, nothing decoded away), except prctl and
execve, whose strings carry the thread names. A thread's name is tracked as the kernel does:
a new thread inherits its creator's name, prctl(PR_SET_NAME) renames it, a successful execve
names it after the program. Each syscall is attributed to the name its thread had at that
moment, and names collapse to patterns by dropping a trailing number (`vcpu0`, `vcpu1` ->
`vcpu`), one category per pattern.

Arguments are kept where policies filter on them: ioctl requests, futex ops, socket families,
fcntl commands and prctl options become one `eq` rule per observed value; mmap/mprotect get
`(prot & PROT_EXEC) == 0` unless an executable mapping was seen; clone gets `CLONE_THREAD`
required when every observed clone created a thread. clone3 passes its flags in memory that
seccomp cannot read, so it gets errno ENOSYS (glibc then falls back to clone, which is
filtered). The result is a starting point to review, not a policy to ship unread.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field

from jailer.policies import model, syscalls
from jailer.policies.errors import PolicyError

PR_SET_NAME = 15
PROT_EXEC = 0x4
CLONE_THREAD = 0x10000
ENOSYS = 38
# syscall -> index of the argument kept (one rule per observed value).
VALUE_FILTERED = {"ioctl": 1, "futex": 1, "socket": 0, "fcntl": 1, "prctl": 0}
PROT_FILTERED = {"mmap": 2, "mprotect": 2}

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RESULT = re.compile(r"\s=\s+(-?\w+|\?)")
_CALL = re.compile(r"^(\w+)\((.*)$")
_RETURN = re.compile(r"\)\s+=\s+(-?\w+|\?)")
_PRCTL_NAME = re.compile(r'^\s*(0x[0-9a-f]+|\d+),\s+"((?:[^"\\]|\\.)*)"')
_EXECVE_PATH = re.compile(r'^"((?:[^"\\]|\\.)*)"')


@dataclass
class TraceResult:
    """What each thread-name pattern did: syscall -> the argument vectors seen (first 6)."""

    exit_status: int
    calls: dict[str, dict[str, list[tuple[int, ...]]]] = field(default_factory=dict)


def pattern(thread_name: str) -> str:
    """`vcpu0` -> `vcpu`, `fc_vcpu 1` -> `fc_vcpu`: one category per kind of thread."""
    base = re.sub(r"[\s_\-.:#]*\d+$", "", thread_name.strip()) or thread_name.strip()
    return re.sub(r"[^a-z0-9_]+", "_", base.lower()).strip("_") or "thread"


def trace_command(command: list[str]) -> TraceResult:
    strace = shutil.which("strace")
    if strace is None:
        raise PolicyError("trace needs strace (apt-get install strace)")
    with tempfile.TemporaryDirectory(prefix="jailer-policy-trace-") as directory:
        log = os.path.join(directory, "strace.log")
        try:
            completed = subprocess.run(
                [strace, "-f", "-qq", "-X", "raw", "-e", "signal=none", "-e", "raw=!prctl,execve", "-o", log, "--", *command]
            )
        except OSError as error:
            raise PolicyError(f"cannot run strace: {error.strerror}") from None
        with open(log, encoding="utf-8", errors="replace") as lines:
            calls = parse_strace(lines, initial_name=os.path.basename(command[0])[:15])
    return TraceResult(exit_status=completed.returncode, calls=calls)


def parse_strace(lines: object, *, initial_name: str) -> dict[str, dict[str, list[tuple[int, ...]]]]:
    names: dict[int, str] = {}
    pending: dict[int, tuple[str, str]] = {}
    calls: dict[str, dict[str, list[tuple[int, ...]]]] = defaultdict(lambda: defaultdict(list))
    for raw_line in lines:  # type: ignore[attr-defined]
        match = _LINE.match(raw_line.rstrip("\n"))
        if not match:
            continue
        tid, rest = int(match.group(1)), match.group(2)
        names.setdefault(tid, initial_name)
        resumed = _RESUMED.match(rest)
        if resumed:
            syscall = resumed.group(1)
            _, text = pending.pop(tid, (syscall, ""))
            result = _RESULT.search(resumed.group(2))
            _finish(tid, syscall, text, result.group(1) if result else None, names)
            continue
        call = _CALL.match(rest)
        if not call:
            continue
        syscall, text = call.group(1), call.group(2)
        if syscalls.number(syscall) is None:
            continue
        calls[pattern(names[tid])][syscall].append(_numbers(text))
        if syscall == "prctl":
            named = _PRCTL_NAME.match(text)
            if named and int(named.group(1), 0) == PR_SET_NAME:
                names[tid] = named.group(2).encode().decode("unicode_escape")[:15]
        if rest.endswith("<unfinished ...>"):
            pending[tid] = (syscall, text)
        else:
            returned = _RETURN.search(text)
            _finish(tid, syscall, text, returned.group(1) if returned else None, names)
    return {name: dict(per_syscall) for name, per_syscall in calls.items()}


def _finish(tid: int, syscall: str, text: str, result: str | None, names: dict[int, str]) -> None:
    if result is None or result in ("?",) or result.startswith("-"):
        return
    if syscall in ("clone", "clone3", "fork", "vfork"):
        try:
            child = int(result, 0)
        except ValueError:
            return
        if child > 0:
            names[child] = names[tid]
    elif syscall in ("execve", "execveat"):
        path = _EXECVE_PATH.match(text)
        if path and int(result, 0) == 0:
            names[tid] = os.path.basename(path.group(1))[:15]


def _numbers(text: str) -> tuple[int, ...]:
    values = []
    for part in text.split(", ")[:6]:
        part = part.strip().rstrip(")").split(" ")[0]
        try:
            values.append(int(part, 0))
        except ValueError:
            values.append(0)
    return tuple(values + [0] * (6 - len(values)))


def policy_from_trace(result: TraceResult, *, default_action: model.Action, union: str | None = None) -> model.Policy:
    if not result.calls:
        raise PolicyError("the trace recorded no system calls")
    categories = {
        name: _category(name, per_syscall, default_action) for name, per_syscall in sorted(result.calls.items())
    }
    if union:
        merged: dict[str, list[tuple[int, ...]]] = defaultdict(list)
        for per_syscall in result.calls.values():
            for syscall, vectors in per_syscall.items():
                merged[syscall].extend(vectors)
        categories[union] = _category(union, merged, default_action)
    return model.Policy(categories=categories, source="trace")


def _category(name: str, per_syscall: dict[str, list[tuple[int, ...]]], default: model.Action) -> model.Category:
    allow = model.Action("allow")
    rules: list[model.Rule] = []
    for syscall in sorted(per_syscall):
        vectors = per_syscall[syscall]
        if syscall in VALUE_FILTERED:
            index = VALUE_FILTERED[syscall]
            for value in sorted({vector[index] & model.U32 for vector in vectors}):
                rules.append(model.Rule(syscall, (model.Condition(index, "dword", "eq", value),)))
        elif syscall in PROT_FILTERED:
            index = PROT_FILTERED[syscall]
            if any(vector[index] & PROT_EXEC for vector in vectors):
                rules.append(model.Rule(syscall, comment="PROT_EXEC was observed: review before shipping"))
            else:
                rules.append(model.Rule(syscall, (model.Condition(index, "dword", "masked_eq", 0, mask=PROT_EXEC),)))
        elif syscall == "clone":
            if all(vector[0] & CLONE_THREAD for vector in vectors):
                rules.append(model.Rule(syscall, (model.Condition(0, "qword", "masked_eq", CLONE_THREAD, mask=CLONE_THREAD),)))
            else:
                rules.append(model.Rule(syscall, comment="a clone without CLONE_THREAD (a process) was observed"))
        elif syscall == "clone3":
            rules.append(model.Rule("clone3", comment="flags are out of seccomp's reach: ENOSYS makes glibc use clone",
                                    action=model.Action("errno", ENOSYS)))
            if "clone" not in per_syscall:
                rules.append(model.Rule("clone", (model.Condition(0, "qword", "masked_eq", CLONE_THREAD, mask=CLONE_THREAD),),
                                        comment="glibc's fallback for clone3: threads only"))
        else:
            rules.append(model.Rule(syscall))
    if default == allow:
        raise PolicyError("--default-action allow would make the traced rules meaningless")
    rules = [rule for rule in rules if (rule.action or allow) != default]
    return model.Category(name=name, default_action=default, filter_action=allow, rules=tuple(rules))
