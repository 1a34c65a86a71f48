"""The C library, one handle for the whole VMM: the process's own libc (as ``CDLL(None)``),
with errno kept for `get_errno`. Modules set the prototypes of the functions they call.
Through `jailer.native`, not the `ctypes` package (start-up path: see `vmm`)."""

from __future__ import annotations

from jailer.native import Library

libc = Library(None)
