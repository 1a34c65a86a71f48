"""The escape-technique catalogue and the harness that runs the escape probe inside a real jail.

Each technique is attempted by `tests/security/escape_probe.c` (one per jailer run) and judged
here: the probe's JSON report becomes a *result token* (an errno name such as `EPERM`, a signal
name such as `SIGSYS`, `contained` when every call succeeded but gained nothing, `escaped`, or a
harness verdict such as `victim-alive`), and the catalogue maps, per mode, every token that
counts as stopped to the layer that stops it. Attribution is observed, not declared: the same
technique runs under the jailer's defaults and under `--no-seccomp`, so where the outer filter
is what stops it, the two modes give different tokens (EPERM vs ENOSYS, EPERM vs `escaped`, ...),
and the token seen decides the "stopped by" column. A token that is not in the map fails the
test: either a technique got through, or a layer stopped it that nobody documented.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import termios
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import PROJECT_ROOT, compile_c

PROBE_SOURCE = PROJECT_ROOT / "tests" / "security" / "escape_probe.c"
PROBE_NAME = "escape_probe"
JAIL_UID = 40100
VICTIM_UID = 40101
NEIGHBOUR_UID = 40102
SECRET_VARIABLE = "STOCKADE_ESCAPE_SECRET"
TECHNIQUE_TIMEOUT = 10.0
FSIZE_LIMIT = 1 << 20
PIDS_LIMIT = 32
MEMORY_LIMIT = 64 << 20
NOFILE_DEFAULT = 2048
CGROUP_ROOT = Path("/sys/fs/cgroup")

DEFAULT = "default"
NO_SECCOMP = "no-seccomp"
MODES = (DEFAULT, NO_SECCOMP)

# Who stops what: the labels of the summary's "stopped by" column.
SECCOMP = "seccomp (baseline)"
SECCOMP_AND_CAPS = "seccomp + capability drop"
CAPS = "capability drop"
PIVOT = "pivot_root (no host tree)"
NO_PROC = "no /proc or /sys in the jail"
NO_PROC_MOUNT = "mount ns without a visible proc (mnt_too_revealing)"
CLOSED_FDS = "fds >= 3 closed"
EMPTY_ENV = "empty environment"
OTHER_UID = "uid drop (host process has another uid)"
PTRACE_CHECK = "uid drop + no CAP_SYS_PTRACE"
NO_DEVICE = "no device node in the jail"
NOTHING = "nothing (only seccomp stops it)"


@dataclass(frozen=True)
class Technique:
    """One escape technique: what the probe attempts, what the harness sets up, who stops it.

    `expected[mode]` maps every acceptable result token to the layer that produces it; a key
    `ERRNO@prefix` only matches when the failing step starts with `prefix`.
    Maps describe this kind of host (Debian 12, kernel 6.18 without modules, kexec, x32 or
    iopl/ioperm): where a kernel feature is compiled out, the `--no-seccomp` run shows ENOSYS,
    which is what proves the defaults' EPERM comes from seccomp.
    `needs`: victim, marker, fd-dir, fd-file, secret, pty, netns, neighbour, suid, pids, memory,
    fsize, replant (the harness re-runs the jailer after the probe), jail-paths.
    """

    name: str
    expected: Mapping[str, Mapping[str, str]]
    needs: frozenset[str] = frozenset()
    ours_only: bool = False
    known_hole: Mapping[str, str] = field(default_factory=dict)


def _t(name: str, default: Mapping[str, str], no_seccomp: Mapping[str, str] | None = None,
       needs: str = "", ours_only: bool = False, known_hole: Mapping[str, str] | None = None) -> Technique:
    return Technique(
        name=name,
        expected={DEFAULT: default, NO_SECCOMP: default if no_seccomp is None else no_seccomp},
        needs=frozenset(needs.split()),
        ours_only=ours_only,
        known_hole=known_hole or {},
    )


# A finding that only seccomp closes by default: Firecracker's jailer makes /dev/userfaultfd too (for
# snapshot restore), and the device hands out kernel-fault-capable userfaultfds that the host's sysctl
# denies to the syscall. The default `baseline` filter refuses USERFAULTFD_IOC_NEW without
# UFFD_USER_MODE_ONLY; without seccomp only the jailer's --no-userfaultfd closes it.
USERFAULTFD_HOLE = (
    "/dev/userfaultfd is in every jail, owned by the jail's uid: USERFAULTFD_IOC_NEW yields a userfaultfd "
    "that handles kernel faults (an exploit race-window primitive), bypassing vm.unprivileged_userfaultfd=0"
)

_MOUNT_FAMILY = ({"EPERM": SECCOMP_AND_CAPS}, {"EPERM": CAPS})
_SECCOMP_ONLY = ({"EPERM": SECCOMP}, {"escaped": NOTHING})
_PRIVILEGED = ({"EPERM": CAPS}, None)

TECHNIQUES: tuple[Technique, ...] = (
    # chroot escapes and the host tree
    _t("chroot_chdir_dotdot", {"EPERM": CAPS}, needs="marker"),
    _t("userns_chroot_escape", {"EPERM@unshare": SECCOMP}, {"contained": PIVOT}, needs="marker"),
    _t("fchdir_inherited_fd", {"EBADF": CLOSED_FDS}, needs="marker fd-dir"),
    _t("inherited_fd_read", {"EBADF": CLOSED_FDS}, needs="fd-file"),
    _t("inherited_fd_scan", {"EBADF": CLOSED_FDS}, needs="fd-file"),
    _t("host_environment", {"contained": EMPTY_ENV}, needs="secret"),
    _t("proc_pid_root", {"EPERM": f"{SECCOMP_AND_CAPS}; {NO_PROC}"}, {"EPERM": f"{CAPS}; {NO_PROC}"},
       needs="victim marker"),
    _t("proc_pid_cwd", {"EPERM": f"{SECCOMP_AND_CAPS}; {NO_PROC}"}, {"EPERM": f"{CAPS}; {NO_PROC}"},
       needs="victim marker"),
    _t("userns_mount_proc", {"EPERM@unshare": SECCOMP}, {"EPERM@mount": NO_PROC_MOUNT}),
    _t("proc_sys_write", {"ENOENT": NO_PROC}),
    _t("sys_write", {"ENOENT": NO_PROC}),
    _t("mount_sysfs", *_MOUNT_FAMILY),
    _t("symlink_host_path", {"ENOENT": PIVOT}, needs="marker"),
    _t("symlink_dotdot", {"ENOENT": PIVOT}, needs="marker"),
    _t("hardlink_root_file", {"EPERM": "fs.protected_hardlinks (root-owned pid file)"}, needs="jail-paths"),
    _t("plant_exec_symlink", {"marker-intact": "jailer opens the exec copy with O_NOFOLLOW"},
       needs="marker jail-paths replant"),
    _t("plant_folder_symlinks", {"marker-intact": "jailer refuses jail folders that are not directories"},
       needs="marker replant"),
    _t("other_jail_dir", {"ENOENT": PIVOT}, needs="neighbour"),
    _t("other_jail_kvm", {"ENOENT": PIVOT}, needs="neighbour"),
    _t("open_dev_mem", {"ENOENT": NO_DEVICE}),
    # the mount family
    _t("mount_tmpfs", *_MOUNT_FAMILY),
    _t("mount_bind", *_MOUNT_FAMILY),
    _t("umount2_root", *_MOUNT_FAMILY),
    _t("pivot_root", *_MOUNT_FAMILY),
    _t("open_tree", *_MOUNT_FAMILY),
    _t("move_mount", *_MOUNT_FAMILY),
    _t("fsopen", *_MOUNT_FAMILY),
    # namespaces
    _t("unshare_newuser", *_SECCOMP_ONLY),
    _t("clone_newuser", *_SECCOMP_ONLY),
    _t("clone3_newuser", {"ENOSYS": SECCOMP}, {"escaped": NOTHING}),
    _t("unshare_newns", *_MOUNT_FAMILY),
    _t("unshare_newnet", *_MOUNT_FAMILY),
    _t("setns_host", {"EPERM": SECCOMP_AND_CAPS}, {"EPERM": CAPS}, needs="victim"),
    # other processes
    _t("ptrace_attach", {"EPERM": f"seccomp + {PTRACE_CHECK}"}, {"EPERM": PTRACE_CHECK}, needs="victim"),
    _t("process_vm_writev", {"EPERM": f"seccomp + {PTRACE_CHECK}"}, {"EPERM": PTRACE_CHECK}, needs="victim"),
    _t("process_vm_readv", {"EPERM": f"seccomp + {PTRACE_CHECK}"}, {"EPERM": PTRACE_CHECK}, needs="victim"),
    _t("pidfd_getfd", {"EPERM": PTRACE_CHECK}, needs="victim"),
    _t("kill_host_pid", {"EPERM": OTHER_UID}, needs="victim"),
    _t("kill_all", {"victim-alive": OTHER_UID}, needs="victim"),
    # resource limits
    _t("fork_bomb", {"EAGAIN": f"cgroup pids.max={PIDS_LIMIT}"}, needs="pids"),
    _t("memory_hog", {"SIGKILL": f"cgroup memory limit {MEMORY_LIMIT >> 20} MiB (OOM kill)"}, needs="memory"),
    _t("file_size", {"SIGXFSZ": f"RLIMIT_FSIZE {FSIZE_LIMIT}"}, needs="fsize"),
    _t("fd_exhaustion", {"EMFILE": f"RLIMIT_NOFILE {NOFILE_DEFAULT}"}),
    _t("raise_rlimit", *_PRIVILEGED),
    # exec
    _t("execve_host_binary", {"ENOENT": PIVOT}),
    _t("execve_setuid_binary", {"contained": "nosuid bind + no_new_privs"}, needs="suid", ours_only=True),
    _t("execve_regain_caps", {"contained": "capability drop (empty bounding set, locked securebits)"},
       needs="jail-paths"),
    # privileges
    _t("setuid_root", *_PRIVILEGED),
    _t("setgid_root", *_PRIVILEGED),
    _t("setgroups_root", *_PRIVILEGED),
    _t("capset_all", *_PRIVILEGED),
    _t("prctl_securebits", {"EPERM": "locked securebits + capability drop"}),
    _t("prctl_ambient_raise", {"EPERM": "capability drop (NO_CAP_AMBIENT_RAISE)"}),
    _t("chown_root", *_PRIVILEGED),
    _t("mknod_block", *_PRIVILEGED),
    _t("mknod_mem", *_PRIVILEGED),
    _t("open_by_handle_at", {"EPERM": SECCOMP_AND_CAPS}, {"EPERM": CAPS}),
    _t("sethostname", *_PRIVILEGED),
    _t("clock_settime", *_PRIVILEGED),
    _t("reboot", {"EPERM": SECCOMP_AND_CAPS}, {"EPERM": CAPS}),
    _t("swapon", {"EPERM": SECCOMP_AND_CAPS}, {"EPERM": CAPS}),
    _t("acct", {"EPERM": SECCOMP_AND_CAPS}, {"EPERM": CAPS}),
    # kernel attack surface
    _t("add_key", *_SECCOMP_ONLY),
    _t("keyctl_join", *_SECCOMP_ONLY),
    _t("bpf_map_create", {"EPERM": "seccomp + kernel.unprivileged_bpf_disabled"},
       {"EPERM": "kernel.unprivileged_bpf_disabled"}),
    _t("bpf_prog_load", {"EPERM": "seccomp + kernel.unprivileged_bpf_disabled"},
       {"EPERM": "kernel.unprivileged_bpf_disabled"}),
    _t("perf_event_open", {"EPERM": SECCOMP}, {"EACCES": "kernel.perf_event_paranoid"}),
    _t("io_uring_setup", {"EPERM": SECCOMP}, {"escaped": NOTHING}),
    _t("userfaultfd", {"EPERM": "vm.unprivileged_userfaultfd=0 + no CAP_SYS_PTRACE"}),
    _t("dev_userfaultfd", {"EACCES": NO_DEVICE, "ENOENT": NO_DEVICE, "EPERM": SECCOMP},
       {"EACCES": NO_DEVICE, "ENOENT": NO_DEVICE}, known_hole={NO_SECCOMP: USERFAULTFD_HOLE}),
    _t("kexec_load", {"EPERM": SECCOMP}, {"ENOSYS": "kernel (no CONFIG_KEXEC)"}),
    _t("init_module", {"EPERM": SECCOMP}, {"ENOSYS": "kernel (no CONFIG_MODULES)"}),
    _t("finit_module", {"EPERM": SECCOMP}, {"ENOSYS": "kernel (no CONFIG_MODULES)"}),
    _t("iopl", {"EPERM": SECCOMP}, {"ENOSYS": "kernel (no CONFIG_X86_IOPL_IOPERM)"}),
    _t("ioperm", {"EPERM": SECCOMP}, {"ENOSYS": "kernel (no CONFIG_X86_IOPL_IOPERM)"}),
    _t("tiocsti", {"EPERM": "new session (the terminal is not the jail's controlling tty) or seccomp",
                   "EIO": "dev.tty.legacy_tiocsti=0"},
       {"EPERM": "new session (the terminal is not the jail's controlling tty)", "EIO": "dev.tty.legacy_tiocsti=0"},
       needs="pty"),
    _t("personality_read_implies_exec", *_SECCOMP_ONLY),
    _t("x32_syscall", {"SIGSYS": "seccomp (x32 killed)", "ENOSYS": "kernel (no x32 ABI)"},
       {"ENOSYS": "kernel (no x32 ABI)"}),
    _t("int80_unshare", {"SIGSYS": "seccomp (foreign arch killed)", "EPERM": SECCOMP,
                         "SIGSEGV": "kernel (no ia32 emulation)"},
       {"escaped": NOTHING, "SIGSEGV": "kernel (no ia32 emulation)"}),
    _t("int80_setuid", {"SIGSYS": "seccomp (foreign arch killed)", "EPERM": CAPS,
                        "SIGSEGV": "kernel (no ia32 emulation)"},
       {"EPERM": CAPS, "SIGSEGV": "kernel (no ia32 emulation)"}),
    _t("int80_mount", {"SIGSYS": "seccomp (foreign arch killed)", "EPERM": SECCOMP_AND_CAPS,
                       "SIGSEGV": "kernel (no ia32 emulation)"},
       {"EPERM": CAPS, "SIGSEGV": "kernel (no ia32 emulation)"}),
    # network
    _t("net_egress_tcp", {"ENETUNREACH": "network namespace (empty)"}, needs="netns"),
    _t("net_egress_udp", {"ENETUNREACH": "network namespace (empty)"}, needs="netns"),
    _t("netlink_newlink", {"EPERM": "capability drop (CAP_NET_ADMIN)"}),
    _t("af_packet", {"EPERM": "capability drop (CAP_NET_RAW)"}),
    _t("raw_inet", {"EPERM": "capability drop (CAP_NET_RAW)"}),
)

TECHNIQUES_BY_NAME = {technique.name: technique for technique in TECHNIQUES}


def result_token(report: Mapping[str, object]) -> str:
    outcome = report.get("outcome")
    if outcome == "blocked":
        return str(report.get("errno", "contained"))
    if outcome == "signal":
        return str(report["signal"])
    return str(outcome)


def stopper_for(technique: Technique, mode: str, token: str, step: str) -> str | None:
    """The layer that stops `technique` with `token` in `mode`, or None when that is unexpected."""
    for key, stopper in technique.expected[mode].items():
        expected_token, _, step_prefix = key.partition("@")
        if expected_token == token and step.startswith(step_prefix):
            return stopper
    return None


@dataclass
class EscapeResult:
    """One row of the summary table."""

    technique: str
    mode: str
    token: str
    step: str
    stopped_by: str | None
    details: str

    @property
    def verdict(self) -> str:
        if self.stopped_by is None:
            return "GOT THROUGH" if self.token == "escaped" else "UNEXPECTED"
        return "escaped (expected)" if self.token == "escaped" else "stopped"


RESULTS_KEY = pytest.StashKey[list]()


def build_probe(directory: Path) -> Path:
    return compile_c([PROBE_SOURCE], directory / PROBE_NAME)


def probe_techniques(probe: Path) -> list[str]:
    listing = subprocess.run([str(probe), "list"], capture_output=True, text=True, check=True).stdout
    return [line.split("\t", 1)[0] for line in listing.splitlines()]


def default_jailer() -> Path:
    return Path(sys.executable).parent / "jailer"


def baseline_missing_reason() -> str | None:
    """Why the jailer's default outer filter cannot be installed yet, or None."""
    from support.jail import seccomp_toolchain_missing

    return seccomp_toolchain_missing()


def remove_cgroups(exec_name: str, jail_id: str) -> None:
    """rmdir the cgroups the jailer made for this jail, then their `<exec name>` parent if empty."""
    from support.jail import remove_jail_cgroups

    remove_jail_cgroups(jail_id)
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else ():
        with contextlib.suppress(OSError):
            (hierarchy / exec_name).rmdir()


def process_alive(pid: int) -> bool:
    from support.jail import process_alive as alive

    return alive(pid)


@dataclass
class EscapeHarness:
    """Runs one technique in one fresh jail and undoes everything it set up for it."""

    jailer: Path
    probe: Path
    work: Path
    jail_id: str
    ours: bool
    weak: bool = False
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def base(self) -> Path:
        return self.work / "jails"

    def chroot_dir(self, jail_id: str) -> Path:
        return self.base / self.probe.name / jail_id / "root"

    def jailer_argv(self, jail_id: str, uid: int, flags: Sequence[str], probe_args: Sequence[str]) -> list[str]:
        if self.weak:
            return self._weak_argv(probe_args)
        return [
            str(self.jailer), "--id", jail_id, "--exec-file", str(self.probe),
            "--uid", str(uid), "--gid", str(uid), "--chroot-base-dir", str(self.base),
            *flags, "--", *probe_args,
        ]

    def _weak_argv(self, probe_args: Sequence[str]) -> list[str]:
        """The canary's "jail": a plain chroot(2) as root in a private mount namespace, nothing else."""
        root = self.work / "weak"
        (root / "run").mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.probe, root / self.probe.name)
        return ["unshare", "--mount", "--propagation", "private", "chroot", str(root),
                f"/{self.probe.name}", *probe_args]

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            for jail_id in (self.jail_id, f"{self.jail_id}-n"):
                remove_cgroups(self.probe.name, jail_id)
            shutil.rmtree(self.work, ignore_errors=True)

    # ---- what techniques need, each undone by the exit stack

    def _marker(self) -> Path:
        directory = Path(tempfile.mkdtemp(prefix="stockade-escape-"))
        self.stack.callback(shutil.rmtree, directory, ignore_errors=True)
        directory.chmod(0o755)
        marker = directory / "host-marker"
        marker.write_text(f"host secret {self.jail_id}\n")
        marker.chmod(0o644)
        return marker

    def _victim(self, cwd: Path) -> subprocess.Popen:
        victim = subprocess.Popen(["sleep", "600"], user=VICTIM_UID, group=VICTIM_UID, cwd=cwd,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop() -> None:
            if victim.poll() is None:
                victim.kill()
            victim.wait()

        self.stack.callback(stop)
        return victim

    def _netns(self) -> str:
        name = self.jail_id
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.stack.callback(subprocess.run, ["ip", "netns", "delete", name], capture_output=True)
        return f"/var/run/netns/{name}"

    def _listener(self, kind: int) -> socket.socket:
        listener = self.stack.enter_context(socket.socket(socket.AF_INET, kind))
        listener.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            listener.listen(4)
        listener.setblocking(False)
        return listener

    def _neighbour(self) -> Path:
        """Another jail on the same chroot base (another uid), left on disk for the probe to look for."""
        neighbour_id = f"{self.jail_id}-n"
        argv = self.jailer_argv(neighbour_id, NEIGHBOUR_UID, self._mode_flags(NO_SECCOMP), ["list"])
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TECHNIQUE_TIMEOUT,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"neighbour jail failed: {result.stderr}"
        return self.chroot_dir(neighbour_id)

    def _suid_binary(self) -> Path:
        copy = self.work / "suid_probe"
        shutil.copy(self.probe, copy)
        os.chown(copy, 0, 0)
        copy.chmod(0o4755)
        return copy

    def _mode_flags(self, mode: str) -> list[str]:
        return ["--no-seccomp"] if mode == NO_SECCOMP and self.ours else []

    def run(self, technique: Technique, mode: str) -> EscapeResult:
        self.base.mkdir(parents=True, exist_ok=True)
        needs = technique.needs
        flags = self._mode_flags(mode)
        params: list[str] = []
        pass_fds: list[int] = []
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", SECRET_VARIABLE: f"leaked-{self.jail_id}"}
        marker = self._marker() if needs & {"marker", "victim", "fd-dir", "fd-file"} else None
        victim = self._victim(marker.parent) if "victim" in needs and marker else None
        listeners: list[socket.socket] = []
        stdin: int = subprocess.DEVNULL
        preexec = None
        master = None
        if marker:
            params.append(f"marker={marker}")
        if victim:
            params.append(f"victim={victim.pid}")
        if needs & {"fd-dir", "fd-file"}:
            opened = os.open(marker.parent if "fd-dir" in needs else marker, os.O_RDONLY)  # type: ignore[union-attr]
            self.stack.callback(os.close, opened)
            pass_fds.append(opened)
            params.append(f"fd={opened}")
        if "secret" in needs:
            params.append(f"secret={SECRET_VARIABLE}")
        if "netns" in needs:
            flags += ["--netns", self._netns()]
            listeners = [self._listener(socket.SOCK_STREAM), self._listener(socket.SOCK_DGRAM)]
            port = listeners[0 if technique.name.endswith("tcp") else 1].getsockname()[1]
            params.append(f"port={port}")
        if "neighbour" in needs:
            params.append(f"path={self._neighbour()}")
        if "suid" in needs:
            flags += ["--ro-bind", f"{self._suid_binary()}:/suid_probe"]
            params.append("path=/suid_probe")
        if "pids" in needs:
            flags += ["--cgroup", f"pids.max={PIDS_LIMIT}"]
        if "memory" in needs:
            flags += ["--cgroup", f"memory.limit_in_bytes={MEMORY_LIMIT}"]
        if "fsize" in needs:
            flags += ["--resource-limit", f"fsize={FSIZE_LIMIT}"]
            params.append(f"bytes={4 * FSIZE_LIMIT}")
        if technique.name == "fd_exhaustion":
            params.append(f"ceiling={NOFILE_DEFAULT}")
        if technique.name == "hardlink_root_file":
            params.append(f"path=/{self.probe.name}.pid")
        if technique.name in ("plant_exec_symlink", "execve_regain_caps"):
            params.append(f"path=/{self.probe.name}")
        if "pty" in needs:
            master, slave = os.openpty()
            self.stack.callback(os.close, master)
            self.stack.callback(os.close, slave)
            stdin = slave

            def preexec() -> None:  # the pty becomes the controlling terminal of the jailer's session
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        argv = self.jailer_argv(self.jail_id, JAIL_UID, flags, [technique.name, *params])
        completed = subprocess.run(
            argv, stdin=stdin, capture_output=True, text=True, timeout=TECHNIQUE_TIMEOUT, env=env,
            pass_fds=pass_fds, preexec_fn=preexec, cwd=self.work,
        )
        report = _last_json_line(completed.stdout)
        if report is None:
            raise AssertionError(
                f"no report from the probe (jailer exit {completed.returncode}):\n{completed.stderr}{completed.stdout}"
            )
        token = result_token(report)
        details = str(report.get("details", ""))
        if token == "attempted" or (victim and token != "escaped"):
            token, details = self._verify(technique, report, token, details, victim, marker, flags, mode)
        if listeners:
            token, details = _check_listeners(listeners, token, details)
        if master is not None and token == "escaped":
            details += f"; terminal input now holds {_drain_terminal_input(stdin)!r}"
        step = str(report.get("step", ""))
        return EscapeResult(technique.name, mode, token, step, stopper_for(technique, mode, token, step), details)

    def _verify(self, technique: Technique, report: Mapping[str, object], token: str, details: str,
                victim: subprocess.Popen | None, marker: Path | None, flags: list[str],
                mode: str) -> tuple[str, str]:
        """Turn what only the harness can see (a victim's fate, a host file) into the result."""
        if victim is not None and not process_alive(victim.pid):
            return "escaped", f"host victim {victim.pid} was killed; probe said: {details}"
        if technique.name == "kill_all":
            return "victim-alive", f"host victim {victim.pid} survived; probe said: {details}"  # type: ignore[union-attr]
        if "replant" in technique.needs and marker is not None:
            before = _host_view(marker)
            rerun = subprocess.run(self.jailer_argv(self.jail_id, JAIL_UID, flags, ["list"]),
                                   capture_output=True, text=True, timeout=TECHNIQUE_TIMEOUT,
                                   stdin=subprocess.DEVNULL, cwd=self.work)
            if _host_view(marker) != before:
                return "escaped", f"the jailer's re-run changed host files through the planted symlink: {_host_view(marker)}"
            outcome = "refused to run" if rerun.returncode else "ran"
            last_line = (rerun.stderr.strip().splitlines() or [""])[-1]
            return "marker-intact", f"re-run {outcome}; host file untouched ({last_line})"
        return token, details


def _host_view(marker: Path) -> list[tuple[str, int, int, int, bytes]]:
    """Mode, owner and contents of the host marker's directory and files: what a planted symlink targets."""
    view = []
    for path in [marker.parent, *sorted(marker.parent.iterdir())]:
        info = path.lstat()
        content = path.read_bytes() if path.is_file() else b""
        view.append((path.name, info.st_mode, info.st_uid, info.st_gid, content))
    return view


def _last_json_line(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
    return None


def _check_listeners(listeners: Sequence[socket.socket], token: str, details: str) -> tuple[str, str]:
    """A host listener that heard from the jail means egress, whatever the probe said."""
    for listener in listeners:
        try:
            if listener.type == socket.SOCK_STREAM:
                connection, peer = listener.accept()
                connection.close()
            else:
                _, peer = listener.recvfrom(16)
        except (BlockingIOError, InterruptedError):
            continue
        return "escaped", f"host loopback listener heard from {peer}"
    return token, details


def _drain_terminal_input(slave: int) -> bytes:
    os.set_blocking(slave, False)
    with contextlib.suppress(BlockingIOError, OSError):
        return os.read(slave, 256)
    return b""


@contextlib.contextmanager
def escape_harness(jailer: Path, probe: Path, jail_id: str, ours: bool, weak: bool = False) -> Iterator[EscapeHarness]:
    """A harness for one technique; `weak=True` swaps the jailer for a bare root chroot (the canary)."""
    work = Path(tempfile.mkdtemp(prefix=f"stockade-{jail_id}-"))
    harness = EscapeHarness(jailer=jailer, probe=probe, work=work, jail_id=jail_id, ours=ours, weak=weak)
    try:
        yield harness
    finally:
        harness.close()
