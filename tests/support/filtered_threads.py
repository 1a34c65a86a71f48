"""A process whose threads install filters, for `inspect` tests (run as a script).

argv: POLICY_JSON SPEC...; each SPEC is `thread_name=cat1,cat2` (filters installed by that
thread, in order), or `*=cat` as the first SPEC for a process-wide TSYNC filter installed by
the main thread before the others start. Prints "ready" when every thread has its filters,
then waits until stdin closes.
"""

from __future__ import annotations

import ctypes
import sys
import threading

from jailer import policies
from jailer.policies import compiler
from jailer.policies.loader import install_filter


def main() -> None:
    policy = policies.load_policy(sys.argv[1])
    specs = [spec.split("=", 1) for spec in sys.argv[2:]]
    libc = ctypes.CDLL(None)
    programs = compiler.compile_policy(policy)
    if specs and specs[0][0] == "*":
        install_filter(programs[specs[0][1]], all_threads=True)
        specs = specs[1:]
    release = threading.Event()
    ready = threading.Barrier(len(specs) + 1)

    def thread_body(name: str, categories: list[str]) -> None:
        libc.prctl(15, name.encode(), 0, 0, 0)
        for category in categories:
            install_filter(programs[category], all_threads=False)
        ready.wait()
        release.wait()

    threads = [threading.Thread(target=thread_body, args=(name, cats.split(","))) for name, cats in specs]
    for thread in threads:
        thread.start()
    ready.wait()
    print("ready", flush=True)
    sys.stdin.read()
    release.set()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
