"""`jailer.trusted`: which files the policy store and the VMM's bundle take bytes from, and
that a refusal leaves no file descriptor open."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jailer import trusted


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good"
    path.write_bytes(b"0123456789")
    path.chmod(0o644)
    return path


def test_a_trusted_file_is_opened_and_read(good: Path) -> None:
    opened = trusted.open_trusted(str(good), 10)
    assert opened is not None
    fd, size = opened
    try:
        assert size == 10 and os.read(fd, 100) == b"0123456789"
    finally:
        os.close(fd)
    assert trusted.read_trusted(str(good), 10) == b"0123456789"


@pytest.mark.parametrize(
    "refusal", ["too-big", "group-writable", "world-writable", "symlink", "directory", "fifo", "missing"]
)
def test_refusals_leave_nothing_open(good: Path, tmp_path: Path, refusal: str) -> None:
    path, limit = good, 10
    if refusal == "too-big":
        limit = 9
    elif refusal == "group-writable":
        good.chmod(0o664)
    elif refusal == "world-writable":
        good.chmod(0o646)
    elif refusal == "symlink":
        path = tmp_path / "link"
        path.symlink_to(good)
    elif refusal == "directory":
        path = tmp_path
    elif refusal == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path, 0o644)  # with no writer, a blocking open would never return
    else:
        path = tmp_path / "missing"
    before = open_fds()
    assert trusted.open_trusted(str(path), limit) is None
    assert trusted.read_trusted(str(path), limit) is None
    assert open_fds() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file another owner")
def test_only_root_or_the_running_user_may_own_it(good: Path) -> None:
    os.chown(good, 4321, 4321)
    assert trusted.read_trusted(str(good), 10) is None
    os.chown(good, 0, 4321)  # root's, another group: fine while not group-writable
    assert trusted.read_trusted(str(good), 10) == b"0123456789"
