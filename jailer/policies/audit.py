"""Lint a policy for the ways seccomp filters commonly fail to protect.

Findings carry an id (stable, e.g. `dangerous:ptrace`), a severity, a one-line title and a
one-line remedy. A category may acknowledge a finding with a reason in its
`audit_acknowledged` map (`{"dangerous:execve": "the jail hands off with execve"}`); the
finding is still reported but marked, and does not fail `jailer-policy audit`.

Checks run both on the model (what the policy says) and on the compiled program through the
emulator (what libseccomp generated), for architecture and x32 handling.
"""

from __future__ import annotations

from dataclasses import dataclass

from jailer.policies import bpf, compiler, model, probes, syscalls

SEVERITIES = ("high", "medium", "low", "info")

DANGEROUS_HIGH = {
    "ptrace": "reads and steers other processes",
    "process_vm_readv": "reads another process's memory",
    "process_vm_writev": "writes another process's memory",
    "io_uring_setup": "io_uring performs I/O no seccomp filter sees",
    "io_uring_enter": "io_uring performs I/O no seccomp filter sees",
    "io_uring_register": "io_uring performs I/O no seccomp filter sees",
    "bpf": "loads eBPF programs into the kernel",
    "perf_event_open": "large kernel attack surface and side channels",
    "keyctl": "kernel keyrings are shared outside the sandbox",
    "add_key": "kernel keyrings are shared outside the sandbox",
    "request_key": "kernel keyrings are shared outside the sandbox",
    "mount": "changes the mount table",
    "umount2": "changes the mount table",
    "pivot_root": "changes the root",
    "move_mount": "changes the mount table",
    "open_tree": "clones mount trees",
    "fsopen": "new mount API",
    "fsmount": "new mount API",
    "fsconfig": "new mount API",
    "fspick": "new mount API",
    "mount_setattr": "changes mount flags",
    "setns": "enters other namespaces",
    "unshare": "creates namespaces (user namespaces expose much more kernel)",
    "kexec_load": "replaces the kernel",
    "kexec_file_load": "replaces the kernel",
    "init_module": "loads kernel code",
    "finit_module": "loads kernel code",
    "delete_module": "unloads kernel code",
    "open_by_handle_at": "opens files by handle, escaping chroot",
}
DANGEROUS_MEDIUM = {
    "execve": "runs a new program, dropping the thread's own code",
    "execveat": "runs a new program, dropping the thread's own code",
    "userfaultfd": "stalls kernel accesses to memory at will (exploitation aid)",
    "personality": "can disable ASLR (ADDR_NO_RANDOMIZE) or enable READ_IMPLIES_EXEC",
}
UNFILTERED = {
    "ioctl": "the request number selects among thousands of operations",
    "socket": "the family selects among dozens of protocol stacks",
    "prctl": "the option selects among dozens of process controls",
}
EQUIVALENT_GROUPS = (("open", "openat", "openat2"), ("execve", "execveat"), ("clone", "clone3"))
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x20000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
PROT_WRITE_EXEC = 0x2 | 0x4
SIGCHLD = 17
GLIBC_THREAD_FLAGS = 0x3D0F00  # what pthread_create passes to clone
FOREIGN_ARCHES = {"x86_64": 0x40000003, "aarch64": 0x40000028}  # i386, ARM


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    category: str
    title: str
    remedy: str
    acknowledged: str | None = None

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def audit_policy(policy: model.Policy, arch: str = "x86_64") -> list[Finding]:
    findings: list[Finding] = []
    for name, category in policy.categories.items():
        program = compiler.compile_category(policy, name, arch)
        findings.extend(audit_category(category, program, arch))
    return findings


def audit_category(category: model.Category, program: bytes, arch: str = "x86_64") -> list[Finding]:
    raw: list[tuple[str, str, str, str]] = []
    raw.extend(_program_checks(category, program, arch))
    raw.extend(_model_checks(category, arch))
    findings = []
    seen = set()
    for finding_id, severity, title, remedy in raw:
        if finding_id in seen:
            continue
        seen.add(finding_id)
        findings.append(
            Finding(finding_id, severity, category.name, title, remedy, category.audit_acknowledged.get(finding_id))
        )
    return sorted(findings, key=lambda finding: (SEVERITIES.index(finding.severity), finding.id))


def allowed(category: model.Category, syscall: str, args: tuple[int, ...] = (0,) * 6) -> bool:
    return not category.decide(syscall, args)[0].stops


def reachable(category: model.Category, syscall: str) -> bool:
    """Whether some argument values get the syscall through (checked on every rule's values)."""
    candidates = [(0,) * 6]
    for rule in category.rules:
        if rule.syscall == syscall:
            values = probes.matching_args(rule)
            if values is not None:
                candidates.append(values)
    return any(allowed(category, syscall, args) for args in candidates)


def unconditionally_allowed(category: model.Category, syscall: str) -> bool:
    rules = [rule for rule in category.rules if rule.syscall == syscall]
    if any(not rule.args and not category.action_of(rule).stops for rule in rules):
        return True
    return not rules and not category.default_action.stops


def _program_checks(category: model.Category, program: bytes, arch: str) -> list[tuple[str, str, str, str]]:
    findings = []
    some_syscall = next((syscalls.number(rule.syscall, arch) for rule in category.rules), 0) or 0
    foreign = bpf.emulate(program, bpf.SeccompData(some_syscall, arch=FOREIGN_ARCHES[arch])).action
    if not foreign.stops:
        findings.append(("arch-not-validated", "high", f"calls from a foreign architecture get {foreign}",
                         "check seccomp_data.arch first and kill on mismatch"))
    if arch == "x86_64":
        default_rank = model.strictness(category.default_action.ret)
        for rule in category.rules:
            nr = syscalls.number(rule.syscall, arch) or 0
            result = bpf.emulate(program, bpf.SeccompData(nr | syscalls.X32_SYSCALL_BIT)).action
            if model.strictness(result.ret) > default_rank or not result.stops:
                findings.append(("x32-not-blocked", "high", f"x32 {rule.syscall} (nr | 0x40000000) gets {result}",
                                 "reject syscall numbers with bit 30 set on x86_64"))
                break
    return findings


def _model_checks(category: model.Category, arch: str) -> list[tuple[str, str, str, str]]:
    findings: list[tuple[str, str, str, str]] = []
    if not category.default_action.stops:
        findings.append(("default-allow", "high", f"default action {category.default_action}: a deny-list, "
                         "so every syscall not listed (including future ones) is allowed",
                         "use an allowlist: default kill_process or trap"))
    if category.default_action.kind == "kill_thread" or any(
        category.action_of(rule).kind == "kill_thread" for rule in category.rules
    ):
        findings.append(("kill-thread", "medium", "kill_thread leaves a multi-threaded process inconsistent",
                         "use kill_process or trap"))
    for table, severity in ((DANGEROUS_HIGH, "high"), (DANGEROUS_MEDIUM, "medium")):
        for syscall, why in table.items():
            if syscalls.number(syscall, arch) is None:
                continue
            if syscall == "personality":
                if allowed(category, syscall, (0x0040000, 0, 0, 0, 0, 0)):
                    findings.append((f"dangerous:{syscall}", severity, f"personality allowed with any persona: {why}",
                                     "allow only personality(0) and the query 0xffffffff"))
            elif reachable(category, syscall):
                findings.append((f"dangerous:{syscall}", severity, f"{syscall} allowed: {why}", f"deny {syscall}"))
    if syscalls.number("clone", arch) is not None:
        findings.extend(_clone_namespace_checks(category))
    for syscall, why in UNFILTERED.items():
        if unconditionally_allowed(category, syscall) and category.default_action.stops:
            findings.append((f"unfiltered:{syscall}", "medium", f"{syscall} allowed for any argument: {why}",
                             f"filter {syscall} on its argument"))
    findings.extend(_equivalent_gaps(category, arch))
    if category.default_action.stops and category.rules and not allowed(category, "restart_syscall"):
        findings.append(("restart-syscall-denied", "medium",
                         "restart_syscall is not allowed: a thread stopped in a sleeping syscall (SIGSTOP, a ptrace "
                         "attach such as `jailer-policy inspect`) dies when it resumes",
                         "allow restart_syscall (Firecracker does in every category)"))
    for syscall in ("mmap", "mprotect", "pkey_mprotect"):
        if syscalls.number(syscall, arch) is None:
            continue
        candidates = [(0, 0, PROT_WRITE_EXEC, 0x22, 0, 0)]
        for rule in category.rules:
            values = probes.matching_args(rule) if rule.syscall == syscall else None
            if values is not None:
                candidates.append(values[:2] + (values[2] | PROT_WRITE_EXEC,) + values[3:])
        if any(allowed(category, syscall, args) for args in candidates):
            findings.append((f"wx-mapping:{syscall}", "high", f"{syscall} allowed with PROT_WRITE|PROT_EXEC",
                             "require (prot & PROT_EXEC) == 0"))
    keys = [rule.key() for rule in category.rules]
    for number, rule in enumerate(category.rules, 1):
        if keys.index(rule.key()) != number - 1:
            findings.append((f"duplicate-rule:{number}", "low", f"rule {number} ({rule.syscall}) repeats an earlier rule",
                             "remove the duplicate"))
        elif probes.matching_args(rule) is None:
            findings.append((f"dead-rule:{number}", "low", f"rule {number} ({rule.describe()}) can never match",
                             "fix or remove the condition"))
    return findings


def _clone_namespace_checks(category: model.Category) -> list[tuple[str, str, str, str]]:
    """Namespace flags on clone. With CLONE_THREAD the kernel itself refuses CLONE_NEWUSER and
    CLONE_NEWPID (and CLONE_NEWNS next to CLONE_FS), so a threads-only rule leaves just the
    namespaces that need CAP_SYS_ADMIN: medium. Process-style clones with them: high."""
    for flag_name, flag in CLONE_NAMESPACE_FLAGS.items():
        if allowed(category, "clone", (SIGCHLD | flag, 0, 0, 0, 0, 0)):
            return [("clone-namespaces", "high", f"clone allowed with namespace flags ({flag_name})",
                     "allow clone only with CLONE_THREAD, or deny namespace flags")]
    for flag_name in ("CLONE_NEWNET", "CLONE_NEWUTS", "CLONE_NEWIPC", "CLONE_NEWCGROUP"):
        if allowed(category, "clone", (GLIBC_THREAD_FLAGS | CLONE_NAMESPACE_FLAGS[flag_name], 0, 0, 0, 0, 0)):
            return [("clone-namespaces-privileged", "medium",
                     f"a thread may be created in a new namespace ({flag_name}; needs CAP_SYS_ADMIN)",
                     "also require the namespace flags to be clear, e.g. arg0 & 0x7e020000 == 0 via masked_eq")]
    return []


def _equivalent_gaps(category: model.Category, arch: str) -> list[tuple[str, str, str, str]]:
    findings = []
    for group in EQUIVALENT_GROUPS:
        present = [name for name in group if syscalls.number(name, arch) is not None]
        restricted = [name for name in present if _restricted(category, name)]
        open_ = [name for name in present if unconditionally_allowed(category, name)]
        for name in restricted:
            for other in open_:
                findings.append((f"equivalent-gap:{name}/{other}", "high",
                                 f"{name} is restricted but the equivalent {other} is allowed for any argument",
                                 f"restrict or deny {other} too (clone3: errno ENOSYS)"))
    return findings


def _restricted(category: model.Category, syscall: str) -> bool:
    """The policy takes care to limit this syscall: conditional allows, or (some) denials."""
    rules = [rule for rule in category.rules if rule.syscall == syscall]
    if not rules:
        return False
    if category.default_action.stops:
        return not unconditionally_allowed(category, syscall)
    return any(category.action_of(rule).stops for rule in rules)
