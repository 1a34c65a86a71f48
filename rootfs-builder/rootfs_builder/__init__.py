"""`rootfs_builder`: guest kernels, initramfs images and ext4 root filesystems for the VMM.

Every build is reproducible (same inputs, same bytes) and cached by the hash of its inputs
under ``$XDG_CACHE_HOME/stockade``. The Python API mirrors the CLI:
`rootfs_builder.kernel.build_kernel`, `rootfs_builder.initramfs.build_initramfs`,
`rootfs_builder.rootfs.build_rootfs` and `rootfs_builder.bundle.build_all`, each returning a
dataclass that describes its outputs.
"""

from rootfs_builder.errors import BuildError

__all__ = ["BuildError"]
