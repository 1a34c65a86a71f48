"""The i8042 keyboard controller, reduced to what guests use it for: the CPU reset line.

Command 0xFE on port 0x64 asks the VMM (through ``request_reset``) to end the VM cleanly,
which is how Linux with ``reboot=k`` reboots.
"""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Callable

DATA_OFFSET = 0
COMMAND_OFFSET = 4

CMD_READ_CTR = 0x20
CMD_WRITE_CTR = 0x60
CMD_READ_OUTP = 0xD0
CMD_WRITE_OUTP = 0xD1
CMD_RESET_CPU = 0xFE

STATUS_OUTPUT_FULL = 0x01
STATUS_KBD_ENABLED = 0x10
ACK = 0xFA


class I8042:
    def __init__(self, request_reset: Callable[[], None], raise_interrupt: Callable[[], None]) -> None:
        self._request_reset = request_reset
        self._raise_interrupt = raise_interrupt
        self.status = STATUS_KBD_ENABLED
        self.control = 0x05
        self.outp = 0
        self._pending_command = 0
        self._output: int | None = None

    def _push(self, value: int) -> None:
        self._output = value
        self.status |= STATUS_OUTPUT_FULL

    def read(self, offset: int, size: int) -> bytes:
        if offset == COMMAND_OFFSET:
            return bytes([self.status]) + bytes(size - 1)
        if offset == DATA_OFFSET:
            value = self._output or 0
            self._output = None
            self.status &= ~STATUS_OUTPUT_FULL
            return bytes([value]) + bytes(size - 1)
        return bytes(size)

    def write(self, offset: int, data: bytes) -> None:
        value = data[0]
        if offset == COMMAND_OFFSET:
            if value == CMD_RESET_CPU:
                self._request_reset()
            elif value == CMD_READ_CTR:
                self._push(self.control)
            elif value == CMD_READ_OUTP:
                self._push(self.outp)
            elif value in (CMD_WRITE_CTR, CMD_WRITE_OUTP):
                self._pending_command = value
        elif offset == DATA_OFFSET:
            if self._pending_command == CMD_WRITE_CTR:
                self.control = value
            elif self._pending_command == CMD_WRITE_OUTP:
                self.outp = value
            else:
                self._push(ACK)
                self._raise_interrupt()
            self._pending_command = 0
