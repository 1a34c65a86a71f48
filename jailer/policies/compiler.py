"""Model -> classic BPF (`struct sock_filter` arrays) through libseccomp, one program per category.

Same approach as Firecracker's seccompiler: one libseccomp context per category with the
category's default action, one rule per policy rule, exported with `seccomp_export_bpf` to a
memfd. libseccomp is called through ctypes directly (the calls pyseccomp makes) rather than
through pyseccomp, whose import runs `ctypes.util.find_library`: ~25 ms of subprocesses
(ldconfig, gcc) on the jailer's start-up path, and impossible inside a jail. Output is deterministic: the same policy
always gives the same bytes, which `inspect` relies on to recognise installed filters.

Architecture and x32: the program checks `seccomp_data.arch` and returns KILL_PROCESS for any
other architecture (libseccomp's "bad arch" action; KILL_PROCESS rather than libseccomp's
KILL_THREAD default because killing one thread of a Python process leaves it inconsistent).
On x86_64, x32 system calls share AUDIT_ARCH_X86_64 and are told apart only by bit 30 of the
number; the x32 ABI is never added to the context, so libseccomp routes numbers with that bit
to the same bad-arch action. tests/unit/policies/test_compiler.py checks that on every program.
"""

from __future__ import annotations

import ctypes
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
    """Write `<category>.bpf` files, like seccompiler's --split-output, all of them or none
    (`files.write_category_files`); returns the paths."""
    from jailer.policies.files import write_category_files

    return write_category_files(directory, programs, ".bpf")


def _compile(category: model.Category, arch: str, source: str) -> bytes:
    library = _bindings()
    audit_arch = syscalls.check_arch(arch)
    where = f"{source}: category {category.name!r}"
    conflict = category.action_conflict()
    if conflict:
        raise PolicyError(f"{where}, {conflict}")
    context = library.seccomp_init(category.default_action.ret)
    if not context:
        raise PolicyError(f"{where}: libseccomp refused the default action {category.default_action}")
    try:
        if library.seccomp_arch_exist(context, audit_arch) != 0:
            _check(library.seccomp_arch_add(context, audit_arch), where, "adding the architecture")
        if library.seccomp_arch_native() != audit_arch:
            _check(library.seccomp_arch_remove(context, library.seccomp_arch_native()), where, "removing the native arch")
        _check(library.seccomp_attr_set(context, _ATTR_ACT_BADARCH, BAD_ARCH_ACTION.ret), where, "setting the bad-arch action")
        for number, rule in enumerate(category.rules, 1):
            if syscalls.number(rule.syscall, arch) is None:
                raise PolicyError(f"{where}, rule {number} ({rule.syscall}): no such syscall on {arch}")
            # The native number, as libseccomp's API expects; it translates per architecture by name.
            nr = library.seccomp_syscall_resolve_name(rule.syscall.encode())
            conditions = (_ArgCmp * 6)(*(_ArgCmp(c.index, *_libseccomp_comparison(c)) for c in rule.args))
            result = library.seccomp_rule_add_exact_array(context, category.action_of(rule).ret, nr, len(rule.args), conditions)
            if result != 0:
                raise PolicyError(
                    f"{where}, rule {number} ({rule.syscall}): libseccomp rejected the rule: {os.strerror(-result)}"
                )
        program = _export(library, context, where)
    finally:
        library.seccomp_release(context)
    # The size first: the range-merge check below emulates the program many times, which for a
    # program the kernel would refuse anyway is time spent on nothing.
    if len(program) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise PolicyError(
            f"{where}: {len(program) // SOCK_FILTER_SIZE} instructions exceed the kernel's limit of {BPF_MAXINSNS}"
        )
    _refuse_mismerged_ranges(category, program, arch, audit_arch, where)
    return program


_ORDERED_OPS = frozenset({"lt", "le", "gt", "ge"})
U64 = (1 << 64) - 1


def _ranged_arguments(category: model.Category) -> dict[str, set[int]]:
    """syscall -> argument indexes that two or more of its rules compare with lt/le/gt/ge."""
    counts: dict[tuple[str, int], int] = {}
    for rule in category.rules:
        for condition in rule.args:
            if condition.op in _ORDERED_OPS:
                key = (rule.syscall, condition.index)
                counts[key] = counts.get(key, 0) + 1
    ranged: dict[str, set[int]] = {}
    for (syscall, index), count in counts.items():
        if count > 1:
            ranged.setdefault(syscall, set()).add(index)
    return ranged


def _refuse_mismerged_ranges(category: model.Category, program: bytes, arch: str, audit_arch: int, where: str) -> None:
    """Fail closed on libseccomp's 64-bit range merge bug (GHSA-4q85-33p6-j5g6, fixed in 2.6.1).

    libseccomp before 2.6.1 can merge several ordered 64-bit comparisons on one argument into
    a tree that accepts values no rule accepts (two rules `arg0 >= 0x100000001` and
    `arg0 < 1` let `arg0 == 1` through), i.e. a silently weaker filter. Where a category has
    that shape, its program is run in the BPF emulator on the boundary values of every such
    comparison and must agree with the policy's own verdict; otherwise no program is emitted.
    Categories without the shape (every shipped one) pay nothing for this check.
    """
    ranged = _ranged_arguments(category)
    if not ranged:
        return
    from jailer.policies import bpf, probes

    for syscall, indexes in ranged.items():
        nr = syscalls.number(syscall, arch)
        bases = [(0,) * 6] + [args for rule in category.rules if rule.syscall == syscall
                              and (args := probes.matching_args(rule)) is not None]
        for index in indexes:
            values = {0, 1, 0xFFFFFFFF, 1 << 32, U64}
            for rule in category.rules:
                for condition in rule.args:
                    if rule.syscall == syscall and condition.index == index:
                        values.update((condition.val + delta) & U64 for delta in (-1, 0, 1))
                        values.update(((condition.val >> 32 << 32) + delta) & U64 for delta in (-1, 0))
            # Bases that differ only in the probed argument give the same probes: keep one of
            # each (rules comparing that one argument would otherwise multiply the work).
            others = {base[:index] + (0,) + base[index + 1:] for base in bases}
            for base in sorted(others):
                for value in sorted(values):
                    args = base[:index] + (value,) + base[index + 1:]
                    expected, _ = category.decide(syscall, args)
                    got = bpf.emulate(program, bpf.SeccompData(nr, arch=audit_arch, args=args)).action
                    if got != expected:
                        raise PolicyError(
                            f"{where}: libseccomp compiled {syscall} wrongly: {syscall}{args} gets {got} but the "
                            f"policy says {expected} (the 64-bit range merge bug GHSA-4q85-33p6-j5g6, fixed in "
                            "libseccomp 2.6.1); upgrade libseccomp or express these ranges with masked_eq/eq rules"
                        )


def _libseccomp_comparison(condition: model.Condition) -> tuple[int, int, int]:
    """(op, datum_a, datum_b): dword eq becomes MASKED_EQ 0xffffffff, as in Firecracker."""
    if condition.op == "masked_eq":
        return _CMP["masked_eq"], condition.effective_mask, condition.val
    if condition.op == "eq" and condition.type == "dword":
        return _CMP["masked_eq"], model.U32, condition.val
    return _CMP[condition.op], condition.val, 0


# libseccomp's enum scmp_compare and SCMP_FLTATR_ACT_BADARCH (seccomp.h).
_CMP = {"ne": 1, "lt": 2, "le": 3, "eq": 4, "ge": 5, "gt": 6, "masked_eq": 7}
_ATTR_ACT_BADARCH = 2


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _bindings() -> ctypes.CDLL:
    """libseccomp's compile API, bound once (the handle is shared with `syscalls`)."""
    library = syscalls._libseccomp()
    if not getattr(library, "_stockade_compile_bound", False):
        signatures = {
            "seccomp_init": ([ctypes.c_uint32], ctypes.c_void_p),
            "seccomp_release": ([ctypes.c_void_p], None),
            "seccomp_arch_exist": ([ctypes.c_void_p, ctypes.c_uint32], ctypes.c_int),
            "seccomp_arch_add": ([ctypes.c_void_p, ctypes.c_uint32], ctypes.c_int),
            "seccomp_arch_remove": ([ctypes.c_void_p, ctypes.c_uint32], ctypes.c_int),
            "seccomp_arch_native": ([], ctypes.c_uint32),
            "seccomp_attr_set": ([ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32], ctypes.c_int),
            "seccomp_syscall_resolve_name": ([ctypes.c_char_p], ctypes.c_int),
            "seccomp_rule_add_exact_array": (
                [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)], ctypes.c_int),
            "seccomp_export_bpf": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_int),
        }
        for name, (argtypes, restype) in signatures.items():
            function = getattr(library, name)
            function.argtypes, function.restype = argtypes, restype
        library._stockade_compile_bound = True
    return library


def _check(result: int, where: str, what: str) -> None:
    if result != 0:
        raise PolicyError(f"{where}: libseccomp failed {what}: {os.strerror(-result)}")


def _export(library: ctypes.CDLL, context: int, where: str) -> bytes:
    fd = os.memfd_create("stockade-bpf", os.MFD_CLOEXEC)
    try:
        _check(library.seccomp_export_bpf(context, fd), where, "exporting the program")
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)
