"""libseccomp's programs against the model, through the pure-Python emulator, rule by rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import bpf, compiler, model, probes, syscalls
from support.policies import FIRECRACKER_AARCH64, FIRECRACKER_X86_64

SHIPPED = sorted(Path(policies.__file__).parent.glob("*.json"))


def _disagreements(policy: model.Policy, arch: str) -> list[str]:
    audit_arch = syscalls.AUDIT_ARCH[arch]
    problems = []
    for name, program in compiler.compile_policy(policy, arch).items():
        category = policy.category(name)
        cases = probes.rule_probes(category)
        assert cases, f"{name}: no probes"
        for probe in cases:
            data = bpf.SeccompData(syscalls.number(probe.syscall, arch), arch=audit_arch, args=probe.args)
            got = bpf.emulate(program, data).action
            if got != probe.expected:
                problems.append(f"{name} rule {probe.rule_number} {probe.syscall} {probe.description}: {got} != {probe.expected}")
    return problems


@pytest.mark.parametrize(("file", "arch"), [(FIRECRACKER_X86_64, "x86_64"), (FIRECRACKER_AARCH64, "aarch64")])
def test_firecracker_policies_agree_with_model(firecracker_reference: Path, file: str, arch: str) -> None:
    policy = policies.load_policy(firecracker_reference / file)
    assert _disagreements(policy, arch) == []


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_shipped_policies_agree_with_model(path: Path) -> None:
    assert _disagreements(policies.load_policy(path), "x86_64") == []


def test_probes_include_perturbations_that_stop() -> None:
    policy = policies.load_policy(policies.shipped_policy_path("baseline"))
    cases = probes.rule_probes(policy.category("baseline"))
    assert any(not case.expected.stops and case.syscall == "clone" for case in cases)
    assert any(case.expected == model.Action("errno", 1) and case.syscall == "clone" for case in cases)


def test_dword_eq_ignores_the_high_half_but_qword_does_not(tmp_path: Path) -> None:
    from support.policies import category, write_policy

    document = {"t": category([
        {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 0x5421}]},
        {"syscall": "fcntl", "args": [{"index": 1, "type": "qword", "op": "eq", "val": 2}]},
    ])}
    policy = policies.load_policy(write_policy(tmp_path, document))
    program = compiler.compile_category(policy, "t")

    def verdict(name: str, *args: int) -> model.Action:
        return bpf.emulate(program, bpf.SeccompData(syscalls.number(name), args=args)).action

    assert verdict("ioctl", 0, 0xFFFFFFFF_00005421) == model.Action("allow")
    assert verdict("fcntl", 0, 0x1_00000002) == model.Action("kill_process")
    assert verdict("fcntl", 0, 2) == model.Action("allow")
