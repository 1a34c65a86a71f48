"""Kernel loaders: bzImage (64-bit boot protocol), ELF vmlinux (64-bit entry) and ELF with a
PVH note (32-bit entry), with the command line, the initrd and the boot information each
protocol hands the kernel (the zero page with e820, or PVH's hvm_start_info with a memmap).

The VMM builder calls `build_acpi_tables` first and passes the RSDP address to
`load_kernel`; CPU setup then starts the boot vCPU from the returned `KernelEntry`.
"""

from __future__ import annotations

from vmm.loader.boot import load_kernel
from vmm.loader.entry import KernelEntry
from vmm.loader.errors import LoaderError

__all__ = ["KernelEntry", "LoaderError", "load_kernel"]
