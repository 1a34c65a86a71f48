"""Firecracker's own policies: they compile for their architecture and the counts match."""

from __future__ import annotations

from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import compiler, explain
from support.policies import FIRECRACKER_AARCH64, FIRECRACKER_X86_64

# From the reference document, section 1.4: rule objects, distinct syscalls, unconditional, filtered.
X86_64_COUNTS = {"vmm": (76, 50, 37, 13), "api": (36, 31, 22, 9), "vcpu": (49, 27, 20, 7)}


def test_x86_64_counts_match_the_reference(firecracker_reference: Path) -> None:
    policy = policies.load_policy(firecracker_reference / FIRECRACKER_X86_64)
    counts = {}
    for name, category in policy.categories.items():
        summary = explain.summarize(category)
        counts[name] = (summary.rules, summary.syscalls, summary.unconditional, summary.with_arg_filters)
        assert summary.default_action == "trap" and summary.filter_action == "allow"
    assert counts == X86_64_COUNTS


@pytest.mark.parametrize(("file", "arch"), [(FIRECRACKER_X86_64, "x86_64"), (FIRECRACKER_AARCH64, "aarch64")])
def test_compiles_every_category(firecracker_reference: Path, file: str, arch: str) -> None:
    policy = policies.load_policy(firecracker_reference / file)
    programs = compiler.compile_policy(policy, arch)
    assert set(programs) == {"vmm", "api", "vcpu"}
    assert all(16 < len(program) // 8 < compiler.BPF_MAXINSNS for program in programs.values())


def test_aarch64_program_checks_the_aarch64_arch(firecracker_reference: Path) -> None:
    from jailer.policies import bpf, model, syscalls

    policy = policies.load_policy(firecracker_reference / FIRECRACKER_AARCH64)
    program = compiler.compile_category(policy, "vcpu", "aarch64")
    write = syscalls.number("write", "aarch64")
    assert write is not None
    assert bpf.emulate(program, bpf.SeccompData(write, arch=syscalls.AUDIT_ARCH["aarch64"])).action == model.Action("allow")
    assert bpf.emulate(program, bpf.SeccompData(write, arch=syscalls.AUDIT_ARCH["x86_64"])).action == model.Action("kill_process")


def test_x86_64_only_syscall_fails_on_aarch64(firecracker_reference: Path) -> None:
    policy = policies.load_policy(firecracker_reference / FIRECRACKER_X86_64)
    with pytest.raises(policies.PolicyError, match=r"category 'vmm', rule \d+ \((stat|open)\): no such syscall on aarch64"):
        compiler.compile_category(policy, "vmm", "aarch64")
