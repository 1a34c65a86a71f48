"""What the loader hands CPU setup: the protocol, where to enter, where the boot info is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class KernelEntry:
    """How to start the boot vCPU.

    linux64: 64-bit long mode at `entry_address` with RSI = `boot_info_address` (zero page).
    pvh: 32-bit protected mode, paging off, at `entry_address` with RBX = `boot_info_address`
    (hvm_start_info).
    """

    protocol: Literal["linux64", "pvh"]
    entry_address: int
    boot_info_address: int
