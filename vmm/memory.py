"""Guest RAM: anonymous host mappings registered with KVM as memory slots.

The memory map is a contract shared with the loader and ACPI code: RAM runs from 0
up to ``min(size, MMIO32_START)``; any remainder starts at 4 GiB, leaving the
32-bit MMIO hole (boot timer, virtio-mmio, IOAPIC, LAPIC) below 4 GiB free.
"""

from __future__ import annotations

import mmap

from vmm.errors import GuestMemoryError

MMIO32_START = 0xC000_0000
HIGH_RAM_START = 0x1_0000_0000
BOOT_TIMER_ADDRESS = 0xC000_0000
BOOT_TIMER_SIZE = 0x1000
VIRTIO_MMIO_START = BOOT_TIMER_ADDRESS + BOOT_TIMER_SIZE
VIRTIO_MMIO_SIZE = 0x1000
IOAPIC_ADDRESS = 0xFEC0_0000
LAPIC_ADDRESS = 0xFEE0_0000


def ram_regions(size: int) -> list[tuple[int, int]]:
    """The (guest-physical start, length) ranges that hold ``size`` bytes of RAM."""
    if size <= 0:
        raise GuestMemoryError(f"guest memory size must be positive, got {size}")
    low = min(size, MMIO32_START)
    regions = [(0, low)]
    if size > low:
        regions.append((HIGH_RAM_START, size - low))
    return regions


class GuestMemory:
    """Guest RAM backed by private anonymous mmaps, one per region.

    Each region is its own mapping so that KVM gets one slot per contiguous
    guest-physical range; ``host_address`` gives the userspace address KVM needs.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.regions: list[tuple[int, int]] = ram_regions(size)
        self._maps: list[mmap.mmap] = []
        try:
            for _start, length in self.regions:
                # MAP_NORESERVE: guest RAM is touched lazily; no commit charge up front.
                flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0)
                self._maps.append(mmap.mmap(-1, length, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE))
        except OSError as error:
            self.close()
            raise GuestMemoryError(f"cannot map {size} bytes of guest memory: {error.strerror}") from None

    def host_address(self, index: int) -> int:
        """Userspace address of region ``index`` (for KVM_SET_USER_MEMORY_REGION)."""
        from jailer.native import addressof, c_char

        return addressof(c_char.from_buffer(self._maps[index]))

    def _locate(self, gpa: int, length: int) -> tuple[mmap.mmap, int]:
        if gpa < 0 or length < 0:
            raise GuestMemoryError(f"invalid guest access at {gpa:#x} length {length}")
        for (start, region_length), backing in zip(self.regions, self._maps):
            if start <= gpa and gpa + length <= start + region_length:
                return backing, gpa - start
        raise GuestMemoryError(f"guest range {gpa:#x}..{gpa + length:#x} is outside guest RAM")

    def read(self, gpa: int, length: int) -> bytes:
        backing, offset = self._locate(gpa, length)
        return backing[offset : offset + length]

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        backing, offset = self._locate(gpa, len(view))
        backing[offset : offset + len(view)] = view

    def contains(self, gpa: int, length: int = 1) -> bool:
        try:
            self._locate(gpa, length)
        except GuestMemoryError:
            return False
        return True

    def close(self) -> None:
        for backing in self._maps:
            try:
                backing.close()
            except BufferError:
                pass  # a ctypes view still points at it; the mapping dies with the process
        self._maps = []
