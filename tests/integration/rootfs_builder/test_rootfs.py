"""ext4 images checked with e2fsck and read back with debugfs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rootfs_builder.cache import Cache
from rootfs_builder.errors import BuildError
from rootfs_builder.rootfs import build_rootfs
from support.rootfs import PERSISTENT_CACHE, debugfs_cat, e2fsck_clean


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "etc").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / "etc/hostname").write_text("guest\n")
    (root / "bin/hello").write_bytes(b"\x7fELF" + os.urandom(20000))
    (root / "bin/hello").chmod(0o755)
    (root / "bin/hi").symlink_to("hello")
    return root


def test_image_is_clean_and_files_read_back(tree: Path, tmp_path: Path) -> None:
    image = tmp_path / "rootfs.ext4"
    built = build_rootfs(image, "8M", source_dir=tree, cache=Cache(tmp_path / "cache"))
    check = e2fsck_clean(image)
    assert check.returncode == 0, check.stdout + check.stderr
    assert debugfs_cat(image, "/etc/hostname") == b"guest\n"
    assert debugfs_cat(image, "/bin/hello") == (tree / "bin/hello").read_bytes()
    stat = subprocess.run(["debugfs", "-R", "stat /bin/hi", str(image)], capture_output=True, text=True).stdout
    assert 'Fast link dest: "hello"' in stat
    mode = subprocess.run(["debugfs", "-R", "stat /bin/hello", str(image)], capture_output=True, text=True).stdout
    assert "Mode:  0755" in mode
    assert built.size == 8 << 20
    header = subprocess.run(["dumpe2fs", "-h", str(image)], capture_output=True, text=True).stdout
    assert f"Filesystem UUID:          {built.uuid}" in header


def test_two_builds_are_byte_identical_even_with_different_source_times(tree: Path, tmp_path: Path) -> None:
    first = build_rootfs(tmp_path / "a.ext4", "8M", source_dir=tree, cache=Cache(tmp_path / "cache-a"))
    # The clock must move between the builds: mkfs copies atime/ctime, which the builder pins.
    time.sleep(1.1)
    os.utime(tree / "etc/hostname", (1234567890, 1234567890))
    second = build_rootfs(tmp_path / "b.ext4", "8M", source_dir=tree, cache=Cache(tmp_path / "cache-b"))
    assert not first.cache_hit and not second.cache_hit
    assert (tmp_path / "a.ext4").read_bytes() == (tmp_path / "b.ext4").read_bytes()
    (tree / "etc/hostname").write_text("other\n")
    third = build_rootfs(tmp_path / "c.ext4", "8M", source_dir=tree, cache=Cache(tmp_path / "cache-a"))
    assert third.sha256 != first.sha256 and not third.cache_hit


def test_second_build_is_a_cache_hit(tree: Path, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    first = build_rootfs(tmp_path / "a.ext4", "8M", source_dir=tree, cache=cache)
    second = build_rootfs(tmp_path / "b.ext4", "8M", source_dir=tree, cache=cache)
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert first.sha256 == second.sha256


def test_size_too_small_for_the_tree_leaves_nothing_behind(tree: Path, tmp_path: Path) -> None:
    (tree / "big").write_bytes(os.urandom(3 << 20))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(BuildError, match="too small for the tree"):
        build_rootfs(out_dir / "r.ext4", "2M", source_dir=tree, cache=Cache(tmp_path / "cache"))
    assert list(out_dir.iterdir()) == []
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_names_that_are_not_utf8_are_copied_byte_for_byte(tmp_path: Path) -> None:
    """File names are bytes on Linux; b"\\xff" used to raise UnicodeEncodeError while hashing."""
    root = os.fsencode(tmp_path / "tree")
    os.makedirs(os.path.join(root, b"dir\xfd"))
    descriptor = os.open(os.path.join(root, b"\xff"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(descriptor, b"latin-1 name\n")
    os.close(descriptor)
    os.symlink(b"../\xff", os.path.join(root, b"dir\xfd", b"link\xfe"))
    image = tmp_path / "rootfs.ext4"
    cache = Cache(tmp_path / "cache")
    built = build_rootfs(image, "8M", source_dir=tmp_path / "tree", cache=cache)
    assert e2fsck_clean(image).returncode == 0
    listing = subprocess.run([b"debugfs", b"-R", b"ls -p /dir\xfd", os.fsencode(image)], capture_output=True).stdout
    assert b"/link\xfe/" in listing
    cat = subprocess.run([b"debugfs", b"-R", b'cat "/\xff"', os.fsencode(image)], capture_output=True, check=True)
    assert cat.stdout == b"latin-1 name\n"
    link = subprocess.run([b"debugfs", b"-R", b'stat "/dir\xfd/link\xfe"', os.fsencode(image)], capture_output=True)
    assert b'Fast link dest: "../\xff"' in link.stdout
    assert b"atime: 0x00000001" in link.stdout  # debugfs pinned the times of the non-UTF-8 path too
    again = build_rootfs(tmp_path / "again.ext4", "8M", source_dir=tmp_path / "tree", cache=cache)
    assert again.cache_hit and again.sha256 == built.sha256


@pytest.mark.parametrize("size", ["12X", "-5M", "1000", "0"])
def test_bad_sizes_are_refused(tree: Path, tmp_path: Path, size: str) -> None:
    with pytest.raises(BuildError, match="size"):
        build_rootfs(tmp_path / "r.ext4", size, source_dir=tree, cache=Cache(tmp_path / "cache"))


@pytest.mark.skipif(not os.environ.get("STOCKADE_SLOW_TESTS"), reason="debootstrap takes ~2 min the first time; set STOCKADE_SLOW_TESTS=1")
@pytest.mark.root
def test_debootstrap_minbase_image(tmp_path: Path) -> None:
    image = tmp_path / "debian.ext4"
    command = [sys.executable, "-m", "rootfs_builder.cli", "--cache-dir", str(PERSISTENT_CACHE / "stockade"),
               "rootfs", "--debootstrap", "bookworm", "--out", str(image), "--size", "400M"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0 and "debootstrap bookworm failed" in result.stderr:
        pytest.skip(f"debootstrap could not reach Debian: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert e2fsck_clean(image).returncode == 0
    assert b"bookworm" in debugfs_cat(image, "/usr/lib/os-release")  # /etc/os-release is a symlink to it
    assert debugfs_cat(image, "/etc/debian_version").strip()
