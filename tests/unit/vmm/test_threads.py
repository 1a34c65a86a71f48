"""`vmm.threads`: named threads without `threading` (start, join, names seen by the VMM's
reports and by the kernel)."""

from __future__ import annotations

import _thread

import pytest

from vmm import threads


class Recorder(threads.Thread):
    def __init__(self, name: str, release: _thread.LockType | None = None) -> None:
        super().__init__(name)
        self.release = release
        self.seen: dict[str, object] = {}

    def run(self) -> None:
        if self.release is not None:
            self.release.acquire()
        self.seen["name"] = threads.current_name()
        with open(f"/proc/self/task/{_thread.get_native_id()}/comm") as comm:
            self.seen["comm"] = comm.read().strip()


def test_a_thread_runs_once_under_its_name_for_the_vmm_and_the_kernel() -> None:
    thread = Recorder("vcpu7")
    thread.start()
    assert thread.join(timeout=10)
    assert thread.seen == {"name": "vcpu7", "comm": "vcpu7"}
    assert not thread.is_alive()
    assert thread.ident is not None


def test_join_times_out_while_the_thread_still_runs() -> None:
    release = threads.Lock()
    release.acquire()
    thread = Recorder("waiter", release)
    thread.start()
    try:
        assert thread.is_alive()
        assert not thread.join(timeout=0.05)
    finally:
        release.release()
    assert thread.join(timeout=10)
    assert not thread.is_alive()


def test_names_outside_the_vmm_threads() -> None:
    assert threads.current_name() == threads.MAIN_THREAD_NAME  # pytest runs tests in the main thread
    names: list[str] = []
    done = threads.Lock()
    done.acquire()

    def foreign() -> None:
        names.append(threads.current_name())
        done.release()

    _thread.start_new_thread(foreign, ())
    assert done.acquire(timeout=10)
    assert names[0].startswith("thread-")


def test_a_thread_starts_once_and_joins_only_after_starting() -> None:
    thread = Recorder("once")
    with pytest.raises(RuntimeError, match="never started"):
        thread.join()
    thread.start()
    with pytest.raises(RuntimeError, match="started twice"):
        thread.start()
    assert thread.join(timeout=10)


def test_the_name_is_forgotten_when_the_thread_ends() -> None:
    thread = Recorder("short")
    thread.start()
    thread.join(timeout=10)
    assert "short" not in threads._names.values()
