"""PIO/MMIO bus dispatch: offsets relative to the base, overlaps refused, unclaimed I/O."""

from __future__ import annotations

import pytest

from vmm.bus import Bus, BusError


class Recorder:
    def __init__(self, fill: int = 0xAB) -> None:
        self.fill = fill
        self.reads: list[tuple[int, int]] = []
        self.writes: list[tuple[int, bytes]] = []

    def read(self, offset: int, size: int) -> bytes:
        self.reads.append((offset, size))
        return bytes([self.fill]) * size

    def write(self, offset: int, data: bytes) -> None:
        self.writes.append((offset, data))


def test_dispatch_uses_offsets_relative_to_the_base() -> None:
    bus = Bus("PIO")
    low, high = Recorder(1), Recorder(2)
    bus.insert(low, 0x60, 5)
    bus.insert(high, 0x3F8, 8)
    assert bus.read(0x3FD, 1) == b"\x02"
    assert bus.write(0x64, b"\xfe")
    assert high.reads == [(5, 1)] and low.writes == [(4, b"\xfe")]


def test_unclaimed_reads_are_zero_and_writes_are_dropped() -> None:
    bus = Bus("PIO")
    bus.insert(Recorder(), 0x3F8, 8)
    assert bus.read(0xCFC, 4) == bytes(4)
    assert not bus.write(0xCF8, b"\0\0\0\x80")


def test_an_access_straddling_the_end_is_unclaimed() -> None:
    bus = Bus("MMIO")
    device = Recorder()
    bus.insert(device, 0x1000, 0x10)
    assert bus.read(0x100E, 4) == bytes(4)
    assert device.reads == []


def test_short_device_answers_are_padded() -> None:
    class Short(Recorder):
        def read(self, offset: int, size: int) -> bytes:
            return b"\x07"

    bus = Bus("PIO")
    bus.insert(Short(), 0x10, 2)
    assert bus.read(0x10, 2) == b"\x07\x00"


@pytest.mark.parametrize(("base", "length"), [(0x3F0, 9), (0x3FF, 1), (0x3F8, 8), (0x3F9, 2), (0x3F0, 0x20)])
def test_overlaps_are_refused(base: int, length: int) -> None:
    bus = Bus("PIO")
    bus.insert(Recorder(), 0x3F8, 8)
    with pytest.raises(BusError, match="overlaps"):
        bus.insert(Recorder(), base, length)


def test_adjacent_ranges_and_empty_ranges() -> None:
    bus = Bus("PIO")
    bus.insert(Recorder(), 0x10, 8)
    bus.insert(Recorder(), 0x8, 8)
    bus.insert(Recorder(), 0x18, 8)
    with pytest.raises(BusError, match="empty"):
        bus.insert(Recorder(), 0x40, 0)


def test_lock_for_names_the_device_lock() -> None:
    bus = Bus("PIO")
    bus.insert(Recorder(), 0x3F8, 8)
    with bus.lock_for(0x3F8):
        pass
    with pytest.raises(BusError):
        bus.lock_for(0x2F8)
