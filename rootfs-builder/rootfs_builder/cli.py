"""`rootfs-builder`: guest kernels, initramfs and root filesystems (being built)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print("rootfs-builder: builds guest kernels, initramfs images and ext4 root filesystems.")
        return 0
    print("rootfs-builder: not implemented yet", file=sys.stderr)
    return 1
