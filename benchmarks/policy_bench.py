"""Seccomp policy toolchain benchmark: compile and load, side by side with native libseccomp.

Compile: every category of Firecracker's x86_64 policy, (a) ours: JSON parse + model +
libseccomp through pyseccomp + export, (b) peer: the same rules added by a C program linked
against libseccomp (what Firecracker's seccompiler does natively), timed inside the program.
Load: a precompiled category installed in a freshly forked child, (a) ours:
`jailer.policies.loader.install_filter`, (b) peer: prctl + seccomp() from C in a fresh process.
Targets (issue 4): compile <= 50 ms for the whole policy, load <= 1 ms. Numbers are printed as
a markdown section; run with `.venv/bin/python benchmarks/policy_bench.py [--write]`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT.parent / "shared" / "reference" / "firecracker" / "x86_64-unknown-linux-musl.json"
RUNS = 30

from jailer import policies  # noqa: E402
from jailer.policies import compiler, model  # noqa: E402
from jailer.policies import loader  # noqa: E402

C_COMPILE = r"""
#define _GNU_SOURCE
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
static void build(void);
int main(int argc, char **argv) {
    int runs = atoi(argv[1]);
    for (int i = 0; i < runs; i++) { double start = now(); build(); printf("%f\n", now() - start); }
    return 0;
}
static void finish(scmp_filter_ctx ctx) {
    int fd = memfd_create("bpf", 0);
    if (seccomp_export_bpf(ctx, fd) != 0) abort();
    close(fd);
    seccomp_release(ctx);
}
"""

C_LOAD = r"""
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    static unsigned char program[65536];
    FILE *file = fopen(argv[1], "rb");
    size_t size = fread(program, 1, sizeof program, file);
    fclose(file);
    struct sock_fprog fprog = { (unsigned short)(size / 8), (struct sock_filter *)program };
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog)) abort();
    clock_gettime(CLOCK_MONOTONIC, &b);
    char text[64];  /* stdio's first write would fstat, which the filter traps */
    int length = snprintf(text, sizeof text, "%f\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
    if (write(1, text, length) != length) abort();
    syscall(SYS_exit_group, 0);
    return 0;
}
"""


def c_rules(policy: model.Policy) -> str:
    from jailer.policies.compiler import _libseccomp_comparison  # the same lowering as ours

    body = ["static void build(void) {"]
    for category in policy.categories.values():
        body.append(f"  {{ scmp_filter_ctx ctx = seccomp_init({category.default_action.ret:#x}U);")
        body.append(f"    seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, {compiler.BAD_ARCH_ACTION.ret:#x}U);")
        for rule in category.rules:
            conds = ", ".join(
                "{%d, %d, %#xULL, %#xULL}" % (c.index, *_libseccomp_comparison(c)) for c in rule.args
            )
            action = category.action_of(rule).ret
            if rule.args:
                body.append(f"    {{ struct scmp_arg_cmp c[] = {{{conds}}}; if (seccomp_rule_add_exact_array(ctx, {action:#x}U, "
                            f"seccomp_syscall_resolve_name(\"{rule.syscall}\"), {len(rule.args)}, c)) abort(); }}")
            else:
                body.append(f"    if (seccomp_rule_add_exact(ctx, {action:#x}U, seccomp_syscall_resolve_name(\"{rule.syscall}\"), 0)) abort();")
        body.append("    finish(ctx); }")
    body.append("}")
    return "\n".join(body)


def build(directory: Path, name: str, source: str, libs: list[str]) -> Path:
    (directory / f"{name}.c").write_text(source)
    subprocess.run(["gcc", "-O2", "-o", str(directory / name), str(directory / f"{name}.c"), *libs], check=True)
    return directory / name


def ours_compile_ms() -> list[float]:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        compiler.compile_policy(policies.load_policy(REFERENCE))
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def ours_load_ms(program: bytes, *, prepared: bool) -> list[float]:
    """In a fresh child each time; `prepared`: the loader's libc lookups done before the fork."""
    if prepared:
        loader.prepare()
    samples = []
    for _ in range(RUNS):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            start = time.perf_counter_ns()
            loader.install_filter(program, all_threads=False)
            elapsed = time.perf_counter_ns() - start
            os.write(write_end, str(elapsed / 1e6).encode())
            os._exit(0)
        os.close(write_end)
        samples.append(float(os.read(read_end, 64)))
        os.close(read_end)
        os.waitpid(pid, 0)
    return samples


def run_c(binary: Path, *args: str, repeat: int = 1) -> list[float]:
    samples = []
    for _ in range(repeat):
        out = subprocess.run([str(binary), *args], check=True, capture_output=True, text=True).stdout
        samples += [float(line) for line in out.split()]
    return samples


def fmt(samples: list[float]) -> str:
    return f"{statistics.median(samples):.3f} ms (min {min(samples):.3f}, max {max(samples):.3f}, n={len(samples)})"


def main() -> int:
    if not REFERENCE.is_file():
        print(f"Firecracker reference policy absent at {REFERENCE}", file=sys.stderr)
        return 2
    policy = policies.load_policy(REFERENCE)
    programs = compiler.compile_policy(policy)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        c_compile = build(directory, "compile", C_COMPILE + c_rules(policy), ["-lseccomp"])
        c_load = build(directory, "load", C_LOAD, [])
        vcpu_bpf = directory / "vcpu.bpf"
        vcpu_bpf.write_bytes(programs["vcpu"])
        rows = [
            ("compile all 3 categories (parse + compile)", fmt(ours_compile_ms()), fmt(run_c(c_compile, str(RUNS)))),
            (f"load `vcpu` ({len(programs['vcpu']) // 8} insns) in a fresh child, first call (cold libc lookup)",
             fmt(ours_load_ms(programs["vcpu"], prepared=False)), fmt(run_c(c_load, str(vcpu_bpf), repeat=RUNS))),
            (f"load `vcpu` in a fresh child after `loader.prepare()`", fmt(ours_load_ms(programs["vcpu"], prepared=True)), "same as above"),
        ]
    kernel = os.uname().release
    lines = [
        "## Seccomp policies (`benchmarks/policy_bench.py`)",
        "",
        f"Firecracker x86_64 policy ({', '.join(f'{n}: {len(p) // 8}' for n, p in programs.items())} instructions); "
        f"kernel {kernel}, {os.cpu_count()} CPUs, libseccomp 2.5.4, Python {sys.version.split()[0]}. "
        "Targets: compile <= 50 ms, load <= 1 ms. Median of the runs.",
        "",
        "| measurement | Stockade (Python) | peer: C + libseccomp |",
        "|---|---|---|",
        *[f"| {name} | {ours} | {peer} |" for name, ours, peer in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if "--write" in sys.argv:
        (ROOT / "benchmarks" / "results" / "policy.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
