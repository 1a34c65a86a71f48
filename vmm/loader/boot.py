"""Format detection and the order of writes for each boot protocol.

No pathlib (file names are `vmm.paths.path_text` strings) and no typing at run time: the
VMM imports this on its start-up path, and start-up time and private memory are product
targets. The zero page (`bootparams`) is only built for the 64-bit Linux protocol.
"""

from __future__ import annotations

from vmm.loader.e820 import build_memory_map
from vmm.loader.elf import is_elf, load_elf
from vmm.loader.entry import KernelEntry
from vmm.loader.errors import LoaderError
from vmm.loader.layout import (
    CMDLINE_ADDRESS,
    CMDLINE_MAX_SIZE,
    MMIO32_START,
    PVH_START_INFO_ADDRESS,
    ZERO_PAGE_ADDRESS,
)
from vmm.paths import path_text

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from os import PathLike

    from vmm.loader.ram import GuestMemoryLike


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        raise LoaderError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise LoaderError(f"{what} is a directory: {path}") from None
    except OSError as error:
        raise LoaderError(f"cannot read {what} {path}: {error.strerror}") from None


def _encode_cmdline(cmdline: str, limit: int) -> bytes:
    if "\0" in cmdline:
        raise LoaderError("kernel command line contains a NUL character")
    try:
        encoded = cmdline.encode("ascii")
    except UnicodeEncodeError:
        raise LoaderError("kernel command line must be ASCII") from None
    if len(encoded) + 1 > limit:
        raise LoaderError(f"kernel command line is {len(encoded)} bytes; the limit is {limit - 1}")
    return encoded + b"\0"


def load_kernel(
    memory: GuestMemoryLike,
    kernel_path: str | PathLike[str],
    *,
    cmdline: str,
    initrd_path: str | PathLike[str] | None,
    rsdp_address: int | None,
) -> KernelEntry:
    """Load the kernel image (format detected from its bytes), the command line and the
    initrd into guest memory, write the protocol's boot information, return the entry."""
    kernel_path = path_text(kernel_path)
    image = _read(kernel_path, "kernel image")
    initrd_data = _read(path_text(initrd_path), "initrd") if initrd_path is not None else None
    # Each protocol's modules are imported only for an image that needs them (start-up path:
    # see `vmm`); an ELF is recognised first, by its magic, which no bzImage starts with.
    if is_elf(image):
        elf = load_elf(memory, image, kernel_path)
        cmdline_limit = CMDLINE_MAX_SIZE
        kernel_end, setup_header = elf.kernel_end, None
        initrd_address_max = MMIO32_START - 1
        if elf.pvh_entry_address is not None:
            protocol, entry = "pvh", elf.pvh_entry_address
        else:
            protocol, entry = "linux64", elf.entry_address
    else:
        from vmm.loader.bzimage import is_bzimage, load_bzimage

        if not is_bzimage(image):
            raise LoaderError(f"unknown kernel image format: {kernel_path}")
        loaded = load_bzimage(memory, image, kernel_path)
        header = loaded.header
        cmdline_limit = min(CMDLINE_MAX_SIZE, header.cmdline_size + 1) if header.cmdline_size else CMDLINE_MAX_SIZE
        protocol, entry, kernel_end = "linux64", loaded.entry_address, loaded.kernel_end
        initrd_address_max, setup_header = header.initrd_addr_max, header.raw

    memory.write(CMDLINE_ADDRESS, _encode_cmdline(cmdline, cmdline_limit))
    initrd = None
    if initrd_data is not None:
        if not initrd_data:
            raise LoaderError(f"initrd is empty: {initrd_path}")
        from vmm.loader.initrd import place_initrd

        address = place_initrd(memory, len(initrd_data), kernel_end=kernel_end, address_max=initrd_address_max)
        memory.write(address, initrd_data)
        initrd = (address, len(initrd_data))
    memory_map = build_memory_map(memory.regions)

    if protocol == "pvh":
        from vmm.loader.pvh import build_pvh_boot_info

        blobs = build_pvh_boot_info(
            cmdline_address=CMDLINE_ADDRESS, initrd=initrd, rsdp_address=rsdp_address, memory_map=memory_map
        )
        for address, blob in blobs.items():
            memory.write(address, blob)
        return KernelEntry("pvh", entry, PVH_START_INFO_ADDRESS)
    from vmm.loader.bootparams import build_zero_page

    zero_page = build_zero_page(
        setup_header=setup_header,
        cmdline_address=CMDLINE_ADDRESS,
        initrd=initrd,
        rsdp_address=rsdp_address,
        memory_map=memory_map,
    )
    memory.write(ZERO_PAGE_ADDRESS, zero_page)
    return KernelEntry("linux64", entry, ZERO_PAGE_ADDRESS)
