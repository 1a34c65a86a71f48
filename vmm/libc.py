"""The C library, one handle for the whole VMM: the process's own libc (``CDLL(None)``), with
errno kept for ``ctypes.get_errno``. Modules set the prototypes of the functions they call."""

from __future__ import annotations

import ctypes

libc = ctypes.CDLL(None, use_errno=True)
