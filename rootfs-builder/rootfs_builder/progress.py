"""Step reporting: a live elapsed-time line on a terminal, plain start/finish lines otherwise.

Long steps (downloads, debootstrap, mkfs) can take minutes, so on a terminal a background
thread redraws ``<step> ... 12.3s`` until the step ends; logs and CI get one line per event.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive

    def note(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Report `title` while the body runs, then its elapsed time (or its failure)."""
        start = time.monotonic()
        stop = threading.Event()
        ticker: threading.Thread | None = None
        if self.interactive:
            ticker = threading.Thread(target=self._tick, args=(title, start, stop), daemon=True)
            ticker.start()
        else:
            self.note(f"{title} ...")
        ok = False
        try:
            yield
            ok = True
        finally:
            stop.set()
            if ticker is not None:
                ticker.join()
            elapsed = time.monotonic() - start
            outcome = "done" if ok else "failed"
            prefix = "\r\x1b[K" if self.interactive else ""
            print(f"{prefix}{title}: {outcome} in {elapsed:.1f}s", file=self.stream, flush=True)

    def _tick(self, title: str, start: float, stop: threading.Event) -> None:
        while not stop.wait(0.2):
            elapsed = time.monotonic() - start
            self.stream.write(f"\r\x1b[K{title} ... {elapsed:.1f}s")
            self.stream.flush()


class QuietProgress(Progress):
    """For API callers that want no output."""

    def __init__(self) -> None:
        super().__init__(sys.stderr, interactive=False)

    def note(self, message: str) -> None:
        pass

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        yield
