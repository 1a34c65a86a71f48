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
    audit_arch = syscalls.check_arch(arch)
    where = f"{source}: category {category.name!r}"
    conflict = category.action_conflict()
    if conflict:
        raise PolicyError(f"{where}, {conflict}")
    _refuse_looping_merges(category, where)
    library = _bindings()
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
    # The size first: the merge check below emulates the program many times, which for a
    # program the kernel would refuse anyway is time spent on nothing.
    if len(program) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        raise PolicyError(
            f"{where}: {len(program) // SOCK_FILTER_SIZE} instructions exceed the kernel's limit of {BPF_MAXINSNS}"
        )
    _refuse_mismerges(category, program, arch, audit_arch, where)
    return program


# Comparisons libseccomp builds as nodes with two branches to the same rest of the rule.
_BRANCHING_OPS = frozenset({"ne", "lt", "le", "gt", "ge"})
U64 = (1 << 64) - 1


def _refuse_looping_merges(category: model.Category, where: str) -> None:
    """Refuse, before libseccomp sees them, rules its tree merge can loop on for ever.

    libseccomp builds a 64-bit ne/lt/le/gt/ge comparison as nodes two of whose branches lead
    to the same rest of the rule (its comparisons of higher-numbered arguments). Merging
    another rule of the syscall into such a shared rest, libseccomp 2.5.4 can loop for ever
    (gdb: recursing in its tree merge below `seccomp_rule_add`, no syscalls; 2.6.1 changes
    one line of that merge, `_db_tree_add`: the GHSA fix below, which sets an action). Then
    `jailer-policy compile`, the jailer or the VMM never return, CPU-bound. Seen with two
    ioctl rules `arg0 != 128 && arg1 >= 0` and `arg0 != 128 && arg1 != 0`. Refused: a syscall
    with two or more rules that compare several arguments, one of which compares an argument
    with ne/lt/le/gt/ge below another it compares. That is wider than what loops (of 39,000
    random categories on two or three arguments, all 171 that looped had the shape, and about
    1 in 30 with the shape looped); no shipped or Firecracker policy has it.
    """
    several: dict[str, list[tuple[int, model.Rule]]] = {}
    for number, rule in enumerate(category.rules, 1):
        if len(rule.args) > 1:
            several.setdefault(rule.syscall, []).append((number, rule))
    for syscall, rules in several.items():
        if len(rules) < 2:
            continue
        for number, rule in rules:
            last = max(condition.index for condition in rule.args)
            branching = [c for c in rule.args if c.op in _BRANCHING_OPS and c.index < last]
            if branching:
                other = next(n for n, _ in rules if n != number)
                first = min(branching, key=lambda condition: condition.index)
                raise PolicyError(
                    f"{where}, rule {number} ({syscall}): compares arg{first.index} with {first.op} before arg{last} "
                    f"while rule {other} also compares several arguments of {syscall}: libseccomp can loop for ever "
                    f"merging such rules, so they are refused; compare arg{first.index} with eq or masked_eq there, "
                    f"or give {syscall} only one rule that compares several arguments"
                )


def _merged_branching(category: model.Category) -> list[str]:
    """The syscalls libseccomp merges branching comparisons for: two or more rules, and
    ne/lt/le/gt/ge among their comparisons."""
    rules: dict[str, int] = {}
    branching: set[str] = set()
    for rule in category.rules:
        rules[rule.syscall] = rules.get(rule.syscall, 0) + 1
        if any(condition.op in _BRANCHING_OPS for condition in rule.args):
            branching.add(rule.syscall)
    return [syscall for syscall in rules if syscall in branching and rules[syscall] > 1]


def _refuse_mismerges(category: model.Category, program: bytes, arch: str, audit_arch: int, where: str) -> None:
    """Fail closed where libseccomp merges rules into a tree that decides otherwise than they do.

    libseccomp before 2.6.1 can merge several ordered 64-bit comparisons on one argument into
    a tree that accepts values no rule accepts (GHSA-4q85-33p6-j5g6: two rules
    `arg0 >= 0x100000001` and `arg0 < 1` let `arg0 == 1` through), i.e. a silently weaker
    filter; 2.5.4 also gets merges of `ne` comparisons wrong (`arg0 != 1 && arg1 & 0x80 == 0`
    beside `arg0 != 0` let futex(0, 0x80) through). So wherever a syscall has two or more
    rules and ne/lt/le/gt/ge among their comparisons, its part of the program is run in the
    BPF emulator and must agree with the policy's own verdict; otherwise no program is
    emitted. It is run on every combination of the boundary values of the syscall's
    comparisons, on every argument it compares: libseccomp's tree decides one argument after
    another, so a mis-merge on one argument may show only where another sends the call down a
    different branch (`arg0 < 1` beside `arg0 <= 0 && arg1 == 0` let ioctl(0, 1) through
    while ioctl(0, 0) was right). More than `_MAX_MERGE_PROBES` combinations are refused
    rather than left unchecked. Categories without the shape (every shipped one: eq and
    masked_eq only) pay nothing for this check.
    """
    checked = _merged_branching(category)
    if not checked:
        return
    from itertools import product

    from jailer.policies import bpf

    for syscall in checked:
        nr = syscalls.number(syscall, arch)
        rules = [rule for rule in category.rules if rule.syscall == syscall]
        compared = sorted({condition.index for rule in rules for condition in rule.args})
        boundaries = [sorted(_boundary_values(rules, index)) for index in compared]
        count = 1
        for values in boundaries:
            count *= len(values)
        if count > _MAX_MERGE_PROBES:
            raise PolicyError(
                f"{where}: {syscall}'s comparisons give {count} combinations of boundary values to check for "
                f"libseccomp's mis-merges (GHSA-4q85-33p6-j5g6 and others), more than {_MAX_MERGE_PROBES}; "
                "compare fewer values or arguments with ne/lt/le/gt/ge, or use masked_eq/eq rules"
            )
        for combination in product(*boundaries):
            args = [0] * 6
            for index, value in zip(compared, combination):
                args[index] = value
            expected, _ = category.decide(syscall, args)
            got = bpf.emulate(program, bpf.SeccompData(nr, arch=audit_arch, args=args)).action
            if got != expected:
                raise PolicyError(
                    f"{where}: libseccomp compiled {syscall} wrongly: {syscall}{tuple(args)} gets {got} but the "
                    f"policy says {expected} (libseccomp mis-merged its rules' ne/lt/le/gt/ge comparisons, as in "
                    "the 64-bit range merge bug GHSA-4q85-33p6-j5g6, fixed in libseccomp 2.6.1); express these "
                    "comparisons with masked_eq/eq rules"
                )


# The merge check's work, bounded: an emulation takes ~35 µs on a program of 15 instructions,
# ~0.4 ms on one of 200 (200 ordered rules on one argument: ~600 combinations).
_MAX_MERGE_PROBES = 10_000


def _boundary_values(rules: list[model.Rule], index: int) -> set[int]:
    """Values of argument `index` on both sides of every comparison `rules` make on it, and of
    its two 32-bit halves (libseccomp compares the high half first, then the low one)."""
    from jailer.policies import probes

    values = {0, 1, 0xFFFFFFFF, 1 << 32, U64}
    for rule in rules:
        for condition in rule.args:
            if condition.index == index:
                values.update((condition.val + delta) & U64 for delta in (-1, 0, 1))
                values.update(((condition.val >> 32 << 32) + delta) & U64 for delta in (-1, 0))
                values.update(probes.perturbed(condition))
    return values


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
