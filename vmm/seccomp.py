"""Per-thread seccomp filters and the report of a violation.

All categories are compiled in the main thread before any thread starts; each thread
installs its own (`install`) after its setup. The policies use `default_action: trap`:
the kernel then sends the offending thread a SIGSYS, and `install_violation_handler`'s
handler (a C-level sigaction callback, so it runs at once in that very thread) logs the
thread and syscall names, flushes metrics and ends the whole process with status 148 —
Firecracker's BadSyscall code. It never returns, because a return would make the trapped
syscall look like it succeeded.
"""

from __future__ import annotations

import _signal
import os

from jailer.native import CFUNCTYPE, Structure, byref, c_int, c_uint, c_ulong, c_void_p, get_errno
from vmm.errors import VmmError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

BAD_SYSCALL_EXIT_STATUS = 148
SA_SIGINFO = 4
SIGINFO_SYSCALL_OFFSET = 0x18
SIGINFO_ARCH_OFFSET = 0x1C
AUDIT_ARCH_X86_64 = 0xC000003E


class _Sigaction(Structure):
    _fields_ = [
        ("sa_sigaction", c_void_p),
        ("sa_mask", c_ulong * 16),
        ("sa_flags", c_int),
        ("sa_restorer", c_void_p),
    ]


_HANDLER_TYPE = CFUNCTYPE(None, c_int, c_void_p, c_void_p)
_installed: list[ViolationReporter] = []


def compile_filters(policy_path: Path | None, categories: list[str]) -> dict[str, bytes]:
    """BPF programs for ``categories`` from ``policy_path`` (default: the shipped `vmm`).

    Programs `jailer-policy precompile` stored for the policy's exact content are used as they
    are (`jailer.policies.precompiled`: no parser, no libseccomp); only when one of the
    categories has no fresh stored program is the policy parsed and compiled, as before.
    Also loads the installer here, so threads do no imports of their own before their filter.
    """
    import jailer.policies.loader  # noqa: F401

    stored = _stored_filters(policy_path, categories)
    if stored is not None:
        return stored
    from jailer.policies import PolicyError, load_policy, shipped_policy_path
    from jailer.policies.compiler import compile_category

    try:
        policy = load_policy(policy_path or shipped_policy_path("vmm"))
        missing = [name for name in categories if name not in policy.categories]
        if missing:
            raise VmmError(f"seccomp policy {policy.source}: no category {missing[0]!r} (needs {', '.join(categories)})")
        return {name: compile_category(policy, name, arch="x86_64") for name in categories}
    except PolicyError as error:
        if error.reason is not None:  # the file itself (a FIFO is refused unread, not waited on)
            raise VmmError(f"seccomp policy {error.path}: {error.reason}") from None
        raise VmmError(f"seccomp policy: {error}") from None


def _stored_filters(policy_path: Path | None, categories: list[str]) -> dict[str, bytes] | None:
    """Every category's precompiled program, or None unless all of them are fresh."""
    from jailer.policies import PolicyError, precompiled, shipped_policy_file

    try:
        path = os.fspath(policy_path) if policy_path is not None else shipped_policy_file("vmm")
    except PolicyError:
        return None  # the compile path reports it
    return precompiled.load_categories(path, categories, "x86_64")


def install(program: bytes) -> None:
    """Install ``program`` on the calling thread only."""
    from jailer.policies.loader import install_filter

    install_filter(program, all_threads=False)


def syscall_names() -> list[str]:
    """Number → name for x86_64, made before any filter (the handler must not look up): the
    table `jailer-policy precompile` stored, or else the policy toolchain's libseccomp
    resolution, one name per number."""
    from jailer.policies import precompiled

    names = precompiled.load_syscall_names("x86_64") or precompiled.compute_syscall_names("x86_64")
    return [name or f"syscall_{number}" for number, name in enumerate(names)]


class ViolationReporter:
    """Owns the SIGSYS handler; ``report`` is what the handler calls (also unit-testable)."""

    def __init__(self, names: list[str], thread_name: Callable[[], str], write_line: Callable[[str], None],
                 flush_metrics: Callable[[], None], count: Callable[[], None]) -> None:
        self._names = names
        self._thread_name = thread_name
        self._write_line = write_line
        self._flush_metrics = flush_metrics
        self._count = count
        self._callback = _HANDLER_TYPE(self._handle)

    def describe(self, number: int, arch: int) -> str:
        if arch != AUDIT_ARCH_X86_64:
            return f"syscall {number} of foreign architecture {arch:#x}"
        name = self._names[number] if 0 <= number < len(self._names) else f"syscall_{number}"
        return f"{name} ({number})"

    def report_line(self, number: int, arch: int) -> str:
        return f"seccomp violation: thread {self._thread_name()} called {self.describe(number, arch)}; shutting down"

    def _handle(self, signum: int, info: int | None, _context: int | None) -> None:
        try:
            if info:
                number = c_int.from_address(info + SIGINFO_SYSCALL_OFFSET).value
                arch = c_uint.from_address(info + SIGINFO_ARCH_OFFSET).value
            else:
                number, arch = -1, AUDIT_ARCH_X86_64
            self._count()
            self._write_line(self.report_line(number, arch))
            self._flush_metrics()
        finally:
            os._exit(BAD_SYSCALL_EXIT_STATUS)

    def install(self) -> None:
        """sigaction(SIGSYS, SA_SIGINFO) in the calling (main) thread, before any filter."""
        from vmm.libc import libc

        action = _Sigaction()
        action.sa_sigaction = c_void_p.from_buffer(self._callback).value  # the C entry point
        action.sa_flags = SA_SIGINFO
        if libc.sigaction(_signal.SIGSYS, byref(action), None) != 0:
            raise VmmError(f"cannot install the SIGSYS handler: {os.strerror(get_errno())}")
        _installed.append(self)  # the C handler points into this object: keep it alive
