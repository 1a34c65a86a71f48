"""Counters flushed as one JSON object per line (Firecracker's metrics-file convention),
at exit and when a seccomp violation kills the process."""

from __future__ import annotations

import os
import time

from vmm import jsontext

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Callable


class Metrics:
    def __init__(self, fd: int | None = None) -> None:
        self.fd = fd
        self.counters: dict[str, int] = {}
        self._sources: list[Callable[[], dict[str, int]]] = []

    @classmethod
    def open(cls, path: str | None) -> Metrics:
        if path is None:
            return cls(None)
        return cls(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600))

    def add_source(self, source: Callable[[], dict[str, int]]) -> None:
        """Counters kept elsewhere (a vCPU's plain ints on its hot path), summed in at flush."""
        self._sources.append(source)

    def increment(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def snapshot(self) -> dict[str, object]:
        groups: dict[str, dict[str, int]] = {}
        totals = dict(self.counters)
        for source in self._sources:
            for name, value in source().items():
                totals[name] = totals.get(name, 0) + value
        for name, value in sorted(totals.items()):
            if not value:
                continue
            group, _, key = name.partition(".")
            groups.setdefault(group, {})[key] = value
        return {"utc_timestamp_ms": time.time_ns() // 1_000_000, **groups}

    def flush(self) -> None:
        if self.fd is None:
            return
        data = (jsontext.dumps(self.snapshot()) + "\n").encode()
        try:
            os.write(self.fd, data)
        except OSError:
            pass
