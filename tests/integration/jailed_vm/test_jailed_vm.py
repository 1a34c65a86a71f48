"""The product as one: our `jailer` launching our `vmm` on a freestanding test guest.

Every test goes through the real command-line tools (`jailer.microvm` only builds their
argv and cleans up): a real pivot_root jail, real cgroups, the real outer filter installed
process-wide by the jailer, the VMM's own per-thread filters on top, real KVM_RUN.
Defense in depth is tested layer by layer: each seccomp layer alone must still stop a
violation, and the jail alone must still hide the host filesystem.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import jailer
from jailer.microvm import JailedMicroVm, MicroVmSpec, VMM_EXEC_NAME
from support.guests import build_guest

pytestmark = [pytest.mark.root, pytest.mark.kvm]

BAD_SYSCALL_EXIT_STATUS = 148
BOOT_TIME_LINE = re.compile(r"Guest-boot-time =\s+(\d+) us\s+(\d+) ms,\s+(\d+) CPU us\s+(\d+) CPU ms")
# Enough PIO exits to keep the VM alive for a few seconds while the host looks at it.
LONG_RUNNING_BOOT_ARGS = "count=400000"


@pytest.fixture
def chroot_base(tmp_path: Path) -> Path:
    base = tmp_path / "jails"
    base.mkdir()
    return base


@pytest.fixture
def launch(chroot_base: Path, unique_name: str) -> Iterator:
    """Make jailed VMs for one test; every one is closed (killed, unmounted, removed) after it."""
    made: list[JailedMicroVm] = []

    def make(guest: str, boot_args: str, **overrides: object) -> JailedMicroVm:
        spec = MicroVmSpec(
            jail_id=f"{unique_name}-{len(made)}",
            kernel=build_guest(guest, "pvh"),
            boot_args=boot_args,
            chroot_base=chroot_base,
            **overrides,
        )
        vm = JailedMicroVm(spec)
        made.append(vm)
        return vm

    yield make
    for vm in made:
        vm.close()
    leftovers = list(chroot_base.iterdir())
    assert leftovers == [], f"jailed VMs left {leftovers} behind"


def user_threads(vm: JailedMicroVm, pid: int) -> dict[int, str]:
    """The VMM's own threads (KVM adds kernel workers, e.g. kvm-nx-lpage-recovery, to the group)."""
    return {tid: name for tid, name in vm.thread_names(pid).items() if not name.startswith("kvm")}


def filter_stacks(report: list[dict]) -> dict[str, list[str]]:
    """Thread name -> the categories its stacked filters match, oldest first (`inspect --json`).
    KVM's own kernel workers (kvm-nx-lpage-recovery) join the thread group and inherit the
    filters of the vCPU thread that created them; they run no VMM code and are left out."""
    return {thread["name"]: [f["match"] for f in thread["filters"]] for thread in report
            if not thread["name"].startswith("kvm")}


def status_field(pid: int, tid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def test_jailed_vm_runs_the_guest_to_a_clean_reset(launch) -> None:
    vm = launch("report", "console=ttyS0 finish=reset", vcpu_count=2, cgroups=("cpu.shares=512",),
                parent_cgroup=f"stockade-e2e-{os.getpid()}")
    vm.start()
    result = vm.wait()
    assert result.returncode == 0, result.log
    assert "guest: done" in result.serial
    assert "cpus=2" in result.serial
    assert "cmdline=console=ttyS0 finish=reset" in result.serial
    assert BOOT_TIME_LINE.search(result.log), result.log
    assert "Traceback" not in result.log


def test_every_vmm_thread_runs_under_jail_then_its_own_filter(launch) -> None:
    vm = launch("pioloop", LONG_RUNNING_BOOT_ARGS, vcpu_count=2)
    vm.start()
    pid = vm.vmm_pid()
    vm.wait_for_threads(pid, ["vmm", "vcpu0", "vcpu1"])
    report = vm.inspect(pid)
    assert filter_stacks(report) == {"vmm": ["jail", "vmm"], "vcpu0": ["jail", "vcpu"], "vcpu1": ["jail", "vcpu"]}, report
    assert all(thread["no_new_privs"] and thread["seccomp"] == "filter" for thread in report)
    for tid in user_threads(vm, pid):
        assert status_field(pid, tid, "NoNewPrivs") == "1"
        assert status_field(pid, tid, "CapEff") == "0000000000000000"
        assert status_field(pid, tid, "CapBnd") == "0000000000000000"
    vm.kill()


def test_without_an_outer_policy_the_jailer_installs_baseline(launch) -> None:
    vm = launch("pioloop", LONG_RUNNING_BOOT_ARGS, outer_filter="jailer-default")
    vm.start()
    pid = vm.vmm_pid()
    vm.wait_for_threads(pid, ["vmm", "vcpu0"])
    assert filter_stacks(vm.inspect(pid)) == {"vmm": ["baseline", "vmm"], "vcpu0": ["baseline", "vcpu"]}
    vm.kill()


def test_the_vmm_sees_only_what_was_bound_into_the_jail(launch) -> None:
    vm = launch("pioloop", LONG_RUNNING_BOOT_ARGS)
    vm.start()
    pid = vm.vmm_pid()
    vm.wait_for_threads(pid, ["vmm", "vcpu0"])
    root = Path(f"/proc/{pid}/root")
    top_level = {entry.name for entry in root.iterdir()}
    # The runtime binds our packages and the venv at their host paths, so their ancestors exist
    # in the jail (a clone under /tmp shows /tmp): each such directory holds only that path.
    bound_paths = [Path(jailer.__file__).resolve().parent.parent, Path(sys.prefix)]
    ancestors = {ancestor for path in bound_paths for ancestor in path.parents if ancestor != Path("/")}
    ancestors -= {ancestor for ancestor in ancestors if any(ancestor.is_relative_to(path) for path in bound_paths)}
    for absent in ("proc", "sys", "etc", "home", "tmp", "var", "boot", "srv"):
        if Path("/", absent) not in ancestors:
            assert absent not in top_level, f"/{absent} is visible inside the jail: {sorted(top_level)}"
    for ancestor in ancestors:
        allowed = {path.relative_to(ancestor).parts[0] for path in bound_paths if path.is_relative_to(ancestor)}
        seen = {entry.name for entry in (root / ancestor.relative_to("/")).iterdir()}
        assert seen <= allowed, f"{ancestor} shows more than the paths bound under it: {sorted(seen)}"
    assert {"dev", "run", "vm", VMM_EXEC_NAME, f"{VMM_EXEC_NAME}.pid"} <= top_level
    assert sorted(entry.name for entry in (root / "dev").iterdir()) == ["kvm", "net", "urandom", "userfaultfd"]
    assert sorted(entry.name for entry in (root / "vm").iterdir()) == ["pioloop.pvh.elf", "vm.json", VMM_EXEC_NAME]
    mounts = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        mounts[fields[4]] = set(fields[5].split(","))
    assert {"ro", "nosuid", "nodev"} <= mounts["/vm"]
    for mount_point, options in mounts.items():
        if mount_point != "/":
            assert "ro" in options, f"{mount_point} is writable inside the jail"
    vm.kill()


@pytest.mark.parametrize("thread, syscall", [("vcpu", "socket"), ("vmm", "socket")])
def test_a_violation_is_reported_with_thread_and_syscall(launch, thread: str, syscall: str) -> None:
    vm = launch("violation", f"violation={thread}", test_devices=True)
    vm.start()
    result = vm.wait()
    assert result.returncode == BAD_SYSCALL_EXIT_STATUS, (result.serial, result.log)
    thread_name = "vcpu0" if thread == "vcpu" else "vmm"
    assert re.search(rf"seccomp violation: thread {thread_name} called {syscall}\b", result.log), result.log
    assert "still running after the request" not in result.serial


@pytest.mark.parametrize("thread", ["vcpu", "vmm"])
def test_the_per_thread_filters_alone_stop_a_violation(launch, thread: str) -> None:
    """Defense in depth: with the jailer's outer filter switched off, each thread's own
    filter still traps the call and ends the whole process with the report."""
    vm = launch("violation", f"violation={thread}", test_devices=True, outer_filter="none")
    vm.start()
    result = vm.wait()
    assert result.returncode == BAD_SYSCALL_EXIT_STATUS, (result.returncode, result.serial, result.log)
    assert "still running after the request" not in result.serial
    assert "seccomp violation: thread" in result.log


@pytest.mark.parametrize("thread", ["vcpu", "vmm"])
def test_the_outer_filter_alone_denies_the_call(launch, thread: str) -> None:
    """Defense in depth, the other way round: without the VMM's own filters, the outer `jail`
    allowlist (installed by the jailer before exec) still refuses socket(): it answers
    EACCES, so the call never happens, and the VMM runs on without a socket."""
    vm = launch("violation", f"violation={thread}", test_devices=True, vmm_seccomp=False)
    vm.start()
    result = vm.wait()
    thread_label = "vcpu thread" if thread == "vcpu" else "main thread"
    assert f"violation device ({thread_label}): socket() was denied: EACCES" in result.log, result.log
    assert "socket() succeeded" not in result.log


def test_without_any_filter_the_violation_device_really_opens_a_socket(launch) -> None:
    """The control for the two tests above: with both layers off, the same request succeeds,
    so a denial there can only come from the layer under test."""
    vm = launch("violation", "violation=vcpu", test_devices=True, vmm_seccomp=False, outer_filter="none")
    vm.start()
    result = vm.wait()
    assert "violation device (vcpu thread): socket() succeeded: no filter stopped it" in result.log, result.log


def test_the_jail_alone_still_holds_without_any_filter(launch) -> None:
    vm = launch("report", "finish=reset", outer_filter="none", vmm_seccomp=False)
    vm.start()
    pid = vm.vmm_pid()
    result = vm.wait()
    assert result.returncode == 0, result.log
    assert "guest: done" in result.serial
    assert result.pid == pid


def test_new_pid_namespace_and_cgroups(launch) -> None:
    parent = f"stockade-e2e-{os.getpid()}"
    vm = launch("pioloop", LONG_RUNNING_BOOT_ARGS, new_pid_ns=True, cgroups=("cpu.shares=256", "pids.max=64"),
                parent_cgroup=parent)
    vm.start()
    pid = vm.vmm_pid()
    vm.wait_for_threads(pid, ["vmm", "vcpu0"])
    assert status_field(pid, pid, "NStgid").split() == [str(pid), "1"]
    membership = Path(f"/proc/{pid}/cgroup").read_text()
    assert f"/{parent}/{vm.spec.jail_id}" in membership
    assert Path(f"/sys/fs/cgroup/cpu/{parent}/{vm.spec.jail_id}/cpu.shares").read_text().strip() == "256"
    vm.kill()


@pytest.mark.parametrize("new_pid_ns", [False, True], ids=["same-pid-ns", "new-pid-ns"])
def test_the_guest_exit_status_reaches_the_supervisor(launch, new_pid_ns: bool) -> None:
    """isa-debug-exit semantics end to end: exit_code=2 -> VMM status (2 << 1) | 1, even when the
    jailer's parent has long exited (--new-pid-ns) and the VMM is reaped by the supervisor."""
    vm = launch("report", "exit_code=2", new_pid_ns=new_pid_ns)
    vm.start()
    result = vm.wait()
    assert result.returncode == 5, (result.returncode, result.log)
    assert "guest: done" in result.serial


def cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_an_idle_jailed_vm_stops_cleanly_on_sigterm_through_its_pid_file(launch) -> None:
    """The operator's way to stop a jailed VM (Firecracker's kill-by-pid-file): the guest halts
    after its boot-timer write, the VMM then sleeps (its CPU time stops growing), and SIGTERM
    to the pid-file pid ends it cleanly with status 128 + SIGTERM."""
    import signal
    import time

    vm = launch("report", "finish=halt", new_pid_ns=True)
    vm.start()
    pid = vm.vmm_pid()
    vm.wait_for_threads(pid, ["vmm", "vcpu0"])
    deadline = time.monotonic() + 60
    before = cpu_ticks(pid)
    while True:
        time.sleep(0.5)
        after = cpu_ticks(pid)
        if after == before:
            break
        assert time.monotonic() < deadline, "the VMM never went idle after the guest halted"
        before = after
    os.kill(pid, signal.SIGTERM)
    result = vm.wait()
    assert result.returncode == 128 + signal.SIGTERM, result.log
    assert "guest: done" in result.serial
    assert BOOT_TIME_LINE.search(result.log)
