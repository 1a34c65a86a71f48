"""FOR TESTS ONLY (present with ``--test-devices``): makes the VMM break its own seccomp
filters on request, so tests can prove a violation kills the process with a clear report.

Writing 1 makes the vCPU thread handling the exit call a syscall the ``vcpu`` category
forbids; writing 2 asks the main thread's event loop to call one the ``vmm`` category
forbids.
"""

from __future__ import annotations

import errno
import os

from jailer.native import c_int, get_errno
from vmm.threads import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

PORT = 0x4F0
IN_VCPU_THREAD = 1
IN_MAIN_THREAD = 2
MAIN_THREAD_WAIT_SECONDS = 5.0


def _bind_socket() -> Callable[[int, int, int], int]:
    # Bound at import (in the main thread, before any filter) so the violation is the
    # socket() call itself, not the imports or library loads a lazy binding would do.
    from vmm.libc import libc

    function = libc.socket
    function.argtypes = [c_int, c_int, c_int]
    function.restype = c_int
    return function


_socket = _bind_socket()
AF_INET, SOCK_STREAM = 2, 1


def forbidden_syscall() -> str:
    """socket(AF_INET, SOCK_STREAM, 0): no VMM thread has any business opening a socket.

    Under a trapping filter this never returns (the SIGSYS reporter ends the process). When
    it does return, the outcome says which case it was: denied with an errno by a filter
    that answers errors (the outer `jail` allowlist answers socket() with EACCES), or not
    stopped at all (only without filters: --no-seccomp twice, unit tests)."""
    fd = _socket(AF_INET, SOCK_STREAM, 0)
    if fd < 0:
        number = get_errno()
        return f"socket() was denied: {errno.errorcode.get(number, number)}"
    os.close(fd)
    return "socket() succeeded: no filter stopped it"


class ViolationDevice:
    def __init__(self, ask_main_thread: Callable[[Callable[[], None]], None],
                 report: Callable[[str], None] = lambda outcome: None) -> None:
        self._ask_main_thread = ask_main_thread
        self._report = report

    def read(self, offset: int, size: int) -> bytes:
        return bytes(size)

    def write(self, offset: int, data: bytes) -> None:
        if data[0] == IN_VCPU_THREAD:
            self._report(f"violation device (vcpu thread): {forbidden_syscall()}")
        elif data[0] == IN_MAIN_THREAD:
            # The guest waits like for any I/O side effect, so it cannot run past the request.
            done = Lock()
            done.acquire()

            def call() -> None:
                try:
                    self._report(f"violation device (main thread): {forbidden_syscall()}")
                finally:
                    done.release()

            self._ask_main_thread(call)
            done.acquire(timeout=MAIN_THREAD_WAIT_SECONDS)
