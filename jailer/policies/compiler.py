"""Model -> classic BPF (`struct sock_filter` arrays) through libseccomp, one program per category.

Same approach as Firecracker's seccompiler: one libseccomp context per category with the
category's default action, one rule per policy rule, exported with `seccomp_export_bpf` (to a
memfd, as pyseccomp 0.1.2 has no in-memory export). Output is deterministic: the same policy
always gives the same bytes, which `inspect` relies on to recognise installed filters.

Architecture and x32: the program checks `seccomp_data.arch` and returns KILL_PROCESS for any
other architecture (libseccomp's "bad arch" action; KILL_PROCESS rather than libseccomp's
KILL_THREAD default because killing one thread of a Python process leaves it inconsistent).
On x86_64, x32 system calls share AUDIT_ARCH_X86_64 and are told apart only by bit 30 of the
number; the x32 ABI is never added to the context, so libseccomp routes numbers with that bit
to the same bad-arch action. tests/unit/policies/test_compiler.py checks that on every program.
"""

from __future__ import annotations

import os

from jailer.policies import model, syscalls
from jailer.policies.errors import PolicyError

BPF_MAXINSNS = 4096
SOCK_FILTER_SIZE = 8
BAD_ARCH_ACTION = model.Action("kill_process")


def compile_category(policy: model.Policy, category: str, arch: str = "x86_64") -> bytes:
    """The raw `struct sock_filter` array for one category (8 bytes per instruction)."""
    return _compile(policy.category(category), arch, policy.source)


def compile_policy(policy: model.Policy, arch: str = "x86_64") -> dict[str, bytes]:
    """Every category's program, in the policy's order."""
    return {name: _compile(category, arch, policy.source) for name, category in policy.categories.items()}


def write_split_output(programs: dict[str, bytes], directory: str | os.PathLike[str]) -> list[str]:
    """Write `<category>.bpf` files, like seccompiler's --split-output; returns the paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, program in programs.items():
        if "/" in name or name in (".", ".."):
            raise PolicyError(f"category name {name!r} cannot be used as a file name")
        path = os.path.join(directory, f"{name}.bpf")
        with open(path, "wb") as output:
            output.write(program)
        paths.append(path)
    return paths


def _compile(category: model.Category, arch: str, source: str) -> bytes:
    import pyseccomp

    syscalls.check_arch(arch)
    where = f"{source}: category {category.name!r}"
    context = pyseccomp.SyscallFilter(category.default_action.ret)
    target = pyseccomp.Arch.X86_64 if arch == "x86_64" else pyseccomp.Arch.AARCH64
    if not context.exist_arch(target):
        context.add_arch(target)
    if pyseccomp.system_arch() != target:
        context.remove_arch(pyseccomp.Arch.NATIVE)
    context.set_attr(pyseccomp.Attr.ACT_BADARCH, BAD_ARCH_ACTION.ret)
    for number, rule in enumerate(category.rules, 1):
        nr = syscalls.number(rule.syscall, arch)
        if nr is None:
            raise PolicyError(f"{where}, rule {number} ({rule.syscall}): no such syscall on {arch}")
        conditions = [pyseccomp.Arg(c.index, *_libseccomp_comparison(c)) for c in rule.args]
        try:
            context.add_rule_exactly(category.action_of(rule).ret, rule.syscall, *conditions)
        except OSError as error:
            raise PolicyError(
                f"{where}, rule {number} ({rule.syscall}): libseccomp rejected the rule: {error.strerror}"
            ) from None
    program = _export(context)
    if len(program) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise PolicyError(
            f"{where}: {len(program) // SOCK_FILTER_SIZE} instructions exceed the kernel's limit of {BPF_MAXINSNS}"
        )
    return program


def _libseccomp_comparison(condition: model.Condition) -> tuple[int, int, int]:
    """(op, datum_a, datum_b): dword eq becomes MASKED_EQ 0xffffffff, as in Firecracker."""
    import pyseccomp

    if condition.op == "masked_eq":
        return pyseccomp.MASKED_EQ, condition.effective_mask, condition.val
    if condition.op == "eq" and condition.type == "dword":
        return pyseccomp.MASKED_EQ, model.U32, condition.val
    op = {
        "eq": pyseccomp.EQ,
        "ne": pyseccomp.NE,
        "lt": pyseccomp.LT,
        "le": pyseccomp.LE,
        "gt": pyseccomp.GT,
        "ge": pyseccomp.GE,
    }[condition.op]
    return op, condition.val, 0


class _Fd:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def _export(context: object) -> bytes:
    fd = os.memfd_create("stockade-bpf", os.MFD_CLOEXEC)
    try:
        context.export_bpf(_Fd(fd))  # type: ignore[attr-defined]
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
