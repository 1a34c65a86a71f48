"""Device models with fake interrupt lines and callbacks: no KVM involved."""

from __future__ import annotations

import re

from vmm.devices import serial as uart
from vmm.devices.boot_timer import BootTimer, Timestamp, boot_time_line
from vmm.devices.debug_exit import DebugExit, exit_status
from vmm.devices.i8042 import I8042
from vmm.devices.violation import ViolationDevice

FIRECRACKER_BOOT_TIME = re.compile(r"Guest-boot-time =\s+(\d+) us\s+(\d+) ms,\s+(\d+) CPU us\s+(\d+) CPU ms")


class Irq:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def make_serial() -> tuple[uart.Serial, list[bytes], Irq]:
    output: list[bytes] = []
    irq = Irq()
    return uart.Serial(output.append, irq), output, irq


def reg(device: uart.Serial, offset: int) -> int:
    return device.read(offset, 1)[0]


def test_serial_reset_values_identify_a_16550a() -> None:
    device, _, _ = make_serial()
    assert reg(device, uart.LSR) == 0x60
    assert reg(device, uart.MSR) == 0xB0
    assert reg(device, uart.IIR_FCR) == 0xC1
    assert reg(device, uart.LCR) == 0x03
    assert reg(device, uart.MCR) == 0x08


def test_serial_transmit_and_thre_interrupt() -> None:
    device, output, irq = make_serial()
    device.write(uart.DATA, b"A")
    assert output == [b"A"] and irq.count == 0
    device.write(uart.IER, b"\x02")
    device.write(uart.DATA, b"B")
    assert irq.count == 1
    assert reg(device, uart.IIR_FCR) == 0xC2
    assert reg(device, uart.IIR_FCR) == 0xC1, "reading IIR acknowledges the THR interrupt"


def test_serial_scratch_ier_and_divisor_latch() -> None:
    device, output, _ = make_serial()
    device.write(uart.SCR, b"\x5a")
    device.write(uart.IER, b"\xff")
    assert reg(device, uart.SCR) == 0x5A and reg(device, uart.IER) == 0x0F
    device.write(uart.LCR, b"\x83")
    device.write(uart.DATA, b"\x01")
    device.write(uart.IER, b"\x00")
    assert reg(device, uart.DATA) == 1 and reg(device, uart.IER) == 0
    device.write(uart.LCR, b"\x03")
    assert reg(device, uart.IER) == 0x0F and output == []


def test_serial_loopback_mirrors_mcr_into_msr_and_data() -> None:
    device, output, _ = make_serial()
    device.write(uart.MCR, bytes([0x10 | 0x0F]))
    assert reg(device, uart.MSR) == 0xF0
    device.write(uart.MCR, bytes([0x10 | 0x01]))
    assert reg(device, uart.MSR) == 0x20
    device.write(uart.DATA, b"z")
    assert output == []


def test_serial_input_sets_dr_and_raises_rda_when_enabled() -> None:
    device, _, irq = make_serial()
    device.write(uart.IER, b"\x01")
    assert device.enqueue_input(b"hi") == 2
    assert irq.count == 1
    assert reg(device, uart.LSR) & 0x01
    assert reg(device, uart.IIR_FCR) == 0xC4
    assert reg(device, uart.DATA) == ord("h") and reg(device, uart.DATA) == ord("i")
    assert not reg(device, uart.LSR) & 0x01


def test_serial_input_fifo_is_bounded() -> None:
    device, _, _ = make_serial()
    assert device.enqueue_input(bytes(100)) == uart.FIFO_SIZE
    assert device.input_room == 0 and device.enqueue_input(b"x") == 0


def test_i8042_reset_command_requests_a_reset() -> None:
    resets: list[bool] = []
    device = I8042(lambda: resets.append(True), Irq())
    assert device.read(4, 1) == b"\x10"
    device.write(4, b"\xfe")
    assert resets == [True]


def test_i8042_control_byte_and_data_ack() -> None:
    irq = Irq()
    device = I8042(lambda: None, irq)
    device.write(4, b"\x20")
    assert device.read(4, 1)[0] & 0x01
    assert device.read(0, 1) == b"\x05"
    device.write(4, b"\x60")
    device.write(0, b"\x47")
    device.write(4, b"\x20")
    assert device.read(0, 1) == b"\x47"
    device.write(0, b"\xff")
    assert device.read(0, 1) == b"\xfa" and irq.count == 1


def test_boot_timer_logs_only_the_magic_byte() -> None:
    lines: list[str] = []
    clock = iter([Timestamp(1_234_567 + 10, 40_000 + 5)])
    timer = BootTimer(Timestamp(10, 5), lines.append, clock=lambda: next(clock))
    timer.write(0, b"\x7a")
    timer.write(1, b"\x7b")
    timer.write(0, b"\x7b\x00")
    assert lines == []
    timer.write(0, b"\x7b")
    assert lines == ["Guest-boot-time = 1234567 us 1234 ms,  40000 CPU us 40 CPU ms"]
    assert FIRECRACKER_BOOT_TIME.fullmatch(lines[0])
    assert timer.read(0, 4) == bytes(4)


def test_boot_time_line_pads_like_firecracker() -> None:
    assert boot_time_line(Timestamp(0, 0), Timestamp(999, 12)) == "Guest-boot-time =    999 us 0 ms,     12 CPU us 0 CPU ms"


def test_debug_exit_status_is_value_shifted_or_one() -> None:
    statuses: list[int] = []
    device = DebugExit(statuses.append)
    device.write(0, b"\x00")
    device.write(0, b"\x03")
    assert statuses == [1, 7]
    assert exit_status(0x7F) == 0xFF


def test_violation_device_routes_request_two_to_the_main_thread_and_waits() -> None:
    asked: list[object] = []

    def main_thread(call) -> None:  # type: ignore[no-untyped-def]
        asked.append(call)
        call()  # unfiltered here: the syscall succeeds and the device stops waiting

    device = ViolationDevice(main_thread)
    device.write(0, b"\x02")
    device.write(0, b"\x07")
    assert len(asked) == 1
