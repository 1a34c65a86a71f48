"""What vCPU threads hand to the main thread: a request to stop the VM, or a call to make.

The main thread sleeps in poll() on a pipe; posting writes one byte to it. Stops are
first-come: the first reason recorded is the one reported.
"""

from __future__ import annotations

import os

from vmm.threads import Lock
from vmm.value import Value

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Callable


class Stop(Value):
    """Why the VM ends: the exit status, the message to log and its level."""

    __slots__ = ("status", "message", "level")

    def __init__(self, status: int, message: str, level: str = "Info") -> None:
        self.status = status
        self.message = message
        self.level = level


class EventQueue:
    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._lock = Lock()
        self._calls: list[Callable[[], None]] = []
        self.stop: Stop | None = None

    def _wake(self) -> None:
        try:
            os.write(self.write_fd, b"\0")
        except BlockingIOError:
            pass  # the pipe is already full of wake-ups

    def post_stop(self, stop: Stop) -> None:
        with self._lock:
            if self.stop is None:
                self.stop = stop
        self._wake()

    def post_call(self, call: Callable[[], None]) -> None:
        with self._lock:
            self._calls.append(call)
        self._wake()

    @property
    def stopping(self) -> bool:
        return self.stop is not None

    def drain(self) -> list[Callable[[], None]]:
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            calls, self._calls = self._calls, []
        return calls

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)
