"""Parsing strace output into per-thread-pattern categories (pure logic)."""

from __future__ import annotations

import pytest

from jailer.policies import model, trace

LOG = """\
100   execve("/usr/bin/python3.11", ["python3"], 0x7ffd /* 3 vars */) = 0
100   mmap(0, 0x4000, 0x3, 0x22, 0xffffffff, 0) = 0x7f7e86972000
100   clone3(0x7fff6c737850, 0x58 <unfinished ...>
100   <... clone3 resumed>)             = 0x65
101   rseq(0x7f7e87176fe0, 0x20, 0, 0x53053053) = 0
101   prctl(0xf, "vcpu0" <unfinished ...>
100   futex(0x561d5dbd0190, 0x80, 0x1, 0, 0x1, 0) = 0
101   <... prctl resumed>)              = 0
101   ioctl(0x3, 0xae80, 0) = 0
101   ioctl(0x3, 0xffffffff0000ae80, 0) = 0
101   mprotect(0x7f0000000000, 0x1000, 0x1) = 0
101   clone(0x3d0f00, 0x7f00, 0x7f01, 0x7f02, 0x7f03) = 0x66
102   prctl(0xf, "vcpu1") = 0
102   socket(0x1, 0x80001, 0)           = 0x3
102   exit(0)                           = ?
100   mmap(0, 0x1000, 0x7, 0x22, 0xffffffff, 0) = 0x7f7e86970000
+++ exited with 0 +++
"""


@pytest.mark.parametrize(("name", "expected"), [("vcpu0", "vcpu"), ("vcpu12", "vcpu"), ("fc_vcpu 1", "fc_vcpu"),
                                                ("api", "api"), ("Virtio-Blk#3", "virtio_blk"), ("0", "0")])
def test_pattern(name: str, expected: str) -> None:
    assert trace.pattern(name) == expected


@pytest.fixture
def calls() -> dict[str, dict[str, list[tuple[int, ...]]]]:
    return trace.parse_strace(LOG.splitlines(keepends=True), initial_name="strace-child")


def test_threads_are_attributed_by_their_name_at_the_time(calls: dict[str, dict[str, list[tuple[int, ...]]]]) -> None:
    assert set(calls) == {"strace_child", "python3", "vcpu"}
    assert set(calls["python3"]) == {"mmap", "clone3", "futex", "rseq", "prctl"}  # 101 before it named itself
    assert set(calls["vcpu"]) == {"ioctl", "mprotect", "clone", "prctl", "socket", "exit"}
    assert calls["vcpu"]["ioctl"][0][1] == 0xAE80


def test_policy_filters_the_arguments_that_matter(calls: dict[str, dict[str, list[tuple[int, ...]]]]) -> None:
    policy = trace.policy_from_trace(trace.TraceResult(0, calls), default_action=model.Action("kill_process"))
    vcpu = policy.category("vcpu")
    described = {rule.describe() for rule in vcpu.rules}
    assert "ioctl when arg1 (low 32 bits) == 0xae80" in described  # high garbage collapses into one dword rule
    assert "mprotect when arg2 & 0x4 == 0x0" in described
    assert "clone when arg0 & 0x10000 == 0x10000" in described
    assert "socket when arg0 (low 32 bits) == 0x1" in described
    assert "exit" in described
    python = policy.category("python3")
    mmap = [rule for rule in python.rules if rule.syscall == "mmap"]
    assert mmap == [model.Rule("mmap", comment="PROT_EXEC was observed: review before shipping")]
    clone3 = [rule for rule in python.rules if rule.syscall == "clone3"]
    assert clone3[0].action == model.Action("errno", 38)
    assert any(rule.syscall == "clone" and rule.args for rule in python.rules)


def test_union_category(calls: dict[str, dict[str, list[tuple[int, ...]]]]) -> None:
    policy = trace.policy_from_trace(trace.TraceResult(0, calls), default_action=model.Action("trap"), union="jail")
    jail = policy.category("jail")
    assert set(jail.syscalls()) >= set(policy.category("vcpu").syscalls()) | set(policy.category("python3").syscalls())
