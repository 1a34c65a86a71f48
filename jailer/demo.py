"""The main job: launch one jailed microVM and say exactly what happened.

It builds what the VM needs (on a PVM host, whose /dev/kvm cannot run stock Linux kernels,
the freestanding `report` test guest; on hardware KVM, a Debian kernel and initramfs from
rootfs-builder), launches our `vmm` through our `jailer` with the full stack (jail, the outer
`jail` allowlist, per-thread filters), looks at the running VMM from the host (namespaces,
cgroups, `jailer-policy inspect`), waits for the guest to shut down, cleans up, and prints a
summary. Nothing is simulated: every line comes from the real processes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

NAMESPACES = ("mnt", "pid", "ipc", "uts", "net", "user", "cgroup")
DEMO_UID = 10042
DEMO_GID = 10042
DEMO_CGROUPS = ("cpu.shares=512", "pids.max=64")
# The report guest spins this many PIO exits before its report, so the host can look at
# the running VMM (a second or so under PVM).
HOLD_EXITS = 20000


def is_pvm_host() -> bool:
    return Path("/sys/module/kvm_pvm").exists()


def section(title: str) -> None:
    print(f"\n== {title}")


def field(name: str, value: object) -> None:
    print(f"  {name:<12} {value}")


def namespace_summary(pid: int) -> str:
    """Which namespaces the VMM does not share with this (host) process."""
    own, shared = [], []
    for name in NAMESPACES:
        try:
            mine = os.readlink(f"/proc/self/ns/{name}")
            theirs = os.readlink(f"/proc/{pid}/ns/{name}")
        except OSError:
            continue
        (shared if mine == theirs else own).append(name)
    return f"new: {' '.join(own) or 'none'}; shared with the host: {' '.join(shared) or 'none'}"


def status_fields(pid: int, names: tuple[str, ...]) -> dict[str, str]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in names:
            values[key] = value.strip()
    return values


def build_test_guest(work: Path) -> tuple[Path, str]:
    from rootfs_builder.guests import build_guest

    image = build_guest("report", "pvh", work)
    return image, f"console=ttyS0 hold={HOLD_EXITS} finish=reset"


def build_linux_guest(work: Path) -> tuple[Path, Path, str]:
    """A Debian cloud kernel and a busybox initramfs whose /init loads the virtio modules,
    writes the boot-timer byte, says hello and reboots (an i8042 reset with reboot=k: the
    hardware-reduced ACPI machine has no power-off)."""
    import json

    from rootfs_builder.bundle import build_all

    out = work / "artifacts"
    build_all(out, command="echo hello from the jailed guest; uname -a; reboot -f")
    artifacts = json.loads((out / "manifest.json").read_text())["artifacts"]
    return out / artifacts["vmlinuz"]["path"], out / artifacts["initramfs"]["path"], "console=ttyS0 reboot=k panic=1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stockade-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--chroot-base-dir", type=Path, default=Path("/srv/jailer"))
    parser.add_argument("--vcpus", type=int, default=2)
    arguments = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("stockade demo: must run as root (namespaces, cgroups, device nodes)", file=sys.stderr)
        return 1

    from jailer.microvm import JailedMicroVm, MicroVmSpec

    print("Stockade demo: one jailed microVM, end to end")
    pvm = is_pvm_host()
    with tempfile.TemporaryDirectory(prefix="stockade-demo-") as work_dir:
        work = Path(work_dir)
        if pvm:
            field("host", "/dev/kvm is PVM (kvm_pvm): stock Linux kernels cannot run here, so the demo "
                  "boots the built-in freestanding test guest")
            kernel, boot_args = build_test_guest(work)
            initrd = None
        else:
            field("host", "/dev/kvm is hardware KVM: booting a Debian kernel + busybox initramfs")
            kernel, initrd, boot_args = build_linux_guest(work)
        field("guest", f"{kernel.name} ({kernel.stat().st_size} bytes), cmdline {boot_args!r}")

        spec = MicroVmSpec(
            jail_id=f"demo-{os.getpid()}-{int(time.time())}",
            kernel=kernel,
            initrd=initrd,
            boot_args=boot_args,
            vcpu_count=arguments.vcpus,
            mem_size_mib=64 if pvm else 256,
            uid=DEMO_UID,
            gid=DEMO_GID,
            chroot_base=arguments.chroot_base_dir,
            cgroups=DEMO_CGROUPS,
            parent_cgroup="stockade-demo",
            new_pid_ns=True,
        )
        vm = JailedMicroVm(spec)
        try:
            return run(vm)
        finally:
            vm.close()
            section("Clean-up")
            for note in vm.cleanup_notes:
                field("done", note)
            if not vm.cleanup_notes:
                field("done", "nothing was left to remove")


def run(vm) -> int:
    started = time.monotonic()
    vm.start()
    pid = vm.vmm_pid()
    expected_threads = ["vmm"] + [f"vcpu{index}" for index in range(vm.spec.vcpu_count)]
    section("Jail")
    field("command", " ".join(vm.argv()))
    try:
        vm.wait_for_threads(pid, expected_threads, timeout=30)
        status = status_fields(pid, ("Uid", "Gid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "NStgid"))
        field("root", f"{vm.spec.jail_root} (pivot_root; the VMM sees only what was bound in)")
        field("process", f"pid {pid} on the host, {status.get('NStgid', '?').split()[-1]} in its pid namespace")
        field("ids", f"uid {status['Uid'].split()[0]}, gid {status['Gid'].split()[0]}; CapEff {status['CapEff']}, "
              f"CapBnd {status['CapBnd']}, NoNewPrivs {status['NoNewPrivs']}")
        field("namespaces", namespace_summary(pid))
        cgroups = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
        ours = sorted({f"{controllers or 'unified'}:{path}" for _, controllers, path in cgroups if vm.spec.jail_id in path})
        field("cgroups", ", ".join(ours) or "none")
        field("limits", ", ".join(vm.spec.cgroups))
        section(f"Seccomp filters in force (jailer-policy inspect {pid})")
        for thread in vm.inspect(pid):
            matches = [entry["match"] or "(no match)" for entry in thread["filters"]]
            note = "  (KVM's kernel worker: inherits its vCPU's filters)" if thread["name"].startswith("kvm") else ""
            field(thread["name"], f"{len(matches)} filters: {', '.join(matches)}{note}")
    except Exception as error:  # the VM may end first; the summary still reports what happened
        field("note", f"could not look at the running VMM: {error}")
    result = vm.wait(timeout=300)
    elapsed = time.monotonic() - started
    section("Guest output (serial console)")
    for line in result.serial.splitlines():
        print(f"  | {line}")
    section("Boot and exit")
    boot = result.boot_time_line
    field("boot timer", boot.split("] ", 1)[-1] if boot else "no boot-timer write was logged")
    match = re.search(r"exit status (\d+)|i8042|reset", result.log)
    field("VMM exit", f"status {result.returncode}" + (" (clean shutdown through the guest's i8042 reset)"
                                                        if result.returncode == 0 else ""))
    if match is None and result.log.strip():
        field("VMM log", result.log.strip().splitlines()[-1])
    field("wall time", f"{elapsed:.2f} s from jailer start to VMM exit")
    return 0 if result.returncode == 0 and boot else 1


if __name__ == "__main__":
    sys.exit(main())
