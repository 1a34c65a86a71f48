"""`rootfs-builder` as users run it: one clear error line, nonzero exit, no partial outputs;
and `all` with its manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.rootfs import PERSISTENT_CACHE, make_fake_kernel_dir


def _command(*args: str, cache: Path) -> list[str]:
    return [sys.executable, "-m", "rootfs_builder.cli", "--cache-dir", str(cache), *args]


def _run(*args: str, cache: Path, read_only: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI; with `read_only`, in a private mount namespace where that directory is a
    read-only bind mount (mode bits alone do not stop root). The namespace dies with it."""
    command = _command(*args, cache=cache)
    if read_only is not None:
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(read_only), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def _one_error_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("rootfs-builder: error: ") and fragment in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_flavor(tmp_path: Path) -> None:
    result = _run("kernel", "--flavor", "rt", "--out", str(tmp_path / "k"), cache=tmp_path / "cache")
    _one_error_line(result, "unknown kernel flavor 'rt'")
    assert not (tmp_path / "k").exists()


def test_missing_kernel_dir(tmp_path: Path) -> None:
    result = _run("initramfs", "--kernel", str(tmp_path / "nope"), "--out", str(tmp_path / "i"), cache=tmp_path / "c")
    _one_error_line(result, "kernel directory")
    assert not (tmp_path / "i").exists()


def test_unknown_compression_and_missing_init_script(tmp_path: Path, c_build_dir: Path) -> None:
    kernel = make_fake_kernel_dir(tmp_path / "k", c_build_dir)
    result = _run("initramfs", "--kernel", str(kernel), "--out", str(tmp_path / "i"), "--compress", "lzip",
                  cache=tmp_path / "c")  # fmt: skip
    _one_error_line(result, "unknown compression 'lzip'")
    result = _run("initramfs", "--kernel", str(kernel), "--out", str(tmp_path / "i"), "--init", str(tmp_path / "x"),
                  cache=tmp_path / "c")  # fmt: skip
    _one_error_line(result, "init script")
    assert not (tmp_path / "i").exists()


def test_size_too_small(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "blob").write_bytes(os.urandom(3 << 20))
    result = _run("rootfs", "--from", str(tree), "--out", str(tmp_path / "r.ext4"), "--size", "2M", cache=tmp_path / "c")
    _one_error_line(result, "too small for the tree")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "tree"]


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_an_output_that_is_not_a_regular_file_is_left_alone(tmp_path: Path, kind: str) -> None:
    """`--out /dev/null` replaced the host's null device with the image; a FIFO and a
    directory stand in for it here (never the real /dev/null in a test)."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    target = tmp_path / "target"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        target.mkdir()
        (target / "keep").write_text("mine")
    before = os.lstat(target)
    result = _run("rootfs", "--from", str(tree), "--out", str(target), "--size", "4M", cache=tmp_path / "cache")
    what = "a named pipe (FIFO)" if kind == "fifo" else "a directory"
    _one_error_line(result, f"output {target} is {what}, not a regular file")
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode, after.st_mtime_ns) == (before.st_ino, before.st_mode, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target", "tree"]  # refused before any work (no cache)
    if kind == "directory":
        assert [p.name for p in target.iterdir()] == ["keep"]


@pytest.mark.parametrize(("size", "fragment"), [("1" * 5000, "too large"), ("５M", "invalid size '５M'")])
def test_huge_and_non_ascii_sizes_are_one_line(tmp_path: Path, size: str, fragment: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    result = _run("rootfs", "--from", str(tree), "--out", str(tmp_path / "r.ext4"), "--size", size, cache=tmp_path / "c")
    _one_error_line(result, fragment)
    assert len(result.stderr) < 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree"]


def test_empty_paths_are_refused(tmp_path: Path) -> None:
    """'' used to mean the current directory: the cache, the tree copied in, or the output."""
    (tmp_path / "tree").mkdir()
    cases = {
        "--cache-dir": ["--cache-dir", "", "rootfs", "--from", "tree", "--out", "r.ext4", "--size", "4M"],
        "--from": ["--cache-dir", "c", "rootfs", "--from", "", "--out", "r.ext4", "--size", "4M"],
        "--out": ["--cache-dir", "c", "rootfs", "--from", "tree", "--out", "", "--size", "4M"],
    }
    for option, args in cases.items():
        command = [sys.executable, "-m", "rootfs_builder.cli", *args]
        result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [
            f"rootfs-builder: error: argument {option}: an empty path is not allowed (see --help)"
        ]
    assert [p.name for p in tmp_path.iterdir()] == ["tree"]


def test_a_non_utf8_tree_and_output_name(tmp_path: Path) -> None:
    """Both used to be tracebacks: hashing the tree, then printing the output path."""
    tree = os.fsencode(tmp_path / "tree")
    os.mkdir(tree)
    os.close(os.open(os.path.join(tree, b"\xff"), os.O_CREAT | os.O_WRONLY, 0o644))
    out = os.path.join(os.fsencode(tmp_path), b"r\xfe.ext4")
    command = [os.fsencode(part) for part in _command("rootfs", "--from", str(tmp_path / "tree"), "--size", "4M",
                                                      cache=tmp_path / "c")]  # fmt: skip
    result = subprocess.run([*command, b"--out", out], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"rootfs " + out + b"  4.0 MiB  sha256 ")  # the name's own bytes
    assert os.path.isfile(out)


def test_missing_source_dir_and_bad_usage(tmp_path: Path) -> None:
    result = _run("rootfs", "--from", str(tmp_path / "gone"), "--out", str(tmp_path / "r"), "--size", "8M",
                  cache=tmp_path / "c")  # fmt: skip
    _one_error_line(result, "does not exist")
    result = _run("rootfs", "--out", str(tmp_path / "r"), "--size", "8M", cache=tmp_path / "c")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_unwritable_output(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    locked = tmp_path / "locked"
    locked.mkdir()
    cache = tmp_path / "cache"
    out = str(locked / "r.ext4")
    if os.geteuid() == 0:
        result = _run("rootfs", "--from", str(tree), "--out", out, "--size", "8M", cache=cache, read_only=locked)
    else:
        locked.chmod(0o555)
        try:
            result = _run("rootfs", "--from", str(tree), "--out", out, "--size", "8M", cache=cache)
        finally:
            locked.chmod(0o755)
    _one_error_line(result, "not writable")
    assert list(locked.iterdir()) == []
    result = _run("rootfs", "--from", str(tree), "--out", "/etc/hostname/r.ext4", "--size", "8M", cache=cache)
    _one_error_line(result, "not writable")
    result = _run("kernel", "--out", "/etc/hostname/k", cache=cache)
    _one_error_line(result, "/etc")


def test_all_writes_artifacts_and_a_manifest_and_rebuilds_from_cache(real_kernel: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    # The kernel comes from the persistent test cache; the rest is built fresh in this cache.
    kernel_cache = PERSISTENT_CACHE / "stockade" / "kernel"
    (cache / "kernel").mkdir(parents=True)
    for entry in kernel_cache.iterdir():
        if (entry / ".complete").is_file():
            (cache / "kernel" / entry.name).symlink_to(entry)
    first = _run("all", "--out", str(tmp_path / "one"), cache=cache)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((tmp_path / "one/manifest.json").read_text())
    assert manifest["cache"]["kernel"]["hit"] is True
    assert manifest["cache"]["initramfs"]["hit"] is False and manifest["cache"]["rootfs"]["hit"] is False
    for name, artifact in manifest["artifacts"].items():
        path = tmp_path / "one" / artifact["path"]
        assert path.exists(), name
        if "sha256" in artifact:
            digest = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True).stdout.split()[0]
            assert (artifact["sha256"], artifact["size"]) == (digest, path.stat().st_size), name
    assert manifest["kernel"]["pvh_entry"].startswith("0x")
    assert "virtio_blk.ko" in " ".join(manifest["initramfs"]["modules"])
    assert set(manifest["versions"]["packages"]) == {"linux-image-cloud-amd64", f"linux-image-{manifest['kernel']['release']}"}
    assert subprocess.run(["e2fsck", "-fn", str(tmp_path / "one/rootfs.ext4")], capture_output=True).returncode == 0

    second = _run("all", "--out", str(tmp_path / "two"), cache=cache)
    assert second.returncode == 0, second.stderr
    again = json.loads((tmp_path / "two/manifest.json").read_text())
    assert all(again["cache"][step]["hit"] for step in ("kernel", "initramfs", "rootfs"))
    assert again["artifacts"] == manifest["artifacts"]
    assert "cache hit" in second.stderr


def test_progress_redraws_on_a_terminal_and_is_plain_otherwise(tmp_path: Path) -> None:
    import pty

    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/motd").write_text("hi\n")
    command = _command("rootfs", "--from", str(tree), "--out", str(tmp_path / "r.ext4"), "--size", "8M",
                       cache=tmp_path / "cache")  # fmt: skip
    controller, terminal = pty.openpty()
    try:
        process = subprocess.run(command, stdout=subprocess.PIPE, stderr=terminal, timeout=120)
        os.close(terminal)
        terminal = -1
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the writer side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    assert process.returncode == 0
    on_terminal = b"".join(chunks).decode()
    assert "\r\x1b[Kmkfs.ext4 -d (8M): done in" in on_terminal
    plain = _run("rootfs", "--from", str(tree), "--out", str(tmp_path / "s.ext4"), "--size", "8M",
                 cache=tmp_path / "cache2")  # fmt: skip
    assert plain.returncode == 0 and "\x1b" not in plain.stderr and "\r" not in plain.stderr
    assert "mkfs.ext4 -d (8M) ...\n" in plain.stderr
