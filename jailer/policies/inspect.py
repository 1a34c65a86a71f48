"""Read the seccomp filters installed in each thread of a running process and name them.

For each thread: PTRACE_SEIZE, PTRACE_INTERRUPT, wait for the stop, then
PTRACE_SECCOMP_GET_FILTER index by index (0 = the first installed: the kernel counts back
from the newest) until ENOENT, then
PTRACE_DETACH. The kernel hands back the exact program that was installed, so each filter is
matched byte for byte against the categories compiled from the given policies (by default
every policy shipped in jailer/policies/). Needs CAP_SYS_ADMIN (the kernel's requirement for
reading filters) and ptrace access to the target.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

from jailer.policies.errors import PolicyError

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
WALL = 0x40000000
SECCOMP_MODES = {"0": "disabled", "1": "strict", "2": "filter"}


@dataclass(frozen=True)
class Filter:
    program: bytes
    match: str | None

    @property
    def instructions(self) -> int:
        return len(self.program) // 8


@dataclass
class ThreadFilters:
    tid: int
    name: str
    seccomp_mode: str
    no_new_privs: bool
    filters: list[Filter] = field(default_factory=list)  # oldest first

    def summary(self) -> str:
        if not self.filters:
            return f"{self.name}: no filters"
        names = ", ".join(f.match or f"unknown ({f.instructions} instructions)" for f in self.filters)
        plural = "filter" if len(self.filters) == 1 else "filters"
        return f"{self.name}: {len(self.filters)} {plural}: {names}"

    def to_json(self) -> dict[str, object]:
        return {
            "tid": self.tid,
            "name": self.name,
            "seccomp": self.seccomp_mode,
            "no_new_privs": self.no_new_privs,
            "filters": [
                {"match": f.match, "instructions": f.instructions, "bpf_hex": f.program.hex()} for f in self.filters
            ],
        }


def known_programs(policy_paths: list[str] | None = None) -> dict[bytes, str]:
    """Compiled program -> category name, for every category of the given (or shipped) policies."""
    from jailer import policies
    from jailer.policies import compiler

    paths = policy_paths or [str(policies.shipped_policy_path(name)) for name in policies.shipped_policy_names()]
    arch = "aarch64" if os.uname().machine == "aarch64" else "x86_64"
    programs: dict[bytes, str] = {}
    for path in paths:
        policy = policies.load_policy(path)
        for name, program in compiler.compile_policy(policy, arch).items():
            if program in programs and programs[program] != name:
                programs[program] = f"{programs[program]}|{name}"
            else:
                programs.setdefault(program, name)
    return programs


def inspect_process(pid: int, *, policies: list[str] | None = None) -> list[ThreadFilters]:
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tids = sorted(int(entry) for entry in os.listdir(task_dir))
    except FileNotFoundError:
        raise PolicyError(f"no process {pid}") from None
    programs = known_programs(policies)
    threads = []
    for tid in tids:
        try:
            status = _status(pid, tid)
            name = (task_dir / str(tid) / "comm").read_text().strip()
        except FileNotFoundError:
            continue  # the thread exited meanwhile
        thread = ThreadFilters(tid, name, SECCOMP_MODES.get(status.get("Seccomp", "0"), "?"), status.get("NoNewPrivs") == "1")
        if thread.seccomp_mode == "filter":
            thread.filters = [Filter(program, programs.get(program)) for program in read_filters(tid)]
        threads.append(thread)
    return threads


def _status(pid: int, tid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def read_filters(tid: int) -> list[bytes]:
    """The thread's filters, oldest first."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(PTRACE_SEIZE, tid, None, None) != 0:
        _raise(f"cannot attach to thread {tid}")
    try:
        if libc.ptrace(PTRACE_INTERRUPT, tid, None, None) != 0:
            _raise(f"cannot stop thread {tid}")
        os.waitpid(tid, WALL)
        programs = []
        index = 0
        while True:
            count = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, tid, ctypes.c_void_p(index), None)
            if count < 0:
                number = ctypes.get_errno()
                if number == errno.ENOENT:
                    break
                _raise(f"cannot read filter {index} of thread {tid}", number)
            buffer = ctypes.create_string_buffer(count * 8)
            if libc.ptrace(PTRACE_SECCOMP_GET_FILTER, tid, ctypes.c_void_p(index), buffer) != count:
                _raise(f"cannot read filter {index} of thread {tid}")
            programs.append(buffer.raw)
            index += 1
    finally:
        libc.ptrace(PTRACE_DETACH, tid, None, None)
    return programs


def _raise(what: str, number: int | None = None) -> None:
    number = ctypes.get_errno() if number is None else number
    hint = " (needs CAP_SYS_ADMIN and ptrace access)" if number in (errno.EPERM, errno.EACCES, errno.EINVAL) else ""
    raise PolicyError(f"{what}: {os.strerror(number)}{hint}")
