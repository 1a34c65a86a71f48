"""Running the real `jailer` around the jail probe, and cleaning up after it.

`Jail` builds the jailer's command line (unique id, a private chroot base under the test's
tmp_path, uid/gid 1234 like Firecracker's harness), runs it to completion or starts the probe in
`--wait` mode and reads its JSON report, and on clean-up kills every probe it started (found
through the pid file), removes cgroup directories named after the jail and the jail tree.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support import PROJECT_ROOT, compile_c

PROBE_SOURCE = Path(__file__).with_name("jail_probe.c")
PROBE_NAME = "jail_probe"
JAIL_UID = 1234
JAIL_GID = 1234
REPORT_JAIL_PATH = "/run/probe.json"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def jailer_command() -> list[str]:
    """The installed `jailer` console script of the running venv, else `python -m jailer`."""
    script = Path(sys.executable).with_name("jailer")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "jailer"]


def build_probe(directory: Path) -> Path:
    return compile_c([PROBE_SOURCE], directory / PROBE_NAME)


def seccomp_toolchain_missing() -> str | None:
    """Why the outer-filter tests cannot run yet, or None once `jailer.policies` provides it."""
    try:
        from jailer import policies
        from jailer.policies import compiler, loader  # noqa: F401
    except ImportError as error:
        return f"seccomp policy toolchain missing: {error}"
    for name in ("load_policy", "shipped_policy_path"):
        if not hasattr(policies, name):
            return f"seccomp policy toolchain missing: jailer.policies.{name}"
    try:
        policies.shipped_policy_path("baseline")
    except Exception as error:  # noqa: BLE001 - any failure means "not there yet"
        return f"shipped baseline policy missing: {error}"
    return None


def error_text(result: subprocess.CompletedProcess) -> str:
    """The jailer's error output, minus the `--no-seccomp` notice; asserts a nonzero exit and
    that no traceback was printed."""
    from jailer.seccomp import NO_SECCOMP_NOTICE

    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines(keepends=True) if line.rstrip("\n") != NO_SECCOMP_NOTICE]
    return "".join(lines)


def tree_snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under root with (mode, uid, gid): to prove a run left nothing behind."""
    snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            snapshot[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid)
    return snapshot


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return fields


def namespace_inode(pid: int | str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(predicate, timeout: float = 20.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass
class RunningProbe:
    """A probe paused in `--wait` inside its jail, seen from the host."""

    pid: int
    report: dict
    jailer: subprocess.Popen

    def status(self) -> dict[str, str]:
        return proc_status(self.pid)

    def kill(self) -> None:
        if process_alive(self.pid):
            os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: not process_alive(self.pid), what=f"probe {self.pid} to die")


@dataclass
class Jail:
    probe: Path
    base: Path
    jail_id: str
    uid: int = JAIL_UID
    gid: int = JAIL_GID
    started: list[RunningProbe] = field(default_factory=list)
    popens: list[subprocess.Popen] = field(default_factory=list)

    @property
    def chroot_dir(self) -> Path:
        return self.base / self.probe.name / self.jail_id / "root"

    @property
    def pid_file(self) -> Path:
        return self.chroot_dir / f"{self.probe.name}.pid"

    def host_path(self, jail_path: str) -> Path:
        return self.chroot_dir / jail_path.lstrip("/")

    def argv(self, *flags: str, extra: Sequence[str] = (), exec_file: str | None = None,
             jail_id: str | None = None) -> list[str]:
        """The jailer's argv; until the policy toolchain exists, runs that do not choose a
        filter themselves pass `--no-seccomp` (the default `baseline` could not be installed)."""
        chooses_filter = any(flag.startswith(("--seccomp", "--no-seccomp")) for flag in flags)
        if not chooses_filter and seccomp_toolchain_missing():
            flags = (*flags, "--no-seccomp")
        return [
            *jailer_command(),
            "--id", self.jail_id if jail_id is None else jail_id,
            "--exec-file", str(self.probe) if exec_file is None else exec_file,
            "--uid", str(self.uid),
            "--gid", str(self.gid),
            "--chroot-base-dir", str(self.base),
            *flags,
            *(["--", *extra] if extra else []),
        ]

    def run(self, *flags: str, extra: Sequence[str] = (), timeout: float = 60, pass_fds: Sequence[int] = (),
            **argv_options: str) -> subprocess.CompletedProcess:
        """Run the jailer to completion (the probe without --wait exits after reporting)."""
        return subprocess.run(
            self.argv(*flags, extra=extra, **argv_options), capture_output=True, text=True, timeout=timeout,
            umask=0o022, pass_fds=pass_fds, cwd=PROJECT_ROOT,
        )

    def run_probe(self, *flags: str, extra: Sequence[str] = (), **options) -> dict:  # type: ignore[no-untyped-def]
        result = self.run(*flags, extra=extra, **options)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def start(self, *flags: str, extra: Sequence[str] = (), prefix: Sequence[str] = (),
              stdin: int = subprocess.DEVNULL, preexec_fn=None) -> RunningProbe:  # type: ignore[no-untyped-def]
        """Start the probe with --wait, wait for its report and its pid file, and return both.

        `prefix` runs the jailer under another program (e.g. a session helper); `stdin` and
        `preexec_fn` go to Popen (e.g. a pty made the controlling terminal).
        """
        popen = subprocess.Popen(
            [*prefix, *self.argv(*flags, extra=["--out", REPORT_JAIL_PATH, "--wait", *extra])],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, umask=0o022,
            cwd=PROJECT_ROOT, preexec_fn=preexec_fn,
        )
        self.popens.append(popen)
        report_path = self.host_path(REPORT_JAIL_PATH)

        def ready() -> bool:
            if popen.poll() not in (None, 0):
                raise AssertionError(f"jailer failed: {popen.stderr.read().decode() if popen.stderr else ''}")
            return self.pid_file.exists() and report_path.exists() and report_path.read_bytes().endswith(b"}\n")

        wait_until(ready, what="the probe's report")
        wait_until(lambda: self.pid_file.read_text() != "", what="the pid file")
        probe = RunningProbe(int(self.pid_file.read_text()), json.loads(report_path.read_text()), popen)
        self.started.append(probe)
        return probe

    def cleanup(self) -> None:
        for probe in self.started:
            probe.kill()
        for popen in self.popens:
            if popen.poll() is None:
                popen.kill()
            popen.communicate()
        if self.pid_file.exists():
            text = self.pid_file.read_text()
            if text.isdigit() and process_alive(int(text)) and \
                    os.readlink(f"/proc/{text}/exe").endswith(self.probe.name):
                os.kill(int(text), signal.SIGKILL)
        remove_jail_cgroups(self.jail_id)
        shutil.rmtree(self.base, ignore_errors=True)


def remove_jail_cgroups(jail_id: str) -> None:
    """rmdir every cgroup directory named after this (unique) jail id, deepest first."""
    if not CGROUP_ROOT.is_dir():
        return
    for hierarchy in CGROUP_ROOT.iterdir():
        if not hierarchy.is_dir() or hierarchy.is_symlink():
            continue
        candidates = [*hierarchy.glob(f"*/{jail_id}"), *hierarchy.glob(f"*/*/{jail_id}")]
        for found in sorted(candidates, key=lambda p: len(p.parts), reverse=True):
            try:
                found.rmdir()
            except OSError:
                pass


def is_char_device(path: Path) -> bool:
    return stat.S_ISCHR(path.lstat().st_mode)


@pytest.fixture(scope="session")
def jail_probe(c_build_dir: Path) -> Path:
    return build_probe(c_build_dir)


@pytest.fixture
def jail(tmp_path: Path, unique_name: str, jail_probe: Path) -> Iterator[Jail]:
    base = tmp_path / "jails"
    base.mkdir()
    handle = Jail(probe=jail_probe, base=base, jail_id=unique_name)
    try:
        yield handle
    finally:
        handle.cleanup()
