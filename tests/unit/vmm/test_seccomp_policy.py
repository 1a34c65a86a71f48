"""The shipped per-thread policy, judged by running its compiled BPF in the toolchain's
emulator, and the violation report line."""

from __future__ import annotations

import pytest

from vmm import seccomp

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
KVM_RUN, KVM_IRQ_LINE, KVM_CREATE_VM = 0xAE80, 0x4008AE61, 0xAE01
SECCOMP_RET_ALLOW, SECCOMP_RET_TRAP = 0x7FFF0000, 0x00030000
CLONE_THREAD_FLAGS = 0x3D0F00


@pytest.fixture(scope="module")
def programs() -> dict[str, bytes]:
    return seccomp.compile_filters(None, ["vmm", "vcpu", "api", "jail", "jail-api"])


def verdict(program: bytes, name: str, *args: int) -> int:
    from jailer.policies import syscalls
    from jailer.policies.bpf import SeccompData, emulate

    number = syscalls.number(name)
    assert number is not None
    data = SeccompData(nr=number, arch=0xC000003E, instruction_pointer=0, args=tuple(args) + (0,) * (6 - len(args)))
    return emulate(program, data).ret & 0xFFFF0000


@pytest.mark.parametrize(
    ("category", "call", "args", "allowed"),
    [
        ("vcpu", "ioctl", (5, KVM_RUN, 0), True),
        ("vcpu", "ioctl", (5, KVM_IRQ_LINE, 0), True),
        ("vcpu", "ioctl", (5, KVM_CREATE_VM, 0), False),
        ("vcpu", "mmap", (0, 4096, PROT_READ | PROT_WRITE), True),
        ("vcpu", "mmap", (0, 4096, PROT_READ | PROT_EXEC), False),
        ("vcpu", "mprotect", (0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC), False),
        ("vcpu", "socket", (2, 1, 0), False),
        ("vcpu", "openat", (0, 0, 0), False),
        ("vcpu", "execve", (0, 0, 0), False),
        ("vcpu", "clone", (CLONE_THREAD_FLAGS,), False),
        ("vcpu", "futex", (0, 0x81), True),
        ("vcpu", "futex", (0, 0x0C), False),
        ("vcpu", "write", (1, 0, 1), True),
        ("vcpu", "exit_group", (148,), True),
        ("vmm", "ioctl", (5, KVM_RUN, 0), False),
        ("vmm", "ioctl", (5, KVM_IRQ_LINE, 0), True),
        ("vmm", "poll", (0, 2, 0), True),
        ("vmm", "tgkill", (1, 2, 10), True),
        ("vmm", "socket", (2, 1, 0), False),
        ("vmm", "openat", (0, 0, 0), False),
        ("vmm", "clone3", (0, 88), False),
        ("api", "accept4", (3, 0, 0, 0x80000), True),
        ("api", "recvfrom", (4, 0, 4096, 0), True),
        ("api", "ioctl", (5, KVM_RUN, 0), False),
        ("api", "openat", (0, 0, 0), False),
        ("api", "socket", (1, 1, 0), False),
        ("jail", "openat", (0, 0, 0), True),
        ("jail", "execve", (0, 0, 0), True),
        ("jail", "clone", (CLONE_THREAD_FLAGS,), True),
        ("jail", "clone", (0x11,), False),
        ("jail", "clone", (CLONE_THREAD_FLAGS | 0x20000000,), False),
        ("jail", "mmap", (0, 4096, PROT_READ | PROT_EXEC), True),
        ("jail", "ioctl", (5, 0x4020AE46, 0), True),
        ("jail", "ioctl", (5, 0xAE02, 0), False),
        ("jail", "ptrace", (0,), False),
        ("jail", "mount", (0,), False),
    ],
)
def test_shipped_policy_verdicts(programs: dict[str, bytes], category: str, call: str, args: tuple[int, ...], allowed: bool) -> None:
    assert (verdict(programs[category], call, *args) == SECCOMP_RET_ALLOW) is allowed


def test_writable_executable_memory(programs: dict[str, bytes]) -> None:
    """Only the jail layer lets libffi's one W+X probe through; no thread category does."""
    wx = (0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC)
    assert verdict(programs["jail"], "mmap", *wx) == SECCOMP_RET_ALLOW
    assert verdict(programs["jail"], "mprotect", *wx) == SECCOMP_RET_TRAP
    for category in ("vmm", "vcpu", "api"):
        assert verdict(programs[category], "mmap", *wx) == SECCOMP_RET_TRAP
        assert verdict(programs[category], "mprotect", *wx) == SECCOMP_RET_TRAP


def test_jail_sockets(programs: dict[str, bytes]) -> None:
    """`jail` answers every socket() with EACCES; `jail-api` allows Unix sockets only."""
    assert verdict(programs["jail"], "socket", 1, 0x80001, 0) == 0x00050000
    assert verdict(programs["jail"], "socket", 2, 1, 0) == 0x00050000
    assert verdict(programs["jail"], "bind", 3, 0, 110) == SECCOMP_RET_TRAP
    assert verdict(programs["jail-api"], "socket", 1, 0x80001, 0) == SECCOMP_RET_ALLOW
    assert verdict(programs["jail-api"], "socket", 2, 1, 0) == SECCOMP_RET_TRAP
    assert verdict(programs["jail-api"], "connect", 3, 0, 110) == 0x00050000  # EACCES for the nscd probe


def test_thread_categories_trap_by_default(programs: dict[str, bytes]) -> None:
    for category in ("vmm", "vcpu", "api", "jail", "jail-api"):
        assert verdict(programs[category], "reboot", 0) == SECCOMP_RET_TRAP


def test_compile_reports_a_missing_category(tmp_path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text('{"vmm": {"default_action": "trap", "filter_action": "allow", "filter": [{"syscall": "write"}]}}')
    with pytest.raises(seccomp.VmmError, match="no category 'vcpu'"):
        seccomp.compile_filters(policy, ["vmm", "vcpu"])


def test_violation_report_line() -> None:
    names = seccomp.syscall_names()
    assert names[41] == "socket" and names[0] == "read"
    reporter = seccomp.ViolationReporter(names, lambda: "vcpu0", lambda line: None, lambda: None, lambda: None)
    assert reporter.report_line(41, 0xC000003E) == "seccomp violation: thread vcpu0 called socket (41); shutting down"
    assert "foreign architecture 0x40000003" in reporter.report_line(41, 0x40000003)
    assert "syscall_9999 (9999)" in reporter.report_line(9999, 0xC000003E)
