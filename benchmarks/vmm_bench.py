"""VMM benchmark (issue 5 "Performance"): Stockade's Python `vmm` against QEMU's microvm,
booting the same freestanding PVH guests with the same memory size, alternating in one run
(and swapping who goes first each round). Ours runs twice: through pip's console script
`vmm` (which imports `re` before our code) and through the two-line launcher the jailer
starts it with in production (`jailer.microvm.launcher_text()`: `#!<venv python> -IB`).

Measured:
- start-up, with the smallest PVH guest (`tests/guests/minimal.S`: writes the boot-timer byte
  123 at 0xC0000000, then the byte 'B' to COM1 at 0x3F8, then exits through port 0xF4):
  * process start -> boot point, for all three (the headline): from the monotonic clock just
    before spawning to the first byte read from the VMM's stdout, where both VMMs put the
    guest's COM1 output (QEMU with `-serial stdio`). The stdout pipe is read with raw
    `os.read` in its own thread, so the byte is seen as soon as the VMM writes it; it is the
    issue's "process start -> boot-timer write" for QEMU too, which has no boot-timer device;
  * process start -> exit, for all three (spawn to reaping the exit status with a blocking
    wait: the boot point plus the guest's exit, the VMM's shutdown and the kernel's VM
    teardown in exit_group);
  * process start -> boot-timer write, ours via the console script only: the wall-clock
    timestamp of the VMM's `Guest-boot-time` log line minus the wall-clock time just before
    spawning (a cross-check of the boot point from our own log);
  * the VMM's own `Guest-boot-time` (measured from the start of the VM build, as Firecracker).
- memory, with the PIO-loop guest running (sampled every 20 ms while it runs), for all three:
  peak RSS (VmHWM) and RSS / PSS / USS from /proc/<pid>/smaps with the guest-RAM mapping (the
  anonymous mapping of the guest's memory size) left out; the max over samples is reported.
- PIO exit rate, for all three: the PIO-loop guest (`count=N` one-byte OUTs to port 0x80,
  each a VM exit) run with two counts; rate = (N2 - N1) / (t2 - t1), so start-up and
  teardown cancel out.

Usage: .venv/bin/python benchmarks/vmm_bench.py [--runs 10] [--no-seccomp] [--write]
(--write stores the markdown section in benchmarks/results/vmm.md, keeping the hand-written
text after its "### Findings" heading.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "vmm.md"
FINDINGS_MARKER = "### Findings"
MEMORY_MIB = 128
BOOT_TIME_LINE = re.compile(
    r"^(\S+) .*Guest-boot-time =\s+(\d+) us\s+(\d+) ms,\s+(\d+) CPU us\s+(\d+) CPU ms", re.M
)

sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from support.guests import build_guest, qemu_command  # noqa: E402


def vmm_base_command() -> list[str]:
    script = Path(sys.executable).with_name("vmm")
    return [str(script)] if script.exists() else [sys.executable, "-c", "import sys; from vmm.cli import main; sys.exit(main())"]


@dataclass
class Run:
    wall_us: int
    returncode: int
    stdout: str
    first_output_us: int | None = None  # process start -> first byte on stdout (COM1)
    log: str = ""
    spawn_realtime_ns: int = 0
    samples: list[dict[str, int]] = field(default_factory=list)


class PipeReader(threading.Thread):
    """Reads one of the child's pipes to EOF with raw `os.read` (no buffering between the
    child's write and the clock) and notes the monotonic time of the first byte."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.fd = pipe.fileno()
        self.data = bytearray()
        self.first_byte_ns: int | None = None

    def run(self) -> None:
        while chunk := os.read(self.fd, 65536):
            if self.first_byte_ns is None:
                self.first_byte_ns = time.monotonic_ns()
            self.data += chunk


def _smaps_sample(pid: int, guest_ram_kib: int) -> dict[str, int] | None:
    """RSS/PSS/USS in KiB of every mapping except guest RAM, plus VmHWM (whole process)."""
    try:
        smaps = Path(f"/proc/{pid}/smaps").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    totals = {"rss": 0, "pss": 0, "uss": 0, "guest_rss": 0}
    mapping: dict[str, int] = {}
    header = ""

    def flush() -> None:
        if not mapping:
            return
        anonymous = len(header.split()) < 6
        # QEMU may round its RAM block up; our VMM maps exactly the guest size.
        is_guest_ram = anonymous and guest_ram_kib <= mapping.get("Size", 0) <= guest_ram_kib + 4096
        if is_guest_ram:
            totals["guest_rss"] += mapping.get("Rss", 0)
            return
        totals["rss"] += mapping.get("Rss", 0)
        totals["pss"] += mapping.get("Pss", 0)
        totals["uss"] += mapping.get("Private_Clean", 0) + mapping.get("Private_Dirty", 0)

    for line in smaps.splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            flush()
            header, mapping = line, {}
        elif match := re.match(r"^(\w+):\s+(\d+) kB", line):
            mapping[match[1]] = int(match[2])
    flush()
    hwm = re.search(r"VmHWM:\s+(\d+) kB", status)
    totals["hwm"] = int(hwm[1]) if hwm else 0
    return totals


def run_process(command: list[str], *, sample_memory: bool = False, log_path: Path | None = None) -> Run:
    samples: list[dict[str, int]] = []
    spawn_realtime = time.time_ns()
    start = time.monotonic_ns()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = PipeReader(process.stdout), PipeReader(process.stderr)
    stdout.start()
    stderr.start()
    if sample_memory:
        stop = threading.Event()

        def sampler() -> None:
            while not stop.wait(0.02):
                sample = _smaps_sample(process.pid, MEMORY_MIB * 1024)
                if sample is not None:
                    samples.append(sample)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
    # A blocking wait: Popen.wait(timeout=...) polls with sleeps of up to 50 ms, which would
    # round the exit time up; a hung VMM is killed instead (and its status fails `check`).
    watchdog = threading.Timer(600, process.kill)
    watchdog.start()
    process.wait()
    wall_us = (time.monotonic_ns() - start) // 1000
    watchdog.cancel()
    if sample_memory:
        stop.set()
        thread.join()
    stdout.join()
    stderr.join()
    process.stdout.close()
    process.stderr.close()
    first_output_us = None if stdout.first_byte_ns is None else (stdout.first_byte_ns - start) // 1000
    log = log_path.read_text() if log_path is not None and log_path.exists() else ""
    return Run(
        wall_us, process.returncode, stdout.data.decode(errors="replace"), first_output_us,
        log + stderr.data.decode(errors="replace"), spawn_realtime, samples,
    )


class Ours:
    name = "Stockade `vmm`"

    def __init__(self, workdir: Path, *, seccomp: bool) -> None:
        self.workdir = workdir
        self.flags = ["--boot-timer"] + ([] if seccomp else ["--no-seccomp"])

    def base_command(self) -> list[str]:
        return vmm_base_command()

    def run(self, kernel: Path, cmdline: str = "", *, sample_memory: bool = False) -> Run:
        config = self.workdir / "vm.json"
        config.write_text(json.dumps({
            "boot-source": {"kernel_image_path": str(kernel), "boot_args": cmdline},
            "machine-config": {"vcpu_count": 1, "mem_size_mib": MEMORY_MIB},
        }))
        log = self.workdir / "vmm.log"
        log.unlink(missing_ok=True)
        command = [*self.base_command(), "--config-file", str(config), "--no-api", "--log-path", str(log), "--level", "Info", *self.flags]
        return run_process(command, sample_memory=sample_memory, log_path=log)


class OursViaLauncher(Ours):
    """The same VMM started the way the jail starts it: `jailer.microvm`'s two-line launcher
    (`python -IB`), without the console-script wrapper that pip generates (which imports `re`)."""

    name = "Stockade `vmm` via the jail's launcher"

    def __init__(self, workdir: Path, *, seccomp: bool) -> None:
        super().__init__(workdir, seccomp=seccomp)
        from jailer.microvm import launcher_text

        self.launcher = workdir / "vmm-launcher"
        self.launcher.write_text(launcher_text())
        self.launcher.chmod(0o755)

    def base_command(self) -> list[str]:
        return [str(self.launcher)]


class Qemu:
    name = "QEMU microvm"

    def run(self, kernel: Path, cmdline: str = "", *, sample_memory: bool = False) -> Run:
        return run_process(qemu_command(kernel, memory_mib=MEMORY_MIB, cmdline=cmdline), sample_memory=sample_memory)


def boot_timer_from_log(run: Run) -> tuple[int, int] | None:
    """(process start -> boot-timer write µs, VMM-reported Guest-boot-time µs)."""
    match = BOOT_TIME_LINE.search(run.log)
    if not match:
        return None
    stamp = match[1]
    seconds, _, fraction = stamp.partition(".")
    logged = datetime.fromisoformat(seconds).timestamp() * 1_000_000 + int((fraction + "000000")[:6])
    return int(logged - run.spawn_realtime_ns / 1000), int(match[2])


def check(run: Run, expected_status: int, what: str) -> Run:
    if run.returncode != expected_status:
        raise SystemExit(f"{what} ended with status {run.returncode}, expected {expected_status}:\n{run.stdout}\n{run.log[-2000:]}")
    return run


def stats(values: list[int]) -> str:
    ordered = sorted(values)
    p10 = ordered[max(0, len(ordered) // 10)]
    p90 = ordered[min(len(ordered) - 1, len(ordered) * 9 // 10)]
    return f"{int(statistics.median(values))} | {ordered[0]} | {p10} | {p90}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pio-counts", type=int, nargs=2, default=(20000, 220000))
    parser.add_argument("--no-seccomp", action="store_true", help="run our VMM with --no-seccomp")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()

    minimal = build_guest("minimal", "pvh")
    pioloop = build_guest("pioloop", "pvh")
    with tempfile.TemporaryDirectory(prefix="vmm-bench-") as workdir:
        ours, qemu = Ours(Path(workdir), seccomp=not args.no_seccomp), Qemu()
        via_launcher = OursViaLauncher(Path(workdir), seccomp=not args.no_seccomp)
        peers: list[Ours | Qemu] = [ours, via_launcher, qemu]
        to_boot_point: dict[str, list[int]] = {peer.name: [] for peer in peers}
        to_exit: dict[str, list[int]] = {peer.name: [] for peer in peers}
        to_boot_timer: list[int] = []
        guest_boot_time: list[int] = []
        bare_interpreter: list[int] = []
        for round_index in range(args.runs):
            for peer in peers if round_index % 2 == 0 else peers[::-1]:
                run = check(peer.run(minimal), 1, f"{peer.name} (minimal guest)")
                if run.first_output_us is None:
                    raise SystemExit(f"{peer.name} (minimal guest) printed nothing: no boot point\n{run.log[-2000:]}")
                to_boot_point[peer.name].append(run.first_output_us)
                to_exit[peer.name].append(run.wall_us)
                if peer is ours and (timing := boot_timer_from_log(run)):
                    to_boot_timer.append(timing[0])
                    guest_boot_time.append(timing[1])
            bare_interpreter.append(run_process([sys.executable, "-I", "-S", "-c", "pass"]).wall_us)

        low, high = args.pio_counts
        rates: dict[str, list[float]] = {peer.name: [] for peer in peers}
        memory: dict[str, list[dict[str, int]]] = {peer.name: [] for peer in peers}
        for round_index in range(max(2, args.runs // 4)):
            for peer in peers if round_index % 2 == 0 else peers[::-1]:
                short = check(peer.run(pioloop, f"count={low}"), 1, f"{peer.name} (pio loop)")
                long = check(peer.run(pioloop, f"count={high}", sample_memory=True), 1, f"{peer.name} (pio loop)")
                rates[peer.name].append((high - low) / ((long.wall_us - short.wall_us) / 1e6))
                memory[peer.name] += long.samples

    qemu_version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    qemu_median = statistics.median(to_boot_point[qemu.name])
    ratio = statistics.median(to_boot_point[ours.name]) / qemu_median
    launcher_ratio = statistics.median(to_boot_point[via_launcher.name]) / qemu_median
    lines = [
        "## VMM start-up, memory and exit rate (`benchmarks/vmm_bench.py`)",
        "",
        f"{args.runs} alternating runs per peer, {MEMORY_MIB} MiB guest, 1 vCPU, on {os.cpu_count()} CPUs, kernel {platform.release()}, "
        f"Python {platform.python_version()}, {qemu_version}; /dev/kvm is {'PVM (kvm_pvm)' if Path('/sys/module/kvm_pvm').exists() else 'hardware KVM'}. "
        f"Our VMM ran with `{' '.join(ours.flags)}`. QEMU: `{' '.join(qemu_command(Path('GUEST'), memory_mib=MEMORY_MIB))}`.",
        "",
        "### Start-up (smallest PVH guest: boot-timer byte, one byte to COM1, then exit port)",
        "",
        "| measure | median µs | min µs | p10 µs | p90 µs |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {peer.name}: process start -> boot point (guest's first serial byte, right after the boot-timer write) "
        f"| {stats(to_boot_point[peer.name])} |"
        for peer in peers
    ]
    lines += [f"| {peer.name}: process start -> exit (includes the VM teardown) | {stats(to_exit[peer.name])} |" for peer in peers]
    lines.append(f"| floor: `python -I -S -c pass` (whole process, not a peer) | {stats(bare_interpreter)} |")
    if to_boot_timer:
        lines.append(f"| {ours.name}: process start -> boot-timer write (log timestamp) | {stats(to_boot_timer)} |")
        lines.append(f"| {ours.name}: `Guest-boot-time` (from VM build start) | {stats(guest_boot_time)} |")
    lines += [
        "",
        f"Start-up ratio ours/QEMU (process start -> boot point, median), our VMM started as the jail starts it: "
        f"**{launcher_ratio:.2f}x** — target <= 0.5x: {'met' if launcher_ratio <= 0.5 else 'missed'}.",
        f"Through pip's `vmm` console script (its wrapper imports `re`, and `site` runs): **{ratio:.2f}x** — "
        f"{'within' if ratio <= 0.5 else 'outside'} the target.",
        "",
        f"### Memory (PIO-loop guest running, max over {sum(len(v) for v in memory.values())} samples; guest RAM mapping excluded)",
        "",
        "| peer | peak RSS (VmHWM, whole process) KiB | RSS KiB | PSS KiB | USS KiB | guest RAM resident KiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for peer in peers:
        samples = memory[peer.name]
        if samples:
            lines.append(
                f"| {peer.name} | {max(s['hwm'] for s in samples)} | {max(s['rss'] for s in samples)} | "
                f"{max(s['pss'] for s in samples)} | {max(s['uss'] for s in samples)} | {max(s['guest_rss'] for s in samples)} |"
            )
        else:
            lines.append(f"| {peer.name} | no sample (ran shorter than 20 ms) | | | | |")
    lines.append("")
    for peer, how in ((ours, "started through the console script"), (via_launcher, "started as the jail starts it")):
        uss = max((s["uss"] for s in memory[peer.name]), default=0)
        lines.append(f"USS of our VMM {how}: **{uss / 1024:.1f} MiB** — target <= 5 MiB: {'met' if uss <= 5 * 1024 else 'missed'}.")
    lines += [
        "",
        f"### PIO exit rate (`count={low}` vs `count={high}` OUTs to port 0x80)",
        "",
        "| peer | median exits/s | min | max |",
        "|---|---:|---:|---:|",
    ]
    for peer in peers:
        values = rates[peer.name]
        lines.append(f"| {peer.name} | {int(statistics.median(values))} | {int(min(values))} | {int(max(values))} |")
    rate_ratio = statistics.median(rates[ours.name]) / statistics.median(rates[qemu.name])
    lines += ["", f"Exit-rate ratio ours/QEMU (median): **{rate_ratio:.2f}x** — target >= 0.5x: {'met' if rate_ratio >= 0.5 else 'missed'}.", ""]
    section = "\n".join(lines)
    print(section)
    if args.write:
        findings = ""
        if RESULTS.exists() and FINDINGS_MARKER in RESULTS.read_text():
            findings = RESULTS.read_text()[RESULTS.read_text().index(FINDINGS_MARKER):]
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(section + ("\n" + findings if findings else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
