"""Progress reporting, the content-addressed cache and all-or-nothing outputs."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from rootfs_builder.cache import Cache, inputs_key
from rootfs_builder.errors import BuildError
from rootfs_builder.files import output_dir, output_file
from rootfs_builder.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(stream).step("downloading"):
        pass
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "downloading ..."
    assert re.fullmatch(r"downloading: done in \d+\.\ds", lines[1])


def test_live_elapsed_time_on_a_terminal() -> None:
    stream = _Terminal()
    with Progress(stream).step("mkfs"):
        time.sleep(0.5)  # long enough for the 0.2 s ticker to redraw at least once
    output = stream.getvalue()
    assert re.search(r"\r\x1b\[Kmkfs \.\.\. \d+\.\ds", output)
    assert re.search(r"\r\x1b\[Kmkfs: done in \d+\.\ds\n$", output)


def test_a_failed_step_says_so_and_propagates() -> None:
    stream = io.StringIO()
    with pytest.raises(BuildError):
        with Progress(stream).step("debootstrap"):
            raise BuildError("boom")
    assert "debootstrap: failed in" in stream.getvalue()


def test_cache_key_depends_on_every_input_and_kind() -> None:
    base = inputs_key("initramfs", {"a": 1, "b": [1, 2]})
    assert base == inputs_key("initramfs", {"b": [1, 2], "a": 1})  # order-insensitive
    assert base != inputs_key("initramfs", {"a": 1, "b": [2, 1]})
    assert base != inputs_key("rootfs", {"a": 1, "b": [1, 2]})


def test_cache_hit_after_a_miss_and_nothing_left_by_a_failed_build(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    builds = []

    def build(directory: Path) -> None:
        builds.append(directory)
        (directory / "artifact").write_text("bytes")

    first = cache.get_or_build("kind", {"x": 1}, build)
    second = cache.get_or_build("kind", {"x": 1}, build)
    assert (first.hit, second.hit, len(builds)) == (False, True, 1)
    assert (second.path / "artifact").read_text() == "bytes"

    def failing(directory: Path) -> None:
        (directory / "half").write_text("partial")
        raise BuildError("failed midway")

    with pytest.raises(BuildError):
        cache.get_or_build("kind", {"x": 2}, failing)
    assert sorted(p.name for p in (tmp_path / "kind").iterdir()) == [first.key]


def test_output_file_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "image"
    with pytest.raises(RuntimeError):
        with output_file(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with output_file(target) as temporary:
        temporary.write_text("whole")
    assert [p.name for p in tmp_path.iterdir()] == ["image"] and target.read_text() == "whole"


def test_output_dir_removes_what_it_created_and_keeps_what_was_there(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        with output_dir(fresh) as staging:
            (staging / "vmlinuz").write_text("x")
            raise RuntimeError("interrupted")
    assert not fresh.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep").write_text("mine")
    (existing / "vmlinuz").write_text("old")
    with pytest.raises(RuntimeError):
        with output_dir(existing) as staging:
            (staging / "vmlinuz").write_text("new")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in existing.iterdir()) == ["keep", "vmlinuz"]
    assert (existing / "vmlinuz").read_text() == "old"
    with output_dir(existing) as staging:
        (staging / "vmlinuz").write_text("new")
        (staging / "modules").mkdir()
    assert sorted(p.name for p in existing.iterdir()) == ["keep", "modules", "vmlinuz"]
    assert (existing / "vmlinuz").read_text() == "new"


def test_missing_parent_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not exist"):
        with output_file(tmp_path / "no" / "such" / "file"):
            pass
