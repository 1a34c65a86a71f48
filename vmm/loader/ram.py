"""Questions the loaders ask about the guest's RAM regions (any object with the
GuestMemory interface: `size`, `regions`, `read`, `write`).

`GuestMemoryLike` exists for type checkers only (start-up path: see `vmm`).
"""

from __future__ import annotations

from vmm.loader.errors import LoaderError

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from typing import Protocol

    class GuestMemoryLike(Protocol):
        """What the loaders and ACPI need of vmm.memory.GuestMemory (unit tests pass a fake)."""

        size: int
        regions: list[tuple[int, int]]

        def read(self, gpa: int, length: int) -> bytes: ...

        def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None: ...


def containing_region(memory: GuestMemoryLike, start: int, end: int) -> tuple[int, int] | None:
    for region_start, length in memory.regions:
        if region_start <= start and end <= region_start + length:
            return region_start, length
    return None


def require_ram(memory: GuestMemoryLike, start: int, end: int, what: str) -> None:
    """Fail with the sizes involved when [start, end) is not all guest RAM."""
    if containing_region(memory, start, end) is None:
        raise LoaderError(
            f"{what} needs guest RAM at {start:#x}..{end:#x}, "
            f"beyond the guest's {memory.size >> 20} MiB"
        )


def low_ram_end(memory: GuestMemoryLike) -> int:
    """End of the RAM region that starts at 0 (everything below the 32-bit MMIO hole)."""
    for region_start, length in memory.regions:
        if region_start == 0:
            return length
    raise LoaderError("guest memory has no RAM region at address 0")
