"""The vCPU → main-thread hand-off: first stop wins, calls are run once, wake-ups coalesce."""

from __future__ import annotations

import select
import threading

from vmm.events import EventQueue, Stop


def test_first_stop_wins_and_wakes_the_poller() -> None:
    queue = EventQueue()
    try:
        poller = select.poll()
        poller.register(queue.read_fd, select.POLLIN)
        assert poller.poll(0) == [] and not queue.stopping
        queue.post_stop(Stop(7, "exit port"))
        queue.post_stop(Stop(0, "reset"))
        assert poller.poll(0)
        assert queue.drain() == [] and queue.stop == Stop(7, "exit port")
        assert poller.poll(0) == []
    finally:
        queue.close()


def test_calls_from_many_threads_are_each_returned_once() -> None:
    queue = EventQueue()
    try:
        done: list[int] = []
        threads = [threading.Thread(target=lambda n=n: [queue.post_call(lambda n=n: done.append(n)) for _ in range(3)]) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for call in queue.drain():
            call()
        assert sorted(done) == sorted(list(range(4)) * 3)
        assert queue.drain() == []
    finally:
        queue.close()


def test_wake_ups_never_block_when_the_pipe_is_full() -> None:
    queue = EventQueue()
    try:
        for _ in range(100_000):
            queue.post_call(lambda: None)
        assert len(queue.drain()) == 100_000
    finally:
        queue.close()
