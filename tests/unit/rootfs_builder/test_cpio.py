"""The newc writer, read back by Debian's cpio (an independent reader)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from rootfs_builder import cpio


def _entries() -> list[cpio.Entry]:
    return [
        cpio.regular("bin/tool", b"#!/bin/sh\necho hi\n", 0o755),
        cpio.directory("bin"),
        cpio.symlink("sbin/tool", "/bin/tool"),
        cpio.directory("sbin"),
        cpio.directory("dev"),
        cpio.char_device("dev/console", 5, 1),
        cpio.regular("odd-size", b"x" * 5),
    ]


def test_debian_cpio_lists_sorted_entries_with_fixed_owner_and_mtime(tmp_path: Path) -> None:
    archive = cpio.archive(_entries(), mtime=0)
    listing = subprocess.run(
        ["cpio", "-tv", "--quiet", "--numeric-uid-gid"], input=archive, capture_output=True, check=True
    ).stdout.decode().splitlines()
    names = [line.split()[-1] if "->" not in line else line.split()[-3] for line in listing]
    assert names == ["bin", "bin/tool", "dev", "dev/console", "odd-size", "sbin", "sbin/tool"]
    for line in listing:
        fields = line.split()
        assert fields[2] == "0" and fields[3] == "0", line
        assert "1970" in line, line
    assert listing[3].startswith("crw-------") and "5," in listing[3]
    assert listing[6].startswith("lrwxrwxrwx") and listing[6].endswith("-> /bin/tool")


def test_extracted_contents_and_modes_match(tmp_path: Path) -> None:
    archive = cpio.archive(_entries())
    subprocess.run(["cpio", "-i", "-d", "--quiet"], input=archive, cwd=tmp_path, check=True)
    assert (tmp_path / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (tmp_path / "bin/tool").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "odd-size").read_bytes() == b"xxxxx"
    assert (tmp_path / "sbin/tool").readlink() == Path("/bin/tool")


def test_same_entries_in_any_order_give_the_same_bytes() -> None:
    entries = _entries()
    assert cpio.archive(entries) == cpio.archive(list(reversed(entries)))
    assert len(cpio.archive(entries)) % 4 == 0


def test_duplicate_paths_are_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        cpio.archive([cpio.directory("bin"), cpio.directory("bin")])
