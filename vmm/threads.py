"""The VMM's threads: named OS threads on `_thread`, without the `threading` module.

`threading` brings `functools` and `collections` (~0.6 MiB of private memory and ~5 ms of
imports on the start path) for what the VMM needs little of: start a function in a named
thread, join it with a timeout, and know the calling thread's name (log lines and seccomp
violation reports, the latter from a signal handler that must not allocate locks).

Names are kept twice: in the kernel (`prctl(PR_SET_NAME)`: what `ps -L`, /proc/<pid>/task
and debuggers show) and in a table keyed by thread id for the VMM's own reports.
"""

from __future__ import annotations

import _thread

from vmm.libc import libc

PR_SET_NAME = 15
MAIN_THREAD_NAME = "vmm"

# `vmm.threads` is first imported by the main thread.
_names: dict[int, str] = {_thread.get_ident(): MAIN_THREAD_NAME}

Lock = _thread.allocate_lock


def set_os_thread_name(name: str) -> None:
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def current_name() -> str:
    """The calling thread's name; threads the VMM did not start are `thread-<id>`."""
    ident = _thread.get_ident()
    return _names.get(ident) or f"thread-{ident}"


class Thread:
    """A named thread that runs ``run`` once. Like a daemon `threading.Thread`, it does not
    keep the process alive; unlike one, it reports nothing by itself: ``run`` must handle its
    own errors (an exception escaping it is printed by `sys.unraisablehook`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ident: int | None = None
        self._finished = _thread.allocate_lock()

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self.ident is not None:
            raise RuntimeError(f"thread {self.name} started twice")
        self._finished.acquire()
        try:
            self.ident = _thread.start_new_thread(self._bootstrap, ())
        except BaseException:
            self._finished.release()
            raise

    def _bootstrap(self) -> None:
        ident = _thread.get_ident()
        _names[ident] = self.name
        try:
            set_os_thread_name(self.name)
            self.run()
        finally:
            _names.pop(ident, None)
            self._finished.release()

    def is_alive(self) -> bool:
        return self.ident is not None and self._finished.locked()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for ``run`` to return; False if ``timeout`` (seconds) passed first."""
        if self.ident is None:
            raise RuntimeError(f"thread {self.name} was never started")
        if not self._finished.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return False
        self._finished.release()
        return True
