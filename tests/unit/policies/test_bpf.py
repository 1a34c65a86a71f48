"""The pure-Python emulator on hand-written and random programs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jailer.policies import PolicyError, bpf, model

RET_ALLOW = bpf.Insn(0x06, 0, 0, model.SECCOMP_RET_ALLOW)


def test_scratch_memory_alu_and_return_a() -> None:
    program = bpf.encode([
        bpf.Insn(0x20, 0, 0, 16),          # A = args[0].lo
        bpf.Insn(0x02, 0, 0, 3),           # mem[3] = A
        bpf.Insn(0x00, 0, 0, 0x50000),     # A = 0x50000 (LD IMM)
        bpf.Insn(0x61, 0, 0, 3),           # X = mem[3]
        bpf.Insn(0x4C, 0, 0, 0),           # A |= X
        bpf.Insn(0x16, 0, 0, 0),           # return A
    ])
    assert bpf.emulate(program, bpf.SeccompData(0, args=(13,))).action == model.Action("errno", 13)


@pytest.mark.parametrize(
    ("insns", "message"),
    [
        ([bpf.Insn(0x05, 0, 0, 5)], "runs off its end"),
        ([bpf.Insn(0x28, 0, 0, 0), RET_ALLOW], "only 32-bit loads"),
        ([bpf.Insn(0x20, 0, 0, 2), RET_ALLOW], "not an aligned 32-bit field"),
        ([bpf.Insn(0x20, 0, 0, 64), RET_ALLOW], "not an aligned 32-bit field"),
        ([bpf.Insn(0x34, 0, 0, 0), RET_ALLOW], "division by zero"),
        ([bpf.Insn(0x60, 0, 0, 16), RET_ALLOW], "scratch memory slot 16"),
    ],
)
def test_invalid_programs_are_policy_errors(insns: list[bpf.Insn], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        bpf.emulate(bpf.encode(insns), bpf.SeccompData(0))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=8, max_size=8 * 24).filter(lambda b: len(b) % 8 == 0), st.integers(0, 2**32 - 1))
def test_random_programs_terminate_with_a_verdict_or_a_clear_error(program: bytes, nr: int) -> None:
    try:
        run = bpf.emulate(program, bpf.SeccompData(nr))
    except PolicyError as error:
        assert "\n" not in str(error)
        return
    assert 0 <= run.ret <= 0xFFFFFFFF and run.trace
    bpf.disassemble(program)  # every instruction also renders
