"""Jailed microVM benchmark (the jailed-VM issue): run on demand, as root, never in tests.

1. Start-up: wall time from launching `jailer` to the guest's boot-timer write, for our VMM
   in the full jail (pivot_root, mount/pid/ipc/uts namespaces, cgroups, the outer `jail`
   filter, per-thread filters) with the smallest test guest (`minimal`, PVH: the boot-timer
   write is its first store; 1 vCPU, 32 MiB). Median of --runs (default 20). (Until
   2026-11-26 this used the `report` guest, which prints its ~570-byte report, two VM exits
   a byte, before the boot-timer write: ~50 ms of guest time in every sample.) The boot-timer moment is
   the wall-clock timestamp of the VMM's `Guest-boot-time` log line; the start is the host's
   wall clock just before the jailer is spawned (same clock, same host).
2. Density: start N jailed VMs at once whose guests halt after their boot-timer write (a
   halted vCPU sleeps in the kernel, so N VMs really are alive together without N busy
   loops on 2 cores); require all N to be running past the boot timer at the same moment,
   then stop every one with SIGTERM and require a clean exit (status 143); double N until
   something fails or --max-vms is reached, and record where and why.

    .venv/bin/python benchmarks/jailed_vm.py [--runs 20] [--max-vms 64] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jailer.microvm import JailedMicroVm, MicroVmSpec  # noqa: E402
from rootfs_builder.guests import build_guest  # noqa: E402


def log_timestamp(line: str) -> float:
    """Seconds since the epoch of a VMM log line `2026-11-25T21:35:11.073267914 [...]`."""
    stamp = line.split(" ", 1)[0]
    whole, _, fraction = stamp.partition(".")
    parsed = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp() + float(f"0.{fraction or '0'}")


MINIMAL_EXIT_STATUS = 1  # `minimal` writes 0 to the exit port: (0 << 1) | 1


def one_start(guest: Path, base: Path, index: int) -> float:
    spec = MicroVmSpec(jail_id=f"bench-{os.getpid()}-{index}", kernel=guest, boot_args="",
                       chroot_base=base, cgroups=("cpu.shares=512",), parent_cgroup=f"stockade-bench-{os.getpid()}",
                       new_pid_ns=True)
    with JailedMicroVm(spec) as vm:
        started = time.time()
        vm.start()
        result = vm.wait(timeout=120)
    if result.returncode != MINIMAL_EXIT_STATUS or result.boot_time_line is None:
        raise RuntimeError(f"run {index} failed: status {result.returncode}\n{result.log}")
    return (log_timestamp(result.boot_time_line) - started) * 1000


def density(guest: Path, base: Path, count: int, timeout: float, parent_cgroup: str) -> tuple[bool, str]:
    """Start `count` jailed VMs whose guests halt (interrupts off, so a vCPU sleeps in the
    kernel) right after their boot-timer write; succeed when all of them are running at the
    same moment, past the boot timer, and each then stops cleanly on SIGTERM (status 143)."""
    import signal
    import threading

    vms = [
        JailedMicroVm(MicroVmSpec(jail_id=f"dens-{os.getpid()}-{count}-{index}", kernel=guest,
                                  boot_args="finish=halt", chroot_base=base,
                                  cgroups=("memory.limit_in_bytes=268435456",), parent_cgroup=parent_cgroup))
        for index in range(count)
    ]
    booted = threading.Semaphore(0)
    logs: dict[int, list[str]] = {index: [] for index in range(count)}

    def follow(index: int, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            logs[index].append(line)
            if "Guest-boot-time" in line:
                booted.release()

    try:
        for index, vm in enumerate(vms):
            vm.start()
            threading.Thread(target=follow, args=(index, vm.process.stderr), daemon=True).start()
        deadline = time.monotonic() + timeout
        for reached in range(count):
            if not booted.acquire(timeout=max(0.0, deadline - time.monotonic())):
                ended = [vm for vm in vms if vm.process.poll() is not None]
                detail = f"{vm_failure(ended[0], logs[vms.index(ended[0])])}" if ended else "timed out"
                return False, f"only {reached} of {count} reached the boot timer ({len(ended)} ended early): {detail}"
        alive = sum(1 for vm in vms if vm.process.poll() is None)
        if alive != count:
            return False, f"all {count} booted but only {alive} were still running together"
        for vm in vms:
            os.kill(vm.vmm_pid(), signal.SIGTERM)
        statuses = [vm.process.wait(timeout=120) for vm in vms]
        unclean = [status for status in statuses if status != 128 + signal.SIGTERM]
        if unclean:
            return False, f"all {count} ran together; {len(unclean)} did not stop cleanly (statuses {sorted(set(unclean))})"
        return True, f"all {count} were running together past the boot timer, then stopped cleanly on SIGTERM"
    finally:
        for vm in vms:
            vm.close()


def vm_failure(vm: JailedMicroVm, log: list[str]) -> str:
    last = log[-1].strip() if log else "(nothing logged)"
    return f"{vm.spec.jail_id}: status {vm.process.returncode}: {last}"


class MemoryCeiling:
    """A hierarchical v1 memory cgroup that every density VM is jailed under (the jailer's
    `--parent-cgroup`), so that when N VMs no longer fit, the OOM killer picks among them and
    never among the host's other processes (this supervisor included)."""

    def __init__(self, limit_bytes: int) -> None:
        self.name = f"stockade-bench-{os.getpid()}"
        self.path = Path("/sys/fs/cgroup/memory") / self.name
        self.limit = limit_bytes

    def __enter__(self) -> MemoryCeiling:
        self.path.mkdir()
        (self.path / "memory.use_hierarchy").write_text("1")
        (self.path / "memory.limit_in_bytes").write_text(str(self.limit))
        # An empty child keeps the parent alive while jailed VMs come and go (closing a VM
        # removes its parent cgroup once that is empty).
        (self.path / "keep").mkdir()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for child in sorted(self.path.iterdir(), reverse=True):
            if child.is_dir():
                child.rmdir()
        self.path.rmdir()

    def oom_kills(self) -> int:
        for line in (self.path / "memory.oom_control").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--max-vms", type=int, default=64)
    parser.add_argument("--start-vms", type=int, default=1, help="first N of the doubling")
    parser.add_argument("--memory-ceiling-gib", type=float, default=20.0,
                        help="memory cgroup limit for the density steps (the host keeps the rest)")
    parser.add_argument("--density-timeout", type=float, default=600, help="seconds for N VMs to reach the boot timer")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "jailed_vm.md")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stockade-bench-") as work:
        guest = build_guest("report", "pvh", Path(work) / "guests")  # density: finish=halt
        base = Path(work) / "jails"
        minimal = build_guest("minimal", "pvh", Path(work) / "guests")
        times = [one_start(minimal, base, index) for index in range(arguments.runs)]
        median = statistics.median(times)
        print(f"jailer start -> boot timer: median {median:.1f} ms over {len(times)} runs "
              f"(min {min(times):.1f}, max {max(times):.1f})")
        density_rows = []
        count = arguments.start_vms
        with MemoryCeiling(int(arguments.memory_ceiling_gib * (1 << 30))) as ceiling:
            while count <= arguments.max_vms:
                started = time.monotonic()
                kills_before = ceiling.oom_kills()
                ok, detail = density(guest, base, count, arguments.density_timeout, ceiling.name)
                elapsed = time.monotonic() - started
                kills = ceiling.oom_kills() - kills_before
                if kills:
                    detail += f"; the memory cgroup ({arguments.memory_ceiling_gib:g} GiB) OOM-killed {kills} process(es)"
                density_rows.append((count, ok, detail, elapsed))
                print(f"{count} VMs at once: {'ok' if ok else 'FAILED'} in {elapsed:.1f} s: {detail}")
                if not ok:
                    break
                count *= 2
    lines = [
        "## Jailed microVM (jailer start -> guest boot timer; VMs at once)",
        "",
        f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on this 2-core PVM host with "
        "`benchmarks/jailed_vm.py`: full jail (pivot_root, mount/pid/ipc/uts namespaces, a v1 cgroup, "
        "the outer `jail` allowlist, per-thread filters), 1 vCPU, 32 MiB; start-up with the `minimal` test guest "
        "(PVH, boot-timer write first), density with the `report` guest (`finish=halt`).",
        "",
        f"- jailer start -> boot-timer write: median **{median:.1f} ms** over {len(times)} runs "
        f"(min {min(times):.1f} ms, max {max(times):.1f} ms)",
        "",
        "| VMs at once | result | wall time | detail |",
        "| --- | --- | --- | --- |",
        *(f"| {count} | {'ok' if ok else 'failed'} | {elapsed:.1f} s | {detail} |"
          for count, ok, detail, elapsed in density_rows),
        "",
    ]
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text("\n".join(lines))
    print(f"written to {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
