"""What the loader hands CPU setup: the protocol, where to enter, where the boot info is."""

from __future__ import annotations

from vmm.value import Value

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from typing import Literal


class KernelEntry(Value):
    """How to start the boot vCPU.

    linux64: 64-bit long mode at `entry_address` with RSI = `boot_info_address` (zero page).
    pvh: 32-bit protected mode, paging off, at `entry_address` with RBX = `boot_info_address`
    (hvm_start_info).
    """

    __slots__ = ("protocol", "entry_address", "boot_info_address")

    def __init__(self, protocol: Literal["linux64", "pvh"], entry_address: int, boot_info_address: int) -> None:
        self.protocol = protocol
        self.entry_address = entry_address
        self.boot_info_address = boot_info_address
