"""Where the initrd goes: as high as possible in low RAM, so the kernel's decompression
window (which grows upward from the load address) never runs into it."""

from __future__ import annotations

from vmm.loader.errors import LoaderError
from vmm.loader.layout import INITRD_ALIGNMENT, MMIO32_START
from vmm.loader.ram import low_ram_end

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from vmm.loader.ram import GuestMemoryLike


def place_initrd(memory: GuestMemoryLike, size: int, *, kernel_end: int, address_max: int) -> int:
    """Highest INITRD_ALIGNMENT-aligned address with the initrd below both the end of low
    RAM and `address_max` (the last byte the kernel accepts, boot.rst initrd_addr_max),
    and above `kernel_end`."""
    ceiling = min(low_ram_end(memory), MMIO32_START, address_max + 1)
    address = (ceiling - size) // INITRD_ALIGNMENT * INITRD_ALIGNMENT
    if size == 0 or address < kernel_end:
        available = max(0, ceiling - kernel_end) >> 20
        raise LoaderError(
            f"initrd of {size} bytes does not fit in guest memory: {available} MiB free "
            f"between the kernel's end ({kernel_end:#x}) and {ceiling:#x}"
        )
    return address
