"""Helpers for the cgroup tests: fake /proc/mounts, a blocked child to attach, leak checks.

Integration tests only ever move a forked child (or a jailed probe) into the cgroups they create,
never the test runner, and every cgroup they create is named after a unique prefix, so
`cgroup_prefix` can prove at teardown that nothing with that prefix is left under
/sys/fs/cgroup.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED_ROOT = CGROUP_ROOT / "unified"
LEAK_SCAN_DEPTH = 4


def fake_mounts_text(v1: dict[Path, str] | None = None, v2: Path | None = None, *, v2_first: bool = False) -> str:
    """/proc/mounts text with the given cgroup v1 mounts ({dir: options}) and cgroup2 mount,
    among unrelated lines the parser must skip."""
    lines = ["proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0",
             "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0"]
    v1_lines = [f"cgroup {directory} cgroup {options} 0 0" for directory, options in (v1 or {}).items()]
    v2_lines = [] if v2 is None else [f"cgroup2 {v2} cgroup2 rw,nosuid,nodev,noexec,relatime 0 0"]
    lines += [*v2_lines, *v1_lines] if v2_first else [*v1_lines, *v2_lines]
    lines.append("/dev/vda1 / ext4 rw,relatime 0 0")
    return "\n".join(lines) + "\n"


def cgroup_v1_mounts() -> dict[str, Path]:
    """{controller or name=...: mount point} of this host's cgroup v1 mounts."""
    found: dict[str, Path] = {}
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "cgroup":
            for option in fields[3].split(","):
                found.setdefault(option, Path(fields[1]))
    return found


def require_v1_controllers(*controllers: str) -> dict[str, Path]:
    mounts = cgroup_v1_mounts()
    missing = [controller for controller in controllers if controller not in mounts]
    if missing:
        pytest.skip(f"no cgroup v1 hierarchy for {', '.join(missing)} on this host")
    return {controller: mounts[controller] for controller in controllers}


def unified_controllers() -> set[str]:
    try:
        return set((UNIFIED_ROOT / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def cgroup_dirs_named(prefix: str) -> list[Path]:
    """Every directory under /sys/fs/cgroup (a few levels deep) whose name starts with prefix."""
    found: list[Path] = []

    def scan(directory: Path, depth: int) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            path = Path(entry.path)
            if entry.name.startswith(prefix):
                found.append(path)
            if depth > 1:
                scan(path, depth - 1)

    scan(CGROUP_ROOT, LEAK_SCAN_DEPTH)
    return found


def remove_cgroup_trees(paths: list[Path]) -> list[str]:
    """rmdir each tree bottom-up; return the failures (a member process keeps a cgroup busy)."""
    failures: list[str] = []
    for top in paths:
        if not top.exists():
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda item: item[0].count("/"), reverse=True):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError as error:
                failures.append(f"{dirpath}: {error.strerror}")
    return failures


@contextmanager
def no_cgroup_leaks(prefix: str) -> Iterator[str]:
    """Fail the test if any cgroup named `prefix*` is left behind (and remove it anyway)."""
    yield prefix
    leftovers = cgroup_dirs_named(prefix)
    failures = remove_cgroup_trees(leftovers)
    assert not leftovers, f"cgroups left behind: {[str(path) for path in leftovers]} (clean-up: {failures})"


@dataclass
class BlockedChild:
    """A forked child that blocks on a pipe until released: a process to attach to cgroups."""

    pid: int
    release_fd: int

    def release(self) -> None:
        """Let it exit and reap it (idempotent)."""
        if self.release_fd >= 0:
            os.close(self.release_fd)
            self.release_fd = -1
            os.waitpid(self.pid, 0)


@contextmanager
def blocked_child() -> Iterator[BlockedChild]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(write_fd)
            os.read(read_fd, 1)
        finally:
            os._exit(0)
    os.close(read_fd)
    child = BlockedChild(pid, write_fd)
    try:
        yield child
    finally:
        child.release()


def member_pids(cgroup_dir: Path, attach_file: str) -> set[int]:
    return {int(line) for line in (cgroup_dir / attach_file).read_text().split()}


def cgroup_of(pid: int, controller: str) -> str:
    """The cgroup path of pid in the hierarchy of `controller` ("" for cgroup v2)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (controller == "" and controllers == "") or controller in controllers.split(","):
            return path
    raise AssertionError(f"{controller or 'cgroup2'} not in /proc/{pid}/cgroup")


@contextmanager
def unified_controller_enabled(controller: str) -> Iterator[Path]:
    """The cgroup2 root with `controller` enabled for its children (as the jailer itself would
    enable it); restores the root's `cgroup.subtree_control` afterwards when this test was the
    one that enabled it."""
    if controller not in unified_controllers():
        pytest.skip(f"the cgroup2 mount at {UNIFIED_ROOT} does not offer {controller}")
    subtree_control = UNIFIED_ROOT / "cgroup.subtree_control"
    was_enabled = controller in subtree_control.read_text().split()
    try:
        if not was_enabled:
            subtree_control.write_text(f"+{controller}\n")
        yield UNIFIED_ROOT
    finally:
        if not was_enabled:
            try:
                subtree_control.write_text(f"-{controller}\n")
            except OSError as error:
                # Someone else's cgroup started using it meanwhile: theirs to keep.
                if error.errno != errno.EBUSY:
                    raise


def hugetlb_files(cgroup_dir: Path) -> list[str]:
    """The hugetlb `*.max` files of a v2 cgroup with hugetlb enabled (one per page size)."""
    return sorted(path.name for path in cgroup_dir.glob("hugetlb.*.max"))


def node0_cpus() -> str:
    """CPUs of NUMA node 0 (what Firecracker's test writes to cpuset.cpus), else the root's."""
    cpulist = Path("/sys/devices/system/node/node0/cpulist")
    if cpulist.exists():
        return cpulist.read_text().strip()
    return (CGROUP_ROOT / "cpuset" / "cpuset.cpus").read_text().strip()


@pytest.fixture
def cgroup_prefix(unique_name: str) -> Iterator[str]:
    """A unique cgroup name prefix; the test fails if any cgroup named with it is left behind."""
    with no_cgroup_leaks(unique_name) as prefix:
        yield prefix
