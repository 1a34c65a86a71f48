"""Guest-physical addresses the loaders write to, shared with CPU setup and ACPI.

These follow the reference memory map (Firecracker's x86_64 layout): everything below 1 MiB
that the VMM owns sits in fixed pages so CPU setup (GDT 0x500, page tables 0x9000..0xBFFF,
stack 0x8FF0) and the loaders never overlap.
"""

from __future__ import annotations

PAGE_SIZE = 0x1000
MIB = 1 << 20
GIB = 1 << 30

# PVH `struct hvm_start_info` and its module list (the initrd), then the memory map table.
PVH_START_INFO_ADDRESS = 0x6000
PVH_MODLIST_ADDRESS = 0x6040
PVH_MEMMAP_ADDRESS = 0x7000  # PVH has no zero page, so the memmap reuses that page
PVH_MEMMAP_MAX_ENTRIES = (PAGE_SIZE) // 24

# Linux `struct boot_params` (the "zero page").
ZERO_PAGE_ADDRESS = 0x7000
ZERO_PAGE_SIZE = PAGE_SIZE

# Kernel command line: the kernel's own maximum is 2047 bytes plus the NUL.
CMDLINE_ADDRESS = 0x20000
CMDLINE_MAX_SIZE = 2048

# Low RAM ends where the EBDA-style "system area" (MP/ACPI tables) starts; it is reserved
# up to 1 MiB, which also covers the legacy VGA/BIOS window the kernel never uses as RAM.
EBDA_START = 0x9FC00
SYSTEM_AREA_END = 0x100000

# ACPI tables live in the BIOS area; the kernel finds the RSDP through boot_params/start_info
# and, failing that, by scanning 0xE0000..0xFFFFF.
ACPI_RSDP_ADDRESS = 0xE0000
ACPI_AREA_END = 0x100000

# Protected-mode kernel / ELF images are loaded from 1 MiB ("HIMEM_START").
KERNEL_LOAD_ADDRESS = 0x100000
BZIMAGE_64BIT_ENTRY_OFFSET = 0x200

# Memory map rule shared with vmm.memory: RAM below the 32-bit MMIO hole, the rest above 4 GiB.
MMIO32_START = 0xC000_0000
MMIO32_END = 0x1_0000_0000
BOOT_TIMER_ADDRESS = MMIO32_START
IOAPIC_ADDRESS = 0xFEC0_0000
LAPIC_ADDRESS = 0xFEE0_0000

INITRD_ALIGNMENT = PAGE_SIZE
