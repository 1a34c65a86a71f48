"""The shared `struct kvm_run` page (6.1 uapi): where the fields a VMM reads and writes sit.

Read with `struct` straight from the vCPU's mapping (one unpack per exit, no ctypes view:
a ctypes `Structure` for the page and its exit union would cost seven class creations on
every start for fields read a handful of times per VM).
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    import mmap

IMMEDIATE_EXIT_OFFSET = 1
EXIT_REASON_OFFSET = 8
EXIT_OFFSET = 32  # the exit union
IO_FORMAT = "<BBHIQ"  # direction, size, port, count, data_offset
MMIO_FORMAT = "<Q8sIB"  # phys_addr, data, len, is_write
MMIO_DATA_OFFSET = EXIT_OFFSET + 8
FAIL_ENTRY_FORMAT = "<QI"  # hardware_entry_failure_reason, cpu
INTERNAL_FORMAT = "<II16Q"  # suberror, ndata, data[16]
SYSTEM_EVENT_FORMAT = "<II"  # type, ndata (then flags/data[16])
VALID_REGS_OFFSET = 288  # kvm_valid_regs: the end of the exit union's 256 bytes


def request_immediate_exit(page: mmap.mmap) -> None:
    """The next (or current) KVM_RUN returns at once with EINTR."""
    page[IMMEDIATE_EXIT_OFFSET] = 1


def exit_reason(page: mmap.mmap) -> int:
    return struct.unpack_from("<I", page, EXIT_REASON_OFFSET)[0]


def system_event_type(page: mmap.mmap) -> int:
    return struct.unpack_from(SYSTEM_EVENT_FORMAT, page, EXIT_OFFSET)[0]


def internal_error(page: mmap.mmap) -> tuple[int, tuple[int, ...]]:
    """(suberror, the data words KVM filled in)."""
    suberror, ndata, *data = struct.unpack_from(INTERNAL_FORMAT, page, EXIT_OFFSET)
    return suberror, tuple(data[: min(ndata, len(data))])


def fail_entry_reason(page: mmap.mmap) -> int:
    return struct.unpack_from(FAIL_ENTRY_FORMAT, page, EXIT_OFFSET)[0]
