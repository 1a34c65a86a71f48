"""Jail hand-off benchmark: wall time from starting a launcher to a probe running in its jail.

Measured side by side in one run, alternating (and swapping who goes first each round):
- Stockade's `jailer` (the venv's console script): mount/pid/ipc/uts namespaces, pivot_root,
  a v1 cgroup (`cpu.shares`), device nodes, rlimits, privilege drop to uid/gid 1234,
  capabilities emptied, around a copy of the probe (the jailer's job includes that copy);
- bubblewrap doing comparable isolation around the same probe: `--unshare-pid --unshare-ipc
  --unshare-uts` (the jailer joins no new network namespace, so neither does bwrap), the jail
  root bound as `/`, the same device nodes dev-bound, `--uid/--gid 1234`, `--cap-drop ALL`,
  `--new-session`. As root, bwrap accepts `--uid` only with `--unshare-user`, so the bwrap side
  also creates a user namespace. bwrap has no cgroup support, so it skips that step.

The probe (`handoff_probe.c`, built static at bench time) prints CLOCK_MONOTONIC µs as its first
action; the hand-off time is that minus the monotonic time taken just before spawning the
launcher. Also records the interpreter's own start-up floor (`python -I -c pass`) and the
jailer's heaviest imports (`python -X importtime`).

Usage (root): .venv/bin/python benchmarks/jail_handoff.py [--runs 30] [--write]
`--write` stores the markdown section in benchmarks/results/jail_handoff.md, keeping the
hand-written analysis that follows its "### Findings" heading.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "jail_handoff.md"
# Everything from this line on in the results file is hand-written analysis, kept on --write.
FINDINGS_MARKER = "### Findings"
PROBE_SOURCE = BENCH_DIR / "handoff_probe.c"
JAIL_UID = JAIL_GID = 1234
DEVICES = ["/dev/kvm", "/dev/net/tun", "/dev/urandom", "/dev/userfaultfd"]
CPU_CGROUP = Path("/sys/fs/cgroup/cpu")


def monotonic_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def jailer_command() -> list[str]:
    script = Path(sys.executable).with_name("jailer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "jailer"]


def build_probe(directory: Path) -> Path:
    output = directory / "handoff_probe"
    subprocess.run(["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(output), str(PROBE_SOURCE)], check=True)
    return output


@dataclass
class Sample:
    handoff_us: int
    probe_uid: int
    probe_pid: int


def timed_spawn(argv: list[str]) -> Sample:
    started = monotonic_us()
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    probe_us, uid, pid = (int(field) for field in result.stdout.split()[:3])
    return Sample(probe_us - started, uid, pid)


def remove_cgroup(path: Path) -> None:
    """rmdir, retrying while the exiting probe still counts as a member."""
    for _ in range(500):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"cannot remove cgroup {path}")


class JailerSide:
    """One `jailer` run per sample; each gets a fresh id, its jail and cgroup removed after."""

    def __init__(self, probe: Path, base: Path, prefix: str) -> None:
        self.probe, self.base, self.prefix = probe, base, prefix
        self.count = 0
        self.seccomp_flags: list[str] = []
        self.seccomp_note = "default outer seccomp filter"

    def argv(self, jail_id: str) -> list[str]:
        return [
            *jailer_command(), "--id", jail_id, "--exec-file", str(self.probe),
            "--uid", str(JAIL_UID), "--gid", str(JAIL_GID), "--chroot-base-dir", str(self.base),
            "--new-pid-ns", "--cgroup", "cpu.shares=1024", "--parent-cgroup", self.prefix,
            *self.seccomp_flags,
        ]

    def prepare(self) -> None:
        """Use the default seccomp filter when the jailer can install it, else `--no-seccomp`
        (bwrap installs none either); recorded in the results."""
        try:
            self.sample()
        except RuntimeError as error:
            if "seccomp" not in str(error).lower():
                raise
            self.seccomp_flags = ["--no-seccomp"]
            self.seccomp_note = f"`--no-seccomp` (default filter unavailable: {str(error).splitlines()[-1]})"
            self.sample()

    def sample(self) -> Sample:
        self.count += 1
        jail_id = f"{self.prefix}-{self.count}"
        try:
            return timed_spawn(self.argv(jail_id))
        finally:
            shutil.rmtree(self.base / self.probe.name / jail_id, ignore_errors=True)
            remove_cgroup(CPU_CGROUP / self.prefix / jail_id)

    def close(self) -> None:
        remove_cgroup(CPU_CGROUP / self.prefix)


class BwrapSide:
    def __init__(self, probe: Path, root: Path) -> None:
        shutil.copy2(probe, root / "probe")
        devices = [device for device in DEVICES if os.path.exists(device)]
        self.argv = [
            shutil.which("bwrap") or "bwrap",
            "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--bind", str(root), "/",
            *(arg for device in devices for arg in ("--dev-bind", device, device)),
            "--uid", str(JAIL_UID), "--gid", str(JAIL_GID), "--cap-drop", "ALL", "--new-session",
            "/probe",
        ]

    def sample(self) -> Sample:
        return timed_spawn(self.argv)


# Whole-process wall times that bound what a Python jailer can reach (not peers): the bare
# interpreter without `site`, with `site` (where the venv's editable-install finder runs, as for
# the console script), and the console script doing no jail work at all.
FLOORS = {
    "python -I -S -c pass": [sys.executable, "-I", "-S", "-c", "pass"],
    "python -I -c pass": [sys.executable, "-I", "-c", "pass"],
    "jailer --version": [*jailer_command(), "--version"],
}


def process_wall(argv: list[str]) -> Callable[[], Sample]:
    def run() -> Sample:
        started = monotonic_us()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return Sample(monotonic_us() - started, 0, 0)

    return run


def import_times(jailer: JailerSide) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) of one full jail run, from `python -X importtime`."""
    jailer.count += 1
    jail_id = f"{jailer.prefix}-{jailer.count}"
    command = jailer.argv(jail_id)
    if command[0].endswith("jailer"):
        command = [sys.executable, "-X", "importtime", *command]
    else:
        command = [sys.executable, "-X", "importtime", *command[1:]]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(jailer.base / jailer.probe.name / jail_id, ignore_errors=True)
        remove_cgroup(CPU_CGROUP / jailer.prefix / jail_id)
    rows = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:"):].split("|", 2)
        rows.append((int(self_us), int(cumulative_us), name.rstrip()))
    return rows


def summarize(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p10": ordered[max(0, len(ordered) // 10)],
        "p90": ordered[min(len(ordered) - 1, len(ordered) * 9 // 10)],
    }


def render(runs: int, stats: dict[str, dict[str, float]], jailer: JailerSide,
           imports: list[tuple[int, int, str]]) -> str:
    ratio = stats["jailer"]["median"] / stats["bwrap"]["median"]
    verdict = "meets" if ratio <= 1.0 else "misses"
    lines = [
        "## Jail hand-off (`benchmarks/jail_handoff.py`)",
        "",
        f"Wall time from spawning the launcher to the probe's first instruction inside the jail, "
        f"{runs} alternating runs each, on {os.cpu_count()} CPUs, kernel {os.uname().release}, "
        f"Python {sys.version.split()[0]}, bubblewrap "
        f"{subprocess.run(['bwrap', '--version'], capture_output=True, text=True).stdout.split()[-1]}.",
        f"Jailer: `--new-pid-ns`, one v1 cgroup (`cpu.shares`), devices, rlimits, uid/gid {JAIL_UID}, "
        f"{jailer.seccomp_note}. bwrap: pid/ipc/uts/user namespaces, bind root, dev-binds, uid/gid, "
        "`--cap-drop ALL`, `--new-session` (no cgroup: bwrap has none).",
        "",
        "| launcher | median µs | min µs | p10 µs | p90 µs |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {"jailer": "Stockade `jailer`", "bwrap": "bubblewrap",
              **{name: f"floor: `{name}` (whole process, not a peer)" for name in FLOORS}}
    for name, label in labels.items():
        row = stats[name]
        lines.append(f"| {label} | {row['median']:.0f} | {row['min']:.0f} | {row['p10']:.0f} | {row['p90']:.0f} |")
    lines += [
        "",
        f"Ratio jailer/bwrap (median): **{ratio:.2f}x** — {verdict} the <= 1.0x target.",
        "",
        "Heaviest imports of one full jail run (`python -X importtime`, cumulative µs, top-level "
        "and nested):",
        "",
        "| module | self µs | cumulative µs |",
        "|---|---:|---:|",
    ]
    for self_us, cumulative_us, name in sorted(imports, key=lambda row: row[1], reverse=True)[:15]:
        nested = name[1:].startswith(" ")  # importtime indents a module under its importer
        lines.append(f"| `{name.strip()}`{' (nested)' if nested else ''} | {self_us} | {cumulative_us} |")
    total = sum(row[0] for row in imports)
    lines += ["", f"All imports together: {total} µs of self time ({len(imports)} modules).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="samples per launcher (>= 20)")
    parser.add_argument("--write", action="store_true", help=f"write the markdown section to {RESULTS}")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("jail_handoff: needs root (namespaces, cgroups, device nodes)", file=sys.stderr)
        return 1
    if options.runs < 20:
        print("jail_handoff: --runs must be at least 20", file=sys.stderr)
        return 1
    prefix = f"stbench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="jail-handoff-") as scratch:
        work = Path(scratch)
        probe = build_probe(work)
        (work / "jails").mkdir()
        (work / "bwrap-root").mkdir()
        jailer = JailerSide(probe, work / "jails", prefix)
        bwrap = BwrapSide(probe, work / "bwrap-root")
        try:
            jailer.prepare()
            bwrap.sample()  # warm both paths (page cache, dentries) before measuring
            sides: dict[str, Callable[[], Sample]] = {
                "jailer": jailer.sample, "bwrap": bwrap.sample,
                **{name: process_wall(argv) for name, argv in FLOORS.items()},
            }
            samples: dict[str, list[int]] = {name: [] for name in sides}
            for round_index in range(options.runs):
                order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
                for name in order:
                    sample = sides[name]()
                    if name in ("jailer", "bwrap"):
                        assert sample.probe_uid == JAIL_UID and sample.probe_pid <= 2, (name, sample)
                    samples[name].append(sample.handoff_us)
            imports = import_times(jailer)
        finally:
            jailer.close()
    stats = {name: summarize(values) for name, values in samples.items()}
    report = render(options.runs, stats, jailer, imports)
    print(report)
    if options.write:
        RESULTS.parent.mkdir(exist_ok=True)
        previous = RESULTS.read_text() if RESULTS.exists() else ""
        findings = previous[previous.index(FINDINGS_MARKER):] if FINDINGS_MARKER in previous else ""
        RESULTS.write_text(report + ("\n" + findings if findings else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
