"""`rootfs-builder all`: the kernel, initramfs and a small rootfs the demo boots, plus a
manifest that records what was built, from what, and which steps the cache answered.

The manifest holds no timestamps, so it is as reproducible as the artifacts it lists.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rootfs_builder import busybox, cpio
from rootfs_builder.cache import Cache
from rootfs_builder.errors import BuildError
from rootfs_builder.files import check_output_dir, output_dir, output_file
from rootfs_builder.initramfs import InitramfsBuild, build_initramfs, check_compression
from rootfs_builder.kernel import KernelBuild, build_kernel, check_flavor
from rootfs_builder.progress import Progress, QuietProgress
from rootfs_builder.rootfs import RootfsBuild, build_rootfs, parse_size, source_date_epoch

BUILDER_VERSION = "0.1.0"
INITRAMFS_NAMES = {"gzip": "initramfs.cpio.gz", "zstd": "initramfs.cpio.zst", "none": "initramfs.cpio"}


@dataclass(frozen=True)
class BundleBuild:
    out_dir: Path
    manifest: Path
    kernel: KernelBuild
    initramfs: InitramfsBuild
    rootfs: RootfsBuild


def e2fsprogs_version() -> str:
    result = subprocess.run(["mke2fs", "-V"], capture_output=True, text=True)
    lines = (result.stderr or result.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"


def small_rootfs_tree(root: Path, busybox_path: Path) -> None:
    """A busybox userland with the few /etc files a shell login expects."""
    items = busybox.entries(busybox_path)
    items += [
        cpio.regular("etc/hostname", b"stockade-guest\n"),
        cpio.regular("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        cpio.regular("etc/group", b"root:x:0:\n"),
        cpio.regular("etc/os-release", b'NAME="Stockade busybox rootfs"\nID=stockade\n'),
    ]
    busybox.materialize(items, root)


def check_arguments(
    out_dir: Path, *, flavor: str, compression: str, rootfs_size: str, busybox_path: Path = busybox.DEFAULT_BUSYBOX
) -> None:
    """Refuse every bad input `build_all` can know about before it fetches anything.

    The kernel step comes first and may download tens of MB; an option that only the
    initramfs or rootfs step reads (or SOURCE_DATE_EPOCH) must not fail after it.
    """
    check_flavor(flavor)
    check_compression(compression)
    parse_size(rootfs_size)
    source_date_epoch()
    busybox.check_static(Path(busybox_path))
    check_output_dir(
        Path(out_dir), files=(INITRAMFS_NAMES[compression], "rootfs.ext4", "manifest.json"), dirs=("kernel",)
    )


def _artifact(path: Path, out_dir: Path, size: int, sha256: str) -> dict[str, Any]:
    return {"path": str(path.relative_to(out_dir)), "size": size, "sha256": sha256}


def build_all(
    out_dir: Path,
    *,
    flavor: str = "cloud",
    compression: str = "gzip",
    rootfs_size: str = "16M",
    command: str | None = None,
    busybox_path: Path = busybox.DEFAULT_BUSYBOX,
    cache: Cache | None = None,
    progress: Progress | None = None,
) -> BundleBuild:
    cache = cache or Cache()
    progress = progress or QuietProgress()
    out_dir = Path(out_dir).absolute()
    check_arguments(
        out_dir, flavor=flavor, compression=compression, rootfs_size=rootfs_size, busybox_path=busybox_path
    )
    with output_dir(out_dir) as staging:
        # Build into the staging directory, then rebase the reported paths onto out_dir.
        kernel = build_kernel(staging / "kernel", flavor, cache=cache, progress=progress)
        initramfs = build_initramfs(
            staging / "kernel", staging / INITRAMFS_NAMES[compression], compression=compression, command=command,
            busybox_path=busybox_path, cache=cache, progress=progress,
        )  # fmt: skip
        cache.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".small-rootfs.", dir=cache.root) as work:
            small_rootfs_tree(Path(work), busybox_path)
            rootfs = build_rootfs(
                staging / "rootfs.ext4", rootfs_size, source_dir=Path(work), cache=cache, progress=progress
            )
        manifest: dict[str, Any] = {
            "builder": {"name": "rootfs-builder", "version": BUILDER_VERSION},
            "artifacts": {
                **{
                    name: _artifact(staging / "kernel" / name, staging, kernel.sizes[name], kernel.sha256[name])
                    for name in ("vmlinuz", "vmlinux", "config")
                },
                "modules": {"path": "kernel/modules"},
                "initramfs": _artifact(initramfs.path, staging, initramfs.size, initramfs.sha256),
                "rootfs": _artifact(rootfs.path, staging, rootfs.size, rootfs.sha256),
            },
            "kernel": {
                "release": kernel.release,
                "flavor": kernel.flavor,
                "payload_compression": kernel.compression,
                "pvh_entry": None if kernel.pvh_entry is None else hex(kernel.pvh_entry),
            },
            "initramfs": {"compression": compression, "modules": initramfs.modules, "builtin": initramfs.builtin_modules},
            "rootfs": {"source": "busybox", "uuid": rootfs.uuid, "size": rootfs.size},
            "versions": {
                "packages": kernel.packages,
                "busybox": busybox.version(busybox_path),
                "e2fsprogs": e2fsprogs_version(),
            },
            "inputs": {
                "flavor": flavor,
                "compression": compression,
                "rootfs_size": rootfs_size,
                "command": command,
                "source_date_epoch": source_date_epoch(),
            },
            "cache": {
                "root": str(cache.root),
                "kernel": {"hit": kernel.cache_hit, "key": kernel.cache_key},
                "initramfs": {"hit": initramfs.cache_hit, "key": initramfs.cache_key},
                "rootfs": {"hit": rootfs.cache_hit, "key": rootfs.cache_key},
            },
        }
        with output_file(staging / "manifest.json") as temporary:
            temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if not (out_dir / "manifest.json").is_file():
        raise BuildError(f"{out_dir}/manifest.json was not written")
    return BundleBuild(
        out_dir=out_dir,
        manifest=out_dir / "manifest.json",
        kernel=_rebase(kernel, out_dir),
        initramfs=_rebase(initramfs, out_dir),
        rootfs=_rebase(rootfs, out_dir),
    )


def _rebase(build: Any, out_dir: Path) -> Any:
    """The same build record with paths pointing into out_dir instead of the staging dir."""
    import dataclasses

    changes = {}
    for field in dataclasses.fields(build):
        value = getattr(build, field.name)
        if isinstance(value, Path) and ".partial" in str(value):
            parts = value.parts
            index = next(i for i, part in enumerate(parts) if part.endswith(".partial"))
            changes[field.name] = out_dir.joinpath(*parts[index + 1 :])
    return dataclasses.replace(build, **changes)
