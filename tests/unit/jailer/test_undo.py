"""The fail-closed undo log and the cgroup membership record it uses."""

from __future__ import annotations

import os
from pathlib import Path

from jailer.cgroup_return import CgroupMembership, _parse_mountinfo
from jailer.undo import UndoLog


def test_undo_runs_newest_first_and_keeps_going(tmp_path: Path) -> None:
    order: list[str] = []
    log = UndoLog()
    log.add("first", lambda: order.append("first"))
    log.add("broken", lambda: (_ for _ in ()).throw(PermissionError(13, "x")))
    log.add("second", lambda: order.append("second"))
    failures = log.run()
    assert order == ["second", "first"]
    assert failures == ["broken: Permission denied (os error 13)"]
    assert log.entries == []


def test_created_paths_are_removed_deepest_first(tmp_path: Path) -> None:
    log = UndoLog()
    directory = tmp_path / "a"
    directory.mkdir()
    log.created_path(str(directory), is_dir=True)
    (directory / "file").write_text("")
    log.created_path(str(directory / "file"), is_dir=False)
    assert log.run() == []
    assert list(tmp_path.iterdir()) == []


def test_already_gone_is_not_a_failure(tmp_path: Path) -> None:
    log = UndoLog()
    log.created_path(str(tmp_path / "never-made"), is_dir=False)
    assert log.run() == []


def test_mountinfo_parsing() -> None:
    line = "35 25 0:30 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu\n"
    assert _parse_mountinfo(line) == ("/", "/sys/fs/cgroup/cpu", "cgroup", "rw,cpu")
    escaped = r"36 25 0:31 /sub /mnt/with\040space rw - cgroup2 cgroup2 rw,nsdelegate"
    assert _parse_mountinfo(escaped) == ("/sub", "/mnt/with space", "cgroup2", "rw,nsdelegate")


def test_membership_of_this_process_points_at_existing_procs_files() -> None:
    membership = CgroupMembership.of_this_process()
    own = Path("/proc/self/cgroup").read_text().splitlines()
    assert len(membership.procs_files) <= len(own)
    for procs in membership.procs_files:
        assert procs.endswith("/cgroup.procs")
        assert str(os.getpid()) in Path(procs).read_text().split()
