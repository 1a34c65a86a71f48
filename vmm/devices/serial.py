"""A 16550A UART (COM1), enough for Linux's 8250 probe, console output and input.

Interrupts are edge-style through ``raise_interrupt`` (the VMM pulses the GSI); the THR
empty interrupt fires after each transmitted byte when enabled, like vm-superio.
"""

from __future__ import annotations

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Callable

FIFO_SIZE = 64

DATA, IER, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)

IER_RDA = 0x01
IER_THRE = 0x02
IIR_NONE = 0x01
IIR_THRE = 0x02
IIR_RDA = 0x04
IIR_FIFO_BITS = 0xC0
LCR_DLAB = 0x80
MCR_LOOP = 0x10
LSR_DR = 0x01
LSR_THRE_TEMT = 0x60
MSR_DEFAULT = 0xB0


class Serial:
    def __init__(self, output: Callable[[bytes], None], raise_interrupt: Callable[[], None]) -> None:
        self._output = output
        self._raise_interrupt = raise_interrupt
        self._rx = bytearray()  # the receive FIFO (at most FIFO_SIZE bytes: popping the head is cheap)
        self.ier = 0
        self.iir = IIR_NONE
        self.lcr = 0x03
        self.mcr = 0x08
        self.scr = 0
        self.dll = 0x0C
        self.dlm = 0

    def _interrupt(self, cause: int) -> None:
        self.iir = cause
        self._raise_interrupt()

    def enqueue_input(self, data: bytes) -> int:
        """Push host input into the receive FIFO; returns how many bytes fit."""
        room = FIFO_SIZE - len(self._rx)
        accepted = data[:room]
        if not accepted:
            return 0
        was_empty = not self._rx
        self._rx.extend(accepted)
        if was_empty and self.ier & IER_RDA:
            self._interrupt(IIR_RDA)
        return len(accepted)

    @property
    def input_room(self) -> int:
        return FIFO_SIZE - len(self._rx)

    def read(self, offset: int, size: int) -> bytes:
        return bytes([self._read_register(offset)]) + bytes(size - 1)

    def _read_register(self, offset: int) -> int:
        dlab = self.lcr & LCR_DLAB
        if offset == DATA:
            if dlab:
                return self.dll
            if self.mcr & MCR_LOOP or not self._rx:
                return 0
            value = self._rx[0]
            del self._rx[0]
            if not self._rx and self.iir == IIR_RDA:
                self.iir = IIR_NONE
            return value
        if offset == IER:
            return self.dlm if dlab else self.ier
        if offset == IIR_FCR:
            value = self.iir | IIR_FIFO_BITS
            self.iir = IIR_NONE
            return value
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            return LSR_THRE_TEMT | (LSR_DR if self._rx else 0)
        if offset == MSR:
            if self.mcr & MCR_LOOP:
                mcr = self.mcr
                return ((mcr & 0x01) << 5) | ((mcr & 0x02) << 3) | ((mcr & 0x04) << 4) | ((mcr & 0x08) << 4)
            return MSR_DEFAULT
        if offset == SCR:
            return self.scr
        return 0

    def write(self, offset: int, data: bytes) -> None:
        value = data[0]
        dlab = self.lcr & LCR_DLAB
        if offset == DATA:
            if dlab:
                self.dll = value
            elif self.mcr & MCR_LOOP:
                if len(self._rx) < FIFO_SIZE:
                    self._rx.append(value)
            else:
                self._output(bytes([value]))
                if self.ier & IER_THRE:
                    self._interrupt(IIR_THRE)
        elif offset == IER:
            if dlab:
                self.dlm = value
            else:
                self.ier = value & 0x0F
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self.mcr = value
        elif offset == SCR:
            self.scr = value
