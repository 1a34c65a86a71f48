"""OS-level thread names (what `ps -L`, /proc/<pid>/task/<tid>/comm and violation reports
show); Python's threading names are not visible to the kernel."""

from __future__ import annotations

from vmm.libc import libc

PR_SET_NAME = 15


def set_os_thread_name(name: str) -> None:
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
