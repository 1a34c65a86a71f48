"""An exit port compatible with QEMU's isa-debug-exit: writing v ends the VMM with
status (v << 1) | 1, so test guests can report pass/fail through the exit status."""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Callable

PORT = 0xF4


def exit_status(value: int) -> int:
    return ((value << 1) | 1) & 0xFF


class DebugExit:
    def __init__(self, request_exit: Callable[[int], None]) -> None:
        self._request_exit = request_exit

    def read(self, offset: int, size: int) -> bytes:
        return bytes(size)

    def write(self, offset: int, data: bytes) -> None:
        self._request_exit(exit_status(int.from_bytes(data, "little")))
