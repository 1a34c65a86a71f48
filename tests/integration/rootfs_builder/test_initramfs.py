"""Initramfs images checked with Debian's cpio and busybox, not with the builder's own code."""

from __future__ import annotations

import lzma
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rootfs_builder.cache import Cache
from rootfs_builder.errors import BuildError
from rootfs_builder.initramfs import build_initramfs
from support.rootfs import FAKE_MODULES, FAKE_RELEASE, cpio_extract, cpio_listing, make_fake_kernel_dir

VIRTIO_STACK = ["virtio", "virtio_ring", "virtio_mmio", "virtio_blk", "virtio_net", "net_failover", "failover"]


@pytest.fixture
def fake_kernel(tmp_path: Path, c_build_dir: Path) -> Path:
    return make_fake_kernel_dir(tmp_path / "kernel", c_build_dir)


def _dependencies(modules_dep: str) -> dict[str, list[str]]:
    """An independent reading of depmod's format: 'module: dep dep ...'."""
    return {
        line.split(":")[0]: line.split(":")[1].split()
        for line in modules_dep.splitlines()
        if ":" in line
    }


def _insmod_order(init_text: str, release: str) -> list[str]:
    prefix = f"/lib/modules/{release}/"
    return [
        match.group(1).removeprefix(prefix)
        for match in re.finditer(r"^insmod (\S+)", init_text, flags=re.MULTILINE)
    ]


def test_listing_has_init_busybox_console_and_exactly_the_virtio_modules(fake_kernel: Path, tmp_path: Path) -> None:
    out = tmp_path / "initramfs.cpio.gz"
    build_initramfs(fake_kernel, out, cache=Cache(tmp_path / "cache"))
    names = cpio_listing(out)
    assert names == sorted(names), "entries are not sorted"
    for required in ("init", "bin/busybox", "bin/sh", "sbin/poweroff", "dev/console", "proc", "sys", "dev"):
        assert required in names, required
    modules = sorted(name for name in names if name.endswith(".ko"))
    expected = sorted(f"lib/modules/{FAKE_RELEASE}/{FAKE_MODULES[name][0]}" for name in VIRTIO_STACK)
    assert modules == expected  # the unrelated module is left out


def test_init_loads_modules_in_modules_dep_order_and_marks_boot_time(fake_kernel: Path, tmp_path: Path) -> None:
    out = tmp_path / "initramfs.cpio"
    build_initramfs(fake_kernel, out, compression="none", cache=Cache(tmp_path / "cache"))
    root = cpio_extract(out, tmp_path / "extracted")
    init = (root / "init").read_text()
    assert (root / "init").stat().st_mode & 0o111
    order = _insmod_order(init, FAKE_RELEASE)
    dependencies = _dependencies((fake_kernel / "modules/modules.dep").read_text())
    assert sorted(order) == sorted(FAKE_MODULES[name][0] for name in VIRTIO_STACK)
    for position, module in enumerate(order):
        for dependency in dependencies[module]:
            assert order.index(dependency) < position, f"{module} is loaded before {dependency}"
    lines = init.splitlines()
    mounts = [line for line in lines if line.startswith("mount ")]
    assert [line.split()[2] for line in mounts] == ["proc", "sysfs", "devtmpfs"]
    devmem = lines.index("devmem 0xc0000000 8 123")
    assert devmem > max(lines.index(line) for line in lines if line.startswith("insmod "))
    assert lines[-1] == "poweroff -f"
    # busybox's own shell accepts the script.
    subprocess.run([str(root / "bin/busybox"), "sh", "-n", str(root / "init")], check=True)


def test_init_runs_mounts_and_the_given_command_under_busybox(fake_kernel: Path, tmp_path: Path) -> None:
    out = tmp_path / "initramfs.cpio"
    build_initramfs(fake_kernel, out, compression="none", command="echo guest says hi", cache=Cache(tmp_path / "c"))
    init = (cpio_extract(out, tmp_path / "x") / "init").read_text()
    assert "setsid cttyhack sh -c 'echo guest says hi'" in init.splitlines()


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_two_builds_are_byte_identical(fake_kernel: Path, tmp_path: Path, compression: str) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    a = build_initramfs(fake_kernel, first, compression=compression, cache=Cache(tmp_path / "cache-a"))
    b = build_initramfs(fake_kernel, second, compression=compression, cache=Cache(tmp_path / "cache-b"))
    assert not a.cache_hit and not b.cache_hit
    assert first.read_bytes() == second.read_bytes()
    assert a.sha256 == b.sha256


def test_second_run_uses_the_cache_and_says_so(fake_kernel: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "rootfs_builder.cli", "--cache-dir", str(tmp_path / "cache"), "initramfs",
               "--kernel", str(fake_kernel), "--out", str(tmp_path / "i.gz")]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "cache hit" not in first.stderr and "packing initramfs" in first.stderr
    second = subprocess.run(command, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "initramfs: cache hit" in second.stderr and "packing initramfs" not in second.stderr
    assert "(cached)" in second.stdout


def test_compressed_modules_are_stored_decompressed(fake_kernel: Path, tmp_path: Path) -> None:
    modules = fake_kernel / "modules"
    relative = FAKE_MODULES["virtio_blk"][0]
    original = (modules / relative).read_bytes()
    (modules / f"{relative}.xz").write_bytes(lzma.compress(original, format=lzma.FORMAT_XZ))
    (modules / relative).unlink()
    dep = modules / "modules.dep"
    dep.write_text(dep.read_text().replace(f"{relative}:", f"{relative}.xz:"))
    out = tmp_path / "i.cpio"
    build_initramfs(fake_kernel, out, compression="none", cache=Cache(tmp_path / "cache"))
    root = cpio_extract(out, tmp_path / "x")
    assert (root / f"lib/modules/{FAKE_RELEASE}/{relative}").read_bytes() == original
    assert f"/lib/modules/{FAKE_RELEASE}/{relative}" in (root / "init").read_text()


def test_custom_init_replaces_the_default(fake_kernel: Path, tmp_path: Path) -> None:
    script = tmp_path / "my-init"
    script.write_text("#!/bin/sh\necho custom\npoweroff -f\n")
    out = tmp_path / "i.cpio"
    build_initramfs(fake_kernel, out, init_script=script, compression="none", cache=Cache(tmp_path / "cache"))
    assert (cpio_extract(out, tmp_path / "x") / "init").read_text() == script.read_text()


def test_a_kernel_without_the_initramfs_decompressor_is_refused(fake_kernel: Path, tmp_path: Path) -> None:
    (fake_kernel / "config").write_text("CONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n")
    with pytest.raises(BuildError, match="CONFIG_RD_ZSTD"):
        build_initramfs(fake_kernel, tmp_path / "i", compression="zstd", cache=Cache(tmp_path / "cache"))
    assert list(tmp_path.glob("i*")) == []


def test_real_kernel_initramfs_lists_virtio_modules_in_dependency_order(real_kernel: Path, tmp_path: Path) -> None:
    out = tmp_path / "initramfs.cpio.gz"
    built = build_initramfs(real_kernel, out, cache=Cache(tmp_path / "cache"))
    release = (real_kernel / "release").read_text().strip()
    names = cpio_listing(out)
    loaded = {Path(name).name for name in names if name.endswith(".ko")}
    assert {"virtio.ko", "virtio_ring.ko", "virtio_mmio.ko", "virtio_blk.ko", "virtio_net.ko"} <= loaded
    init = (cpio_extract(out, tmp_path / "x") / "init").read_text()
    order = _insmod_order(init, release)
    assert order == built.modules
    dependencies = _dependencies((real_kernel / "modules/modules.dep").read_text())
    for position, module in enumerate(order):
        for dependency in dependencies[module]:
            assert order.index(dependency) < position, f"{module} is loaded before {dependency}"


def test_real_kernel_boots_the_initramfs_loads_virtio_and_powers_off(real_kernel: Path, tmp_path: Path) -> None:
    """End to end under QEMU's TCG (this host's PVM /dev/kvm cannot run a stock kernel): the
    default /init mounts, loads the modules (their drivers register), runs the command and
    powers off, so QEMU exits by itself."""
    import shutil

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    out = tmp_path / "initramfs.cpio.gz"
    command = "echo STOCKADE-INIT-RAN; ls /sys/bus/virtio/drivers; grep -c . /proc/modules"
    build_initramfs(real_kernel, out, command=command, cache=Cache(tmp_path / "cache"))
    console = tmp_path / "console.log"
    result = subprocess.run(
        ["qemu-system-x86_64", "-M", "pc", "-accel", "tcg", "-m", "512", "-display", "none", "-no-reboot",
         "-kernel", str(real_kernel / "vmlinuz"), "-initrd", str(out),
         "-append", "console=ttyS0 reboot=k panic=-1 quiet", "-serial", f"file:{console}"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    output = console.read_text(errors="replace")
    assert result.returncode == 0, result.stderr
    lines = output.splitlines()
    assert "STOCKADE-INIT-RAN" in lines, output[-2000:]
    drivers = lines[lines.index("STOCKADE-INIT-RAN") + 1].split()
    assert {"virtio_blk", "virtio_net"} <= set(drivers), output[-2000:]
    assert "insmod" not in output  # no "init: insmod ... failed" line
    assert "Kernel panic" not in output
