"""Firecracker's boot-timer device: the guest writes the byte 123 at offset 0 when it has
booted, and the VMM logs the wall and CPU time since the VM build started.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Callable

MAGIC_BOOT_COMPLETE = 123


class Timestamp:
    """CLOCK_MONOTONIC and process CPU time, in microseconds."""

    __slots__ = ("time_us", "cputime_us")

    def __init__(self, time_us: int, cputime_us: int) -> None:
        self.time_us = time_us
        self.cputime_us = cputime_us

    @classmethod
    def now(cls) -> Timestamp:
        return cls(time.monotonic_ns() // 1000, time.process_time_ns() // 1000)


def boot_time_line(start: Timestamp, now: Timestamp) -> str:
    us = now.time_us - start.time_us
    cpu_us = now.cputime_us - start.cputime_us
    return f"Guest-boot-time = {us:>6} us {us // 1000} ms, {cpu_us:>6} CPU us {cpu_us // 1000} CPU ms"


class BootTimer:
    def __init__(self, start: Timestamp, report: Callable[[str], None], clock: Callable[[], Timestamp] = Timestamp.now):
        self._start = start
        self._report = report
        self._clock = clock

    def read(self, offset: int, size: int) -> bytes:
        return bytes(size)

    def write(self, offset: int, data: bytes) -> None:
        if offset == 0 and len(data) == 1 and data[0] == MAGIC_BOOT_COMPLETE:
            self._report(boot_time_line(self._start, self._clock()))
