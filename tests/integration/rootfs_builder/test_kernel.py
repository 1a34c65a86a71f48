"""Debian's kernel through `rootfs-builder kernel`: bzImage, ELF vmlinux with the PVH note,
config, modules with a modules.dep, and the cache."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from rootfs_builder.elf import pvh_entry
from support.rootfs import PERSISTENT_CACHE


def test_vmlinux_is_a_valid_elf_with_the_pvh_note(real_kernel: Path) -> None:
    header = subprocess.run(["readelf", "-h", str(real_kernel / "vmlinux")], capture_output=True, text=True)
    assert header.returncode == 0, header.stderr
    assert re.search(r"Class:\s+ELF64", header.stdout)
    assert re.search(r"Machine:\s+Advanced Micro Devices X86-64", header.stdout)
    assert re.search(r"Type:\s+EXEC", header.stdout)
    notes = subprocess.run(["readelf", "-n", str(real_kernel / "vmlinux")], capture_output=True, text=True).stdout
    # XEN_ELFNOTE_PHYS32_ENTRY = 18: readelf names the owner "Xen" but not this type.
    match = re.search(r"^\s+Xen\s+0x[0-9a-f]+\s+.*\(0x00000012\)\n\s+description data: ([0-9a-f ]+)", notes, re.M)
    assert match, "no Xen PVH entry note (type 18) in vmlinux"
    entry = int.from_bytes(bytes.fromhex(match.group(1).replace(" ", "")), "little")
    assert entry == pvh_entry((real_kernel / "vmlinux").read_bytes())
    assert "CONFIG_PVH=y" in (real_kernel / "config").read_text().splitlines()


def test_bzimage_config_release_and_modules(real_kernel: Path) -> None:
    vmlinuz = (real_kernel / "vmlinuz").read_bytes()
    assert vmlinuz[:2] == b"MZ" and vmlinuz[0x202:0x206] == b"HdrS"
    release = (real_kernel / "release").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+-\d+-cloud-amd64", release)
    modules_dep = (real_kernel / "modules/modules.dep").read_text()
    assert re.search(r"^kernel/drivers/block/virtio_blk\.ko(\.\w+)?:.*virtio\.ko", modules_dep, re.M)
    assert (real_kernel / "modules/modules.order").is_file()


def test_second_run_is_a_cache_hit_with_identical_outputs(real_kernel: Path, tmp_path: Path) -> None:
    out = tmp_path / "kernel"
    command = [sys.executable, "-m", "rootfs_builder.cli", "--cache-dir", str(PERSISTENT_CACHE / "stockade"),
               "kernel", "--flavor", "cloud", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "kernel: cache hit" in result.stderr and "downloading" not in result.stderr
    for name in ("vmlinuz", "vmlinux", "config"):
        assert (out / name).read_bytes() == (real_kernel / name).read_bytes()
        digest = subprocess.run(["sha256sum", str(out / name)], capture_output=True, text=True).stdout.split()[0]
        assert f"sha256 {digest}" in result.stdout
    assert re.search(r"payload (lz4|gzip|xz|lzma|zstd|bzip2|lzo), PVH entry 0x[0-9a-f]+", result.stdout)
