"""A busybox initramfs whose ``/init`` brings up the virtio devices and marks the boot time.

The default ``/init`` is a busybox sh script: it mounts proc, sys and devtmpfs, insmods the
virtio modules in the order read from the kernel's ``modules.dep`` (dependencies first),
writes the boot-timer byte (123 to 0xC0000000, the VMM's boot-timer MMIO address), runs the
given command (or a shell) on the console, and powers off, which the VMM sees as an i8042
reset when the kernel runs with ``reboot=k``. Modules are stored decompressed because
busybox's insmod reads plain ELF only. ``/dev/console`` is in the archive itself because the
kernel opens it for init's stdio before ``/init`` can mount devtmpfs.
"""

from __future__ import annotations

import gzip
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rootfs_builder import busybox, cpio, kmod
from rootfs_builder.cache import Cache
from rootfs_builder.errors import BuildError
from rootfs_builder.files import check_output_file, deliver, sha256_bytes, sha256_file
from rootfs_builder.kernel import load_kernel_dir
from rootfs_builder.progress import Progress, QuietProgress

VIRTIO_MODULES = ("virtio", "virtio_ring", "virtio_mmio", "virtio_blk", "virtio_net")
COMPRESSIONS = ("gzip", "zstd", "none")
BOOT_TIMER_ADDRESS = 0xC0000000
BOOT_TIMER_VALUE = 123
_RD_CONFIG = {"gzip": "CONFIG_RD_GZIP", "zstd": "CONFIG_RD_ZSTD"}


@dataclass(frozen=True)
class InitramfsBuild:
    path: Path
    size: int
    sha256: str
    compression: str
    release: str
    modules: list[str]  # insmod order, paths relative to lib/modules/<release>
    builtin_modules: list[str]
    cache_hit: bool
    cache_key: str


def _plain_module_path(relative: str) -> str:
    for suffix in kmod.MODULE_SUFFIXES[1:]:
        if relative.endswith(suffix):
            return relative[: -len(suffix)] + ".ko"
    return relative


def default_init(release: str, module_paths: list[str], command: str | None) -> str:
    lines = [
        "#!/bin/sh",
        "# /init written by rootfs-builder: mount, load virtio modules, mark the boot time, run, power off.",
        "export PATH=/sbin:/bin:/usr/sbin:/usr/bin",
        "mount -t proc proc /proc",
        "mount -t sysfs sysfs /sys",
        "mount -t devtmpfs devtmpfs /dev",
        "# virtio modules, dependencies first (order from modules.dep)",
    ]
    for relative in module_paths:
        path = f"/lib/modules/{release}/{relative}"
        lines.append(f'insmod {path} || echo "init: insmod {path} failed" >&2')
    lines += [
        "# boot timer: the VMM logs when the guest gets here",
        f"devmem 0x{BOOT_TIMER_ADDRESS:x} 8 {BOOT_TIMER_VALUE}",
    ]
    if command is None:
        lines.append("setsid cttyhack sh")
    else:
        lines.append(f"setsid cttyhack sh -c {shlex.quote(command)}")
    lines += ["poweroff -f", ""]
    return "\n".join(lines)


def check_compression(compression: str) -> None:
    """Refuse an unknown compression, or zstd without its tool, before any work is done."""
    if compression not in COMPRESSIONS:
        raise BuildError(f"unknown compression {compression!r} (choose from {', '.join(COMPRESSIONS)})")
    if compression == "zstd" and shutil.which("zstd") is None:
        raise BuildError("--compress zstd needs the 'zstd' tool")


def compress(data: bytes, compression: str) -> bytes:
    """Deterministic compression: gzip with mtime 0, zstd single-threaded at a fixed level."""
    check_compression(compression)
    if compression == "none":
        return data
    if compression == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    result = subprocess.run(["zstd", "-10", "-q", "-c", "-T1"], input=data, capture_output=True)
    if result.returncode != 0:
        raise BuildError(f"zstd failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def _module_dirs(target: str) -> set[str]:
    parts = target.split("/")
    return {"/".join(parts[:index]) for index in range(2, len(parts))}


def build_initramfs(
    kernel_dir: Path,
    out: Path,
    *,
    init_script: Path | None = None,
    command: str | None = None,
    compression: str = "gzip",
    modules: tuple[str, ...] = VIRTIO_MODULES,
    busybox_path: Path = busybox.DEFAULT_BUSYBOX,
    cache: Cache | None = None,
    progress: Progress | None = None,
) -> InitramfsBuild:
    """Build the initramfs for the kernel in `kernel_dir` (a `build_kernel` output) at `out`.

    `init_script` replaces the default ``/init``; `command` is what the default one runs
    instead of an interactive shell.
    """
    check_compression(compression)
    if init_script is not None and command is not None:
        raise BuildError("--init replaces the default /init, which is what runs --command; give one of them")
    if init_script is not None and not Path(init_script).is_file():
        raise BuildError(f"init script {init_script} does not exist")
    check_output_file(Path(out))
    modules_dir, release, config = load_kernel_dir(Path(kernel_dir))
    option = _RD_CONFIG.get(compression)
    if option and config and config.get(option) != "y":
        raise BuildError(f"the kernel cannot unpack a {compression} initramfs ({option} is not set)")
    cache = cache or Cache()
    progress = progress or QuietProgress()
    out = Path(out)

    load_order, builtin = kmod.resolve_load_order(modules_dir, modules)
    for relative in load_order:
        if not (modules_dir / relative).is_file():
            raise BuildError(f"modules.dep lists {relative}, which is missing from {modules_dir}")
    plain_paths = [_plain_module_path(relative) for relative in load_order]
    if init_script is not None:
        init_text = Path(init_script).read_text()
    else:
        init_text = default_init(release, plain_paths, command)
    busybox_data = busybox.check_static(Path(busybox_path))
    inputs = {
        "release": release,
        "compression": compression,
        "init": sha256_bytes(init_text.encode()),
        "busybox": sha256_bytes(busybox_data),
        "modules": [[relative, sha256_file(modules_dir / relative)] for relative in load_order],
    }

    def build(entry: Path) -> None:
        with progress.step(f"packing initramfs ({len(load_order)} modules, {compression})"):
            items = busybox.entries(Path(busybox_path))
            items += [cpio.regular("init", init_text.encode(), 0o755), cpio.char_device("dev/console", 5, 1)]
            directories: set[str] = set()
            for relative, plain in zip(load_order, plain_paths):
                target = f"lib/modules/{release}/{plain}"
                directories |= _module_dirs(target)
                items.append(cpio.regular(target, kmod.read_module(modules_dir / relative)))
            items += [cpio.directory(d) for d in sorted(directories - set(busybox.BASE_DIRS))]
            (entry / "initramfs").write_bytes(compress(cpio.archive(items), compression))

    cached = cache.get_or_build("initramfs", inputs, build)
    if cached.hit:
        progress.note(f"initramfs: cache hit ({cached.key[:16]}), nothing rebuilt")
    path, size, digest = deliver(cached.path / "initramfs", out)
    return InitramfsBuild(
        path=path,
        size=size,
        sha256=digest,
        compression=compression,
        release=release,
        modules=plain_paths,
        builtin_modules=builtin,
        cache_hit=cached.hit,
        cache_key=cached.key,
    )
