"""The VMM's log: one line per event, written with os.write so it works inside a jail
(no /proc, no locale or timezone files) and from the SIGSYS handler.

Lines look like Firecracker's: `<UTC time> [<id>:<thread>:<LEVEL>] message`.
"""

from __future__ import annotations

import os
import time

from vmm.threads import current_name

LEVELS = {"Off": 0, "Error": 1, "Warning": 2, "Info": 3, "Debug": 4, "Trace": 5}


class Logger:
    def __init__(self, instance_id: str, level: str = "Info", fd: int = 2, show_level: bool = True) -> None:
        self.instance_id = instance_id
        self.fd = fd
        self.threshold = LEVELS.get(level, LEVELS["Info"])
        self.show_level = show_level

    @classmethod
    def open(cls, instance_id: str, level: str, path: str | None, show_level: bool = True) -> Logger:
        fd = 2
        if path is not None:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
        return cls(instance_id, level, fd, show_level)

    def format(self, level: str, message: str) -> str:
        now = time.time_ns()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 1_000_000_000))
        tag = f"{self.instance_id}:{current_name()}" + (f":{level.upper()}" if self.show_level else "")
        return f"{stamp}.{now % 1_000_000_000:09d} [{tag}] {message}\n"

    def log(self, level: str, message: str) -> None:
        if LEVELS[level] > self.threshold:
            return
        self.write_raw(self.format(level, message))

    def write_raw(self, line: str, fd: int | None = None) -> None:
        data = line.encode("utf-8", "replace")
        target = self.fd if fd is None else fd
        try:
            while data:
                data = data[os.write(target, data) :]
        except OSError:
            pass  # a full pipe or a closed log must never take the VM down

    def error(self, message: str) -> None:
        self.log("Error", message)

    def warning(self, message: str) -> None:
        self.log("Warning", message)

    def info(self, message: str) -> None:
        self.log("Info", message)

    def debug(self, message: str) -> None:
        self.log("Debug", message)
