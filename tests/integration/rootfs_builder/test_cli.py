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
