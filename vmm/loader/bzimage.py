"""Linux bzImage through the 64-bit boot protocol (Documentation/arch/x86/boot.rst).

Only the protected-mode part is loaded (at 1 MiB) and entered at +0x200 in long mode; the
real-mode setup code never runs, so its header is the only part of the setup sectors we use.
"""

from __future__ import annotations

import struct

from vmm.loader.errors import LoaderError
from vmm.loader.layout import BZIMAGE_64BIT_ENTRY_OFFSET, KERNEL_LOAD_ADDRESS
from vmm.loader.ram import require_ram

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from os import PathLike

    from vmm.loader.ram import GuestMemoryLike

HEADER_MAGIC = b"HdrS"
HEADER_MAGIC_OFFSET = 0x202
SETUP_HEADER_OFFSET = 0x1F1
BOOT_FLAG = 0xAA55
LOADFLAG_LOADED_HIGH = 0x01
XLF_KERNEL_64 = 0x01
MIN_64BIT_PROTOCOL = 0x020C  # xloadflags and the 64-bit entry exist from 2.12 on
DEFAULT_INITRD_ADDR_MAX = 0x37FFFFFF  # what boot.rst says to assume before protocol 2.03


class SetupHeader:
    """The fields of `struct setup_header` the loader decides on."""

    __slots__ = (
        "raw",
        "setup_sects",
        "version",
        "loadflags",
        "code32_start",
        "initrd_addr_max",
        "kernel_alignment",
        "relocatable",
        "xloadflags",
        "cmdline_size",
        "pref_address",
        "init_size",
    )

    def __init__(
        self,
        raw: bytes,
        setup_sects: int,
        version: int,
        loadflags: int,
        code32_start: int,
        initrd_addr_max: int,
        kernel_alignment: int,
        relocatable: bool,
        xloadflags: int,
        cmdline_size: int,
        pref_address: int,
        init_size: int,
    ) -> None:
        self.raw = raw  # bytes 0x1F1 .. end of header, copied verbatim into the zero page
        self.setup_sects = setup_sects
        self.version = version
        self.loadflags = loadflags
        self.code32_start = code32_start
        self.initrd_addr_max = initrd_addr_max
        self.kernel_alignment = kernel_alignment
        self.relocatable = relocatable
        self.xloadflags = xloadflags
        self.cmdline_size = cmdline_size
        self.pref_address = pref_address
        self.init_size = init_size

    @property
    def protected_mode_offset(self) -> int:
        return ((self.setup_sects or 4) + 1) * 512


def is_bzimage(head: bytes) -> bool:
    return head[HEADER_MAGIC_OFFSET : HEADER_MAGIC_OFFSET + 4] == HEADER_MAGIC


def parse_setup_header(image: bytes, path: str | PathLike[str]) -> SetupHeader:
    if len(image) < 0x270 or not is_bzimage(image):
        raise LoaderError(f"unknown kernel image format: {path}")
    header_end = HEADER_MAGIC_OFFSET + image[0x201]
    (boot_flag,) = struct.unpack_from("<H", image, 0x1FE)
    (version,) = struct.unpack_from("<H", image, 0x206)
    if boot_flag != BOOT_FLAG:
        raise LoaderError(f"bzImage {path} has boot_flag {boot_flag:#06x}, expected 0xaa55")
    if version < MIN_64BIT_PROTOCOL:
        raise LoaderError(
            f"bzImage {path} uses boot protocol {version >> 8}.{version & 0xFF:02d}; "
            f"the 64-bit entry needs 2.12 or later"
        )
    header = SetupHeader(
        raw=image[SETUP_HEADER_OFFSET:header_end],
        setup_sects=image[0x1F1],
        version=version,
        loadflags=image[0x211],
        code32_start=struct.unpack_from("<I", image, 0x214)[0],
        initrd_addr_max=struct.unpack_from("<I", image, 0x22C)[0] or DEFAULT_INITRD_ADDR_MAX,
        kernel_alignment=struct.unpack_from("<I", image, 0x230)[0],
        relocatable=bool(image[0x234]),
        xloadflags=struct.unpack_from("<H", image, 0x236)[0],
        cmdline_size=struct.unpack_from("<I", image, 0x238)[0],
        pref_address=struct.unpack_from("<Q", image, 0x258)[0],
        init_size=struct.unpack_from("<I", image, 0x260)[0],
    )
    if not header.xloadflags & XLF_KERNEL_64:
        raise LoaderError(f"bzImage {path} has no 64-bit entry point (XLF_KERNEL_64 not set)")
    if not header.loadflags & LOADFLAG_LOADED_HIGH:
        raise LoaderError(f"bzImage {path} is a zImage (not LOADED_HIGH); it cannot load at 1 MiB")
    if header.protected_mode_offset >= len(image):
        raise LoaderError(f"bzImage {path} is truncated: no protected-mode kernel after the setup")
    return header


def decompression_end(header: SetupHeader, payload_size: int) -> int:
    """First byte above what the kernel may touch while decompressing itself.

    A relocatable kernel runs at max(align_up(load address, kernel_alignment), pref_address)
    and needs init_size bytes from there (boot.rst "init_size"); the initrd must sit above.
    """
    alignment = max(header.kernel_alignment, 1)
    aligned_load = (KERNEL_LOAD_ADDRESS + alignment - 1) // alignment * alignment
    runs_at = max(aligned_load, header.pref_address) if header.relocatable else header.pref_address
    runs_at = runs_at or KERNEL_LOAD_ADDRESS
    return max(runs_at + header.init_size, KERNEL_LOAD_ADDRESS + payload_size)


class LoadedBzImage:
    __slots__ = ("header", "entry_address", "kernel_end")

    def __init__(self, header: SetupHeader, entry_address: int, kernel_end: int) -> None:
        self.header = header
        self.entry_address = entry_address
        self.kernel_end = kernel_end


def load_bzimage(memory: GuestMemoryLike, image: bytes, path: str | PathLike[str]) -> LoadedBzImage:
    header = parse_setup_header(image, path)
    payload = memoryview(image)[header.protected_mode_offset :]
    end = decompression_end(header, len(payload))
    require_ram(memory, KERNEL_LOAD_ADDRESS, end, f"kernel {path}")
    memory.write(KERNEL_LOAD_ADDRESS, payload)
    return LoadedBzImage(header, KERNEL_LOAD_ADDRESS + BZIMAGE_64BIT_ENTRY_OFFSET, end)

