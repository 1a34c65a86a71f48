"""Address-range dispatch of PIO and MMIO exits to device models.

Devices see offsets relative to their base and know nothing of KVM; unclaimed reads
return zeros and unclaimed writes are dropped, as on a real ISA bus (the Linux kernel
probes ports nothing answers).
`BusDevice` exists for type checkers only (start-up path: see `vmm`).
"""

from __future__ import annotations

# The C functions `bisect` re-exports, without loading its module (start-up path: see `vmm`).
from _bisect import bisect_left, bisect_right

from vmm.threads import Lock

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from _thread import LockType
    from typing import Protocol

    class BusDevice(Protocol):
        def read(self, offset: int, size: int) -> bytes: ...

        def write(self, offset: int, data: bytes) -> None: ...


class BusError(ValueError):
    """Two devices claim overlapping ranges, or a range is empty."""


class _Range:
    __slots__ = ("base", "length", "device", "lock")

    def __init__(self, base: int, length: int, device: BusDevice) -> None:
        self.base = base
        self.length = length
        self.device = device
        self.lock = Lock()


class Bus:
    """Non-overlapping ranges sorted by base; each device is serialised by its own lock
    because several vCPU threads may touch it at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._ranges: list[_Range] = []
        self._bases: list[int] = []
        self._cache: dict[tuple[int, int], _Range | None] = {}

    def insert(self, device: BusDevice, base: int, length: int) -> None:
        if length <= 0:
            raise BusError(f"{self.name} bus: empty range at {base:#x}")
        index = bisect_left(self._bases, base)
        before = self._ranges[index - 1] if index > 0 else None
        after = self._ranges[index] if index < len(self._ranges) else None
        if (before and before.base + before.length > base) or (after and base + length > after.base):
            raise BusError(f"{self.name} bus: {base:#x}+{length:#x} overlaps another device")
        self._ranges.insert(index, _Range(base, length, device))
        self._bases.insert(index, base)
        self._cache.clear()

    def _find(self, address: int, size: int) -> _Range | None:
        # Guests hit few addresses over and over (a UART's registers): remember the answers.
        key = (address, size)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._search(address, size)
        if len(self._cache) < 4096:
            self._cache[key] = found
        return found

    def _search(self, address: int, size: int) -> _Range | None:
        index = bisect_right(self._bases, address) - 1
        if index < 0:
            return None
        candidate = self._ranges[index]
        if address + size <= candidate.base + candidate.length:
            return candidate
        return None

    def lock_for(self, address: int) -> LockType:
        """The lock serialising the device at ``address``, for host-side access (e.g. input)."""
        found = self._find(address, 1)
        if found is None:
            raise BusError(f"{self.name} bus: no device at {address:#x}")
        return found.lock

    def read(self, address: int, size: int) -> bytes:
        found = self._find(address, size)
        if found is None:
            return bytes(size)
        with found.lock:
            data = found.device.read(address - found.base, size)
        return data[:size].ljust(size, b"\0")

    def write(self, address: int, data: bytes) -> bool:
        """Deliver a write; False when no device claims the address."""
        found = self._find(address, len(data))
        if found is None:
            return False
        with found.lock:
            found.device.write(address - found.base, data)
        return True
