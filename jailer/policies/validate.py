"""Check compiled filters on the running kernel, rule by rule, in forked children.

For every rule the child calls the syscall with arguments that match the rule, then with each
condition perturbed (see `probes`), under the category's compiled filter, and the observed
verdict is compared with what the policy says.

Nothing the policy allows is actually executed. Before the filter under test, each child
installs a one-rule "marker" filter returning an otherwise unused errno for exactly the syscall
being probed. The kernel runs every stacked filter and keeps the strictest result, the most
recently installed winning ties, so the child observes:
  * the marker errno: the filter under test allowed the call (allow, log or trace);
  * another errno: the filter under test returned that errno;
  * death by SIGSYS: the filter under test trapped or killed.
So `reboot`, `kill`, `clone` or a blocking `ppoll` are probed without side effects or hangs,
and only the filter's verdict is measured. Also probed per category: a syscall the policy
does not mention (the default action) and an x32 syscall number (must be killed).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import struct
from dataclasses import dataclass

from jailer.policies import compiler, model, probes, syscalls
from jailer.policies.loader import PR_SET_NO_NEW_PRIVS, SECCOMP_SET_MODE_FILTER

UNLISTED_CANDIDATES = ("getppid", "getpgrp", "getuid", "getegid", "sched_yield", "times", "uname")
_STATE = struct.Struct("<qqq")  # stage, return value, errno
_STAGE_CALLING, _STAGE_RETURNED = 1, 2
CHILD_TIMEOUT = 10.0
SYS_SECCOMP = 317


@dataclass(frozen=True)
class Result:
    category: str
    rule_number: int
    syscall: str
    args: tuple[int, ...]
    description: str
    expected: str
    observed: str

    @property
    def ok(self) -> bool:
        return self.expected == self.observed

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "args": list(self.args), "ok": self.ok}


def expected_outcome(action: model.Action) -> str:
    if not action.stops:
        return "allowed"
    if action.kind == "errno":
        return f"errno {action.value}"
    return "SIGSYS"


def validate_policy(policy: model.Policy, *, categories: list[str] | None = None) -> list[Result]:
    if os.uname().machine != "x86_64":
        from jailer.policies.errors import PolicyError

        raise PolicyError(f"validate runs x86_64 filters and needs an x86_64 host, not {os.uname().machine}")
    results: list[Result] = []
    for name in categories or list(policy.categories):
        category = policy.category(name)
        program = compiler.compile_category(policy, name)
        results.extend(validate_category(category, program))
    return results


def validate_category(category: model.Category, program: bytes) -> list[Result]:
    marker = _marker_errno(category)
    cases = list(probes.rule_probes(category))
    unlisted = next((n for n in UNLISTED_CANDIDATES if n not in category.syscalls()), None)
    if unlisted is not None:
        cases.append(probes.Probe(unlisted, (0,) * 6, category.default_action, 0, "not in the policy: default action"))
    results = []
    for probe in cases:
        nr = syscalls.number(probe.syscall)
        assert nr is not None
        observed = _run(program, nr, probe.args, marker)
        results.append(Result(category.name, probe.rule_number, probe.syscall, probe.args, probe.description,
                              expected_outcome(probe.expected), observed))
    read_nr = syscalls.number("read") or 0
    results.append(Result(category.name, 0, "read (x32)", (0,) * 6, "nr | 0x40000000: the x32 ABI",
                          "SIGSYS", _run(program, read_nr | syscalls.X32_SYSCALL_BIT, (0,) * 6, None)))
    return results


def _marker_errno(category: model.Category) -> int:
    used = {category.default_action.value, category.filter_action.value} | {
        rule.action.value for rule in category.rules if rule.action is not None
    }
    return next(value for value in range(4094, 3000, -1) if value not in used)


def _marker_program(nr: int, marker: int, install_pointer: int) -> bytes:
    """ERRNO(marker) for syscall `nr`; for seccomp itself, except the child's own install call."""
    name = syscalls.name(nr)
    assert name is not None
    conditions = (model.Condition(2, "qword", "ne", install_pointer),) if name == "seccomp" else ()
    category = model.Category("marker", model.Action("allow"), model.Action("errno", marker), (model.Rule(name, conditions),))
    return compiler.compile_category(model.Policy({"marker": category}), "marker")


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _fprog(program: bytes) -> tuple[_Fprog, ctypes.Array[ctypes.c_char]]:
    buffer = ctypes.create_string_buffer(program, len(program))
    return _Fprog(len(program) // 8, ctypes.addressof(buffer)), buffer


def _run(program: bytes, nr: int, args: tuple[int, ...], marker: int | None) -> str:
    policy_fprog, policy_buffer = _fprog(program)
    install_pointer = ctypes.addressof(policy_fprog)
    marker_fprog = None
    if marker is not None:
        marker_fprog, marker_buffer = _fprog(_marker_program(nr, marker, install_pointer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.syscall.argtypes = [ctypes.c_long] * 7
    state = mmap.mmap(-1, _STATE.size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    try:
        pid = os.fork()
        if pid == 0:
            _child(libc, state, policy_fprog, marker_fprog, nr, args)
        status = _reap(pid, state)
        stage, ret, error = _STATE.unpack(state[:])
    finally:
        state.close()
    if stage != _STAGE_RETURNED:
        # Killed inside the probed call (exiting afterwards may be killed too: the result is saved first).
        if os.WIFSIGNALED(status):
            name = signal.Signals(os.WTERMSIG(status)).name
            if stage == _STAGE_CALLING:
                return "SIGSYS" if name == "SIGSYS" else f"died by {name}"
            return f"died by {name} before the call"
        return f"child failed to set up or timed out (wait status {status:#x})"
    if ret == -1 and error == marker:
        return "allowed"
    if ret == -1:
        return f"errno {error}"
    return f"ran and returned {ret} (the marker filter did not apply)"


def _reap(pid: int, state: mmap.mmap) -> int:
    """Wait for the child; kill it once it has saved its result (or after CHILD_TIMEOUT).

    A filter whose default is an errno makes exit_group fail too, and glibc's _exit then spins
    retrying it forever, so a child that has reported cannot be trusted to exit on its own.
    """
    import select
    import time

    deadline = time.monotonic() + CHILD_TIMEOUT
    pidfd = os.pidfd_open(pid)
    try:
        while not select.select([pidfd], [], [], 0.02)[0]:
            reported = _STATE.unpack(state[:])[0] == _STAGE_RETURNED
            if reported or time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]


def _child(libc: ctypes.CDLL, state: mmap.mmap, policy_fprog: _Fprog, marker_fprog: _Fprog | None,
           nr: int, args: tuple[int, ...]) -> None:
    """Install marker then policy filter with raw seccomp() calls and make the probed call.

    NO_NEW_PRIVS is set before any filter, so probing prctl or seccomp (which the marker turns
    into errors) cannot break the installation of the filter under test.
    """
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.setsid()
        call_args = [ctypes.c_long(value - (1 << 64) if value >= 1 << 63 else value) for value in args]
        sys_seccomp = SYS_SECCOMP
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            os._exit(3)
        for fprog in (marker_fprog, policy_fprog):
            if fprog is not None and libc.syscall(sys_seccomp, SECCOMP_SET_MODE_FILTER, 0, ctypes.addressof(fprog), 0, 0, 0) != 0:
                os._exit(4)
        state[0:8] = struct.pack("<q", _STAGE_CALLING)
        ret = libc.syscall(nr, *call_args)
        error = ctypes.get_errno()
        state[0:_STATE.size] = _STATE.pack(_STAGE_RETURNED, ret, error)
    finally:
        os._exit(0)
