"""Kernel loaders: bzImage (64-bit boot protocol), ELF vmlinux (64-bit entry) and ELF with a
PVH note (32-bit entry), with the command line, the initrd and the boot information each
protocol hands the kernel (the zero page with e820, or PVH's hvm_start_info with a memmap).

The VMM builder calls `build_acpi_tables` first and passes the RSDP address here; CPU setup
then starts the boot vCPU from the returned `KernelEntry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from vmm.loader.errors import LoaderError

if TYPE_CHECKING:
    from vmm.loader.ram import GuestMemoryLike

__all__ = ["KernelEntry", "LoaderError", "load_kernel"]


@dataclass(frozen=True)
class KernelEntry:
    """How to start the boot vCPU.

    linux64: 64-bit long mode at `entry_address` with RSI = `boot_info_address` (zero page).
    pvh: 32-bit protected mode, paging off, at `entry_address` with RBX = `boot_info_address`
    (hvm_start_info).
    """

    protocol: Literal["linux64", "pvh"]
    entry_address: int
    boot_info_address: int


def load_kernel(
    memory: GuestMemoryLike,
    kernel_path: Path,
    *,
    cmdline: str,
    initrd_path: Path | None,
    rsdp_address: int | None,
) -> KernelEntry:
    """Load the kernel image (format detected from its bytes), the command line and the
    initrd into guest memory, write the protocol's boot information, return the entry."""
    from vmm.loader.boot import load

    return load(memory, Path(kernel_path), cmdline=cmdline, initrd_path=initrd_path, rsdp_address=rsdp_address)
