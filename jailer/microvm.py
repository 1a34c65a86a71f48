"""Launch Stockade's own VMM inside a jail and watch it: the glue shared by the main job
(`jailer.demo`), the end-to-end tests and the jailed-VM benchmark.

Everything here drives the real command-line tools — `jailer` around `vmm`, and
`jailer-policy inspect` — exactly as an operator would, so what it shows is what they get:

* the guest image and the VM configuration are staged in a private directory that is bound
  read-only into the jail at ``/vm`` (the VMM never sees the host filesystem);
* the exec file is a four-line launcher whose shebang runs the project's interpreter with
  ``-I -B -S`` (isolated, never writing bytecode: the runtime is bound read-only and the
  outer allowlist has no business creating files; no `site`: it names the project root
  itself), and ``--python-runtime`` binds exactly what that interpreter needs;
* the outer filter is the `jail` category of the shipped policy, installed process-wide by
  the jailer right before exec; each VMM thread then stacks its own category on top.

Clean-up is part of the contract: `JailedMicroVm.close` kills the VMM it started (found
through the pid file, never by name), removes the jail directory (only once no mount is left
under it), the staging directory and the cgroup directories named after the jail id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

VMM_EXEC_NAME = "vmm"
JAIL_STAGING_PATH = "/vm"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def venv_tool(name: str) -> Path:
    """A console script of the running environment (`jailer`, `jailer-policy`, `vmm`)."""
    return Path(sys.executable).with_name(name)


def shipped_vmm_policy() -> Path:
    from jailer.policies import shipped_policy_path

    return shipped_policy_path("vmm")


@dataclass(frozen=True)
class MicroVmSpec:
    """What to launch and how to jail it. Defaults give the full stack: jail, the outer
    `jail` allowlist and the VMM's per-thread filters."""

    jail_id: str
    kernel: Path
    initrd: Path | None = None
    boot_args: str = "console=ttyS0"
    vcpu_count: int = 1
    mem_size_mib: int = 32
    uid: int = 10000
    gid: int = 10000
    chroot_base: Path = Path("/srv/jailer")
    # "shipped": the `outer_category` of the shipped vmm policy; "jailer-default": no flag, so
    # the jailer installs its `baseline`; "none": --no-seccomp; anything else: a policy path.
    outer_filter: str = "shipped"
    outer_category: str = "jail"
    vmm_seccomp: bool = True
    boot_timer: bool = True
    test_devices: bool = False
    new_pid_ns: bool = False
    cgroups: tuple[str, ...] = ()
    parent_cgroup: str | None = None
    extra_jailer_args: tuple[str, ...] = ()

    @property
    def jail_root(self) -> Path:
        return self.chroot_base / VMM_EXEC_NAME / self.jail_id / "root"


@dataclass
class MicroVmResult:
    returncode: int
    serial: str
    log: str
    pid: int | None

    @property
    def boot_time_line(self) -> str | None:
        return next((line for line in self.log.splitlines() if "Guest-boot-time" in line), None)


def vm_config(spec: MicroVmSpec) -> dict:
    """The Firecracker-format configuration as the VMM sees it from inside the jail."""
    boot_source = {"kernel_image_path": f"{JAIL_STAGING_PATH}/{spec.kernel.name}", "boot_args": spec.boot_args}
    if spec.initrd is not None:
        boot_source["initrd_path"] = f"{JAIL_STAGING_PATH}/{spec.initrd.name}"
    return {
        "boot-source": boot_source,
        "machine-config": {"vcpu_count": spec.vcpu_count, "mem_size_mib": spec.mem_size_mib},
    }


def launcher_text() -> str:
    """The exec file: the project's interpreter, isolated, without bytecode writes and without
    `site` (-S): the VMM needs only the standard library and the project root, which the
    launcher names itself, so it skips reading site-packages' `.pth` files and importing
    the hooks they install (~5 ms and ~0.3 MiB of every VMM's start-up)."""
    import vmm

    project_root = os.path.dirname(os.path.dirname(os.path.abspath(vmm.__file__)))
    return (
        f"#!{sys.executable} -IBS\nimport sys\nsys.path.append({project_root!r})\n"
        "from vmm.cli import main\nsys.exit(main())\n"
    )


def jailer_argv(spec: MicroVmSpec, staging: Path) -> list[str]:
    argv = [
        str(venv_tool("jailer")),
        "--id", spec.jail_id,
        "--exec-file", str(staging / VMM_EXEC_NAME),
        "--uid", str(spec.uid),
        "--gid", str(spec.gid),
        "--chroot-base-dir", str(spec.chroot_base),
        "--python-runtime",
        "--ro-bind", f"{staging}:{JAIL_STAGING_PATH}",
    ]
    if spec.new_pid_ns:
        argv.append("--new-pid-ns")
    for value in spec.cgroups:
        argv += ["--cgroup", value]
    if spec.parent_cgroup is not None:
        argv += ["--parent-cgroup", spec.parent_cgroup]
    if spec.outer_filter == "none":
        argv.append("--no-seccomp")
    elif spec.outer_filter != "jailer-default":
        policy = shipped_vmm_policy() if spec.outer_filter == "shipped" else Path(spec.outer_filter)
        argv += ["--seccomp-policy", str(policy), "--seccomp-category", spec.outer_category]
    argv += list(spec.extra_jailer_args)
    argv += ["--", "--config-file", f"{JAIL_STAGING_PATH}/vm.json", "--no-api"]
    if spec.boot_timer:
        argv.append("--boot-timer")
    if not spec.vmm_seccomp:
        argv.append("--no-seccomp")
    if spec.test_devices:
        argv.append("--test-devices")
    return argv


PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper(enabled: bool) -> None:
    from jailer.native import Library, get_errno

    if Library(None).prctl(PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) != 0:
        raise OSError(get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this mount namespace."""
    prefix = str(path)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            found.append(mount_point)
    return found


@dataclass
class JailedMicroVm:
    """One jailed VMM process: start it, look at it, wait for it, clean up after it."""

    spec: MicroVmSpec
    staging: Path = field(init=False)
    process: subprocess.Popen | None = field(default=None, init=False)
    started_at: float = field(default=0.0, init=False)
    cleanup_notes: list[str] = field(default_factory=list, init=False)
    _reaped: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.spec.chroot_base.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".stage-{self.spec.jail_id}-", dir=self.spec.chroot_base))
        self.staging.chmod(0o755)
        for image in (self.spec.kernel, self.spec.initrd):
            if image is not None:
                shutil.copyfile(image, self.staging / image.name)
                (self.staging / image.name).chmod(0o444)
        (self.staging / "vm.json").write_text(json.dumps(vm_config(self.spec), indent=2))
        (self.staging / "vm.json").chmod(0o444)
        launcher = self.staging / VMM_EXEC_NAME
        launcher.write_text(launcher_text())
        launcher.chmod(0o755)

    def __enter__(self) -> JailedMicroVm:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def argv(self) -> list[str]:
        return jailer_argv(self.spec, self.staging)

    def start(self) -> None:
        if self.spec.new_pid_ns:
            # With --new-pid-ns the jailer's parent exits once the VMM runs; as a subreaper we
            # inherit the VMM and can read its real exit status (and never leave a zombie).
            set_child_subreaper(True)
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    @property
    def pid_file(self) -> Path:
        return self.spec.jail_root / f"{VMM_EXEC_NAME}.pid"

    def vmm_pid(self, timeout: float = 30.0) -> int:
        """The VMM's pid as the jailer recorded it (in every mode, as Firecracker's does)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                text = self.pid_file.read_text()
            except FileNotFoundError:
                text = ""
            if text.strip():
                return int(text)
            # The jailer writes the pid file before it execs (or, with --new-pid-ns, before its
            # parent exits): once it is gone without one, there will never be one.
            if self.process is not None and self.process.poll() is not None and not self.pid_file.exists():
                raise RuntimeError(f"the jailer exited ({self.process.returncode}) before writing {self.pid_file}")
            time.sleep(0.01)
        raise TimeoutError(f"no pid file at {self.pid_file} after {timeout} s")

    def thread_names(self, pid: int) -> dict[int, str]:
        names = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                names[int(task.name)] = (task / "comm").read_text().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue
        return names

    def wait_for_threads(self, pid: int, expected: Sequence[str], timeout: float = 30.0) -> dict[int, str]:
        """Wait until threads with all the expected names exist (the VMM names each as it starts)."""
        deadline = time.monotonic() + timeout
        names: dict[int, str] = {}
        while time.monotonic() < deadline:
            try:
                names = self.thread_names(pid)
            except FileNotFoundError:
                raise RuntimeError(f"VMM {pid} exited while waiting for threads {list(expected)}") from None
            if set(expected) <= set(names.values()):
                return names
            time.sleep(0.01)
        raise TimeoutError(f"threads {list(expected)} not seen in {timeout} s (have {sorted(names.values())})")

    def inspect(self, pid: int, policies: Sequence[Path] = ()) -> dict:
        """`jailer-policy inspect PID --json`: every thread's stacked filters, matched against
        the shipped policies (or the given ones)."""
        command = [str(venv_tool("jailer-policy")), "inspect", str(pid), "--json"]
        for policy in policies:
            command += ["--policy", str(policy)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"jailer-policy inspect failed ({result.returncode}): {result.stderr.strip()}")
        return json.loads(result.stdout)

    def wait(self, timeout: float = 120.0) -> MicroVmResult:
        """Wait for the VMM to end; the status is the VMM's own (also under --new-pid-ns)."""
        assert self.process is not None, "start() first"
        try:
            pid: int | None = self.vmm_pid(timeout)
        except RuntimeError:
            pid = None  # the jailer failed before the hand-off: its own status and stderr tell why
        try:
            serial, log = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            serial, log = self.process.communicate()
            raise TimeoutError(f"the jailed VM {self.spec.jail_id} did not end in {timeout} s:\n{serial}\n{log}")
        returncode = self.process.returncode
        if self.spec.new_pid_ns and pid is not None:
            returncode = self._reap(pid, timeout)
        return MicroVmResult(returncode, serial, log, pid)

    def _reap(self, pid: int, timeout: float) -> int:
        """The exit status of the orphaned VMM, which the subreaper setting made our child."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                raise RuntimeError(f"VMM {pid} is not a child of this supervisor; its status is unknown") from None
            if reaped == pid:
                self._reaped = True
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                raise TimeoutError(f"VMM {pid} did not end in {timeout} s")
            time.sleep(0.005)

    def kill(self) -> None:
        """Kill the VMM this object started: the jailer's child (same pid without
        --new-pid-ns) and the pid-file process, which is ours because the jail id is ours."""
        pids = set()
        if self.process is not None and self.process.poll() is None:
            pids.add(self.process.pid)
        try:
            pids.add(int(self.pid_file.read_text()))
        except (FileNotFoundError, ValueError):
            pass
        for pid in pids:
            if not is_running(pid):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                self.cleanup_notes.append(f"killed VMM process {pid}")
            except ProcessLookupError:
                pass

    def _wait_gone(self, pid: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while is_running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            pid = None
        if self.process is not None:
            if self.process.poll() is None:
                self.kill()
            try:
                self.process.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass
        if pid is not None:
            if is_running(pid):
                self.kill()
            if self.spec.new_pid_ns and not self._reaped:
                try:
                    self._reap(pid, 10.0)
                except (RuntimeError, TimeoutError):
                    pass
            self._wait_gone(pid)
        if self.spec.new_pid_ns:
            set_child_subreaper(False)
        jail_dir = self.spec.jail_root.parent
        if jail_dir.exists():
            leftover = mounts_under(jail_dir)
            if leftover:
                raise RuntimeError(f"refusing to remove {jail_dir}: still mounted at {leftover}")
            shutil.rmtree(jail_dir)
            self.cleanup_notes.append(f"removed jail directory {jail_dir}")
            exec_dir = jail_dir.parent
            if exec_dir.exists() and not any(exec_dir.iterdir()):
                exec_dir.rmdir()
        if self.staging.exists():
            shutil.rmtree(self.staging)
            self.cleanup_notes.append(f"removed staging directory {self.staging}")
        for cgroup in self.cgroup_dirs():
            if cgroup.exists():
                try:
                    cgroup.rmdir()
                except OSError:
                    if cgroup.name != self.spec.jail_id:
                        continue  # a parent another jail still uses
                    raise
                self.cleanup_notes.append(f"removed cgroup {cgroup}")

    def cgroup_dirs(self) -> list[Path]:
        """The cgroups the jailer made for this jail, deepest first: `<hierarchy>/<parent>/<id>`,
        then the components of the parent when the caller chose a parent of its own (the
        default parent, the exec file name, is shared by every jail and left alone)."""
        parent = Path(self.spec.parent_cgroup or VMM_EXEC_NAME)
        found = []
        for hierarchy in CGROUP_ROOT.iterdir():
            candidate = hierarchy / parent / self.spec.jail_id
            if candidate.is_dir():
                found.append(candidate)
                if self.spec.parent_cgroup is not None:
                    found.extend(hierarchy / ancestor for ancestor in [parent, *parent.parents][:-1])
        return found
