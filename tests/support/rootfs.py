"""Helpers for rootfs-builder tests: fake kernel trees, independent cpio/ext4 readers, and the
session's real Debian kernel (downloaded once into a persistent cache)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support import compile_c

# Persistent across runs on one machine, apart from the user's own builder cache.
PERSISTENT_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stockade-tests"
FAKE_RELEASE = "6.6.0-fake"


def dummy_module(path: Path, name: str, depends: list[str], build_dir: Path) -> Path:
    """A tiny relocatable ELF with a real ``.modinfo`` section, compiled by gcc (not by the
    code under test) once per session, standing in for a .ko."""
    import shutil

    built = build_dir / f"fake-module-{name}-{'-'.join(depends)}.o"
    if not built.exists():
        source = build_dir / f"fake-module-{name}.c"
        fields = [f"name={name}", f"depends={','.join(depends)}", "license=GPL"]
        source.write_text(
            "".join(
                f'static const char field{index}[] __attribute__((used, section(".modinfo"), aligned(1))) = "{field}";\n'
                for index, field in enumerate(fields)
            )
        )
        compile_c([source], built, flags=("-c", "-O0"))
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(built, path)
    return path


# name -> (relative path, direct dependencies): shaped like a real kernel's virtio stack.
FAKE_MODULES: dict[str, tuple[str, list[str]]] = {
    "virtio_ring": ("kernel/drivers/virtio/virtio_ring.ko", []),
    "virtio": ("kernel/drivers/virtio/virtio.ko", ["virtio_ring"]),
    "virtio_mmio": ("kernel/drivers/virtio/virtio_mmio.ko", ["virtio", "virtio_ring"]),
    "virtio_blk": ("kernel/drivers/block/virtio_blk.ko", ["virtio", "virtio_ring"]),
    "failover": ("kernel/net/core/failover.ko", []),
    "net_failover": ("kernel/drivers/net/net_failover.ko", ["failover"]),
    "virtio_net": ("kernel/drivers/net/virtio_net.ko", ["virtio", "virtio_ring", "net_failover"]),
    "unrelated": ("kernel/fs/unrelated.ko", []),
}


def make_fake_kernel_dir(root: Path, build_dir: Path, *, with_modules_dep: bool = True) -> Path:
    """A `rootfs-builder kernel`-shaped directory: release, config, modules/ with dummy .ko
    files and (unless asked not to) a hand-written modules.dep in depmod's format."""
    modules = root / "modules"
    modules.mkdir(parents=True)
    for name, (relative, depends) in FAKE_MODULES.items():
        dummy_module(modules / relative, name, depends, build_dir)
    if with_modules_dep:
        # Deliberately not alphabetical, and the net stack listed with its deepest dep last.
        (modules / "modules.dep").write_text(
            "kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko"
            " kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n"
            "kernel/drivers/virtio/virtio_ring.ko:\n"
            "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
            "kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
            "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko\n"
            "kernel/net/core/failover.ko:\n"
            "kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n"
            "kernel/fs/unrelated.ko:\n"
        )
    (root / "release").write_text(FAKE_RELEASE + "\n")
    (root / "config").write_text("CONFIG_RD_GZIP=y\nCONFIG_RD_ZSTD=y\nCONFIG_VIRTIO=m\n")
    return root


def cpio_listing(archive: Path) -> list[str]:
    """Member names as Debian's cpio reads them (decompressing gzip/zstd first)."""
    data = decompress_initramfs(archive)
    result = subprocess.run(["cpio", "-t", "--quiet"], input=data, capture_output=True, check=True)
    return result.stdout.decode().splitlines()


def cpio_extract(archive: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"],
        input=decompress_initramfs(archive), cwd=directory, capture_output=True, check=True,
    )  # fmt: skip
    return directory


def decompress_initramfs(archive: Path) -> bytes:
    data = archive.read_bytes()
    if data.startswith(b"\x1f\x8b"):
        return subprocess.run(["gzip", "-dc"], input=data, capture_output=True, check=True).stdout
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=True).stdout
    return data


def debugfs_cat(image: Path, path: str) -> bytes:
    result = subprocess.run(["debugfs", "-R", f"cat {path}", str(image)], capture_output=True, check=True)
    return result.stdout


def e2fsck_clean(image: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True)


def real_kernel_dir(out: Path) -> Path:
    """Debian's cloud kernel via the builder, cached persistently; skip if Debian is unreachable."""
    from rootfs_builder.cache import Cache
    from rootfs_builder.errors import BuildError
    from rootfs_builder.kernel import build_kernel

    try:
        build_kernel(out, "cloud", cache=Cache(PERSISTENT_CACHE / "stockade"))
    except BuildError as error:
        message = str(error)
        if "download" in message or "apt" in message or "unknown to apt" in message:
            pytest.skip(f"Debian's kernel package is unavailable here: {message}")
        raise
    return out
