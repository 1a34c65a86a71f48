"""`rootfs-builder`: guest kernels, initramfs images and ext4 root filesystems.

Results go to stdout; progress goes to stderr (a live elapsed-time line on a terminal, plain
lines otherwise). Every failure is one ``rootfs-builder: error: ...`` line and exit 1 (2 for
bad usage), with partial outputs removed.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"rootfs-builder: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _nonempty(text: str) -> str:
    """An option value that must not be empty (an empty suite or mirror is never meant)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty value is not allowed")
    return text


def _path(text: str) -> Path:
    """A path option; ``Path("")`` is the current directory, so an empty one would silently
    build in (or cache to, or copy) whatever directory the command happens to run in."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path is not allowed")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rootfs-builder", description="Build guest kernels, initramfs and ext4 rootfs images.")
    parser.add_argument("--cache-dir", type=_path, help="cache root (default $XDG_CACHE_HOME/stockade)")
    commands = parser.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)

    kernel = commands.add_parser("kernel", help="Debian kernel: vmlinuz, vmlinux (ELF), config, modules")
    kernel.add_argument("--flavor", default="cloud", help="cloud (linux-image-cloud-amd64) or generic (linux-image-amd64)")
    kernel.add_argument("--out", type=_path, required=True, help="output directory")

    initramfs = commands.add_parser("initramfs", help="busybox initramfs loading the virtio modules")
    initramfs.add_argument("--kernel", type=_path, required=True, help="a 'rootfs-builder kernel' output directory")
    initramfs.add_argument("--out", type=_path, required=True, help="output file")
    initramfs.add_argument("--init", type=_path, help="use this script as /init instead of the default one")
    initramfs.add_argument("--command", help="what the default /init runs (default: a shell on the console)")
    initramfs.add_argument("--compress", default="gzip", help="gzip, zstd or none")

    rootfs = commands.add_parser("rootfs", help="ext4 image without loop mounts (mkfs.ext4 -d)")
    source = rootfs.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="source_dir", type=_path, help="directory tree to copy in")
    source.add_argument("--debootstrap", metavar="SUITE", type=_nonempty,
                        help="a minimal Debian (debootstrap --variant=minbase)")  # fmt: skip
    rootfs.add_argument("--mirror", default="http://deb.debian.org/debian", type=_nonempty,
                        help="Debian mirror for --debootstrap")  # fmt: skip
    rootfs.add_argument("--out", type=_path, required=True, help="output .ext4 file")
    rootfs.add_argument("--size", required=True, help="image size, e.g. 64M or 1G")

    bundle = commands.add_parser("all", help="everything the demo needs, with manifest.json")
    bundle.add_argument("--out", type=_path, required=True, help="output directory")
    bundle.add_argument("--flavor", default="cloud")
    bundle.add_argument("--compress", default="gzip")
    bundle.add_argument("--rootfs-size", default="16M")
    bundle.add_argument("--command", help="what the initramfs /init runs (default: a shell)")
    return parser


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _print_kernel(build: object) -> None:
    from rootfs_builder.kernel import KernelBuild

    assert isinstance(build, KernelBuild)
    packages = ", ".join(f"{name} {version}" for name, version in build.packages.items())
    pvh = f"PVH entry 0x{build.pvh_entry:x}" if build.pvh_entry is not None else "no PVH note (CONFIG_PVH off)"
    print(f"kernel {build.release} from {packages}")
    print(f"  payload {build.compression}, {pvh}{' (cached)' if build.cache_hit else ''}")
    for name in ("vmlinuz", "vmlinux", "config"):
        print(f"  {build.out_dir / name}  {_mib(build.sizes[name])}  sha256 {build.sha256[name]}")
    print(f"  {build.modules}/")


def _print_file(label: str, path: Path, size: int, sha256: str, hit: bool, detail: str = "") -> None:
    print(f"{label} {path}  {_mib(size)}  sha256 {sha256}{' (cached)' if hit else ''}{detail}")


def _run(args: argparse.Namespace) -> None:
    from rootfs_builder.cache import Cache
    from rootfs_builder.progress import Progress

    cache = Cache(args.cache_dir)
    progress = Progress()
    if args.subcommand == "kernel":
        from rootfs_builder.kernel import build_kernel

        _print_kernel(build_kernel(args.out, args.flavor, cache=cache, progress=progress))
    elif args.subcommand == "initramfs":
        from rootfs_builder.initramfs import build_initramfs

        built = build_initramfs(
            args.kernel, args.out, init_script=args.init, command=args.command, compression=args.compress,
            cache=cache, progress=progress,
        )  # fmt: skip
        _print_file("initramfs", built.path, built.size, built.sha256, built.cache_hit)
        print(f"  modules in load order: {', '.join(Path(m).name for m in built.modules) or 'none'}")
    elif args.subcommand == "rootfs":
        from rootfs_builder.rootfs import build_rootfs

        built = build_rootfs(
            args.out, args.size, source_dir=args.source_dir, debootstrap_suite=args.debootstrap,
            mirror=args.mirror, cache=cache, progress=progress,
        )  # fmt: skip
        _print_file("rootfs", built.path, built.size, built.sha256, built.cache_hit, f"  uuid {built.uuid}")
    else:
        from rootfs_builder.bundle import build_all

        bundle = build_all(
            args.out, flavor=args.flavor, compression=args.compress, rootfs_size=args.rootfs_size,
            command=args.command, cache=cache, progress=progress,
        )  # fmt: skip
        _print_kernel(bundle.kernel)
        _print_file("initramfs", bundle.initramfs.path, bundle.initramfs.size, bundle.initramfs.sha256,
                    bundle.initramfs.cache_hit)  # fmt: skip
        _print_file("rootfs", bundle.rootfs.path, bundle.rootfs.size, bundle.rootfs.sha256, bundle.rootfs.cache_hit)
        print(f"manifest {bundle.manifest}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Reported paths may hold non-UTF-8 bytes (surrogate-escaped); print them as the bytes
        # they are rather than fail with UnicodeEncodeError after the build has succeeded.
        sys.stdout.reconfigure(errors="surrogateescape")
    from rootfs_builder.errors import BuildError

    try:
        _run(args)
    except BuildError as error:
        print(f"rootfs-builder: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rootfs-builder: interrupted; partial outputs removed", file=sys.stderr)
        return 130
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        print(f"rootfs-builder: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
