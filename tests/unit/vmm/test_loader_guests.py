"""The loaders on the real test-guest images (built with gcc at test time), no KVM needed:
each image format is detected and entered where the guest's entry code actually is."""

from __future__ import annotations

import struct

import pytest

from support.guests import FakeGuestMemory, build_guest
from vmm.loader import KernelEntry, load_kernel
from vmm.loader.layout import KERNEL_LOAD_ADDRESS, PVH_START_INFO_ADDRESS, ZERO_PAGE_ADDRESS

MIB = 1 << 20


@pytest.mark.parametrize(
    ("name", "image", "expected"),
    [
        ("report", "pvh", KernelEntry("pvh", KERNEL_LOAD_ADDRESS, PVH_START_INFO_ADDRESS)),
        ("report", "bzimage", KernelEntry("linux64", KERNEL_LOAD_ADDRESS + 0x200, ZERO_PAGE_ADDRESS)),
        ("report", "elf64", KernelEntry("linux64", KERNEL_LOAD_ADDRESS + 0x200, ZERO_PAGE_ADDRESS)),
        ("minimal", "pvh", KernelEntry("pvh", KERNEL_LOAD_ADDRESS, PVH_START_INFO_ADDRESS)),
    ],
)
def test_guest_images_load_at_their_entries(name: str, image: str, expected: KernelEntry) -> None:
    memory = FakeGuestMemory(16 * MIB)
    assert load_kernel(memory, build_guest(name, image), cmdline="x=1", initrd_path=None, rsdp_address=None) == expected
    entry_bytes = memory.read(expected.entry_address, 1)
    assert entry_bytes != b"\x00", "entry points at code"


def test_bzimage_guest_header_and_payload_match_its_elf() -> None:
    """The 64-bit entry at +0x200 of the protected-mode part is the ELF's startup_64."""
    bzimage = build_guest("report", "bzimage").read_bytes()
    setup_size = (bzimage[0x1F1] + 1) * 512
    payload = bzimage[setup_size:]
    assert bzimage[0x202:0x206] == b"HdrS"
    assert struct.unpack_from("<H", bzimage, 0x206)[0] == 0x020F
    assert struct.unpack_from("<H", bzimage, 0x236)[0] & 1  # XLF_KERNEL_64
    assert struct.unpack_from("<I", bzimage, 0x1F4)[0] == (len(payload) + 15) // 16  # syssize
    assert struct.unpack_from("<I", bzimage, 0x260)[0] >= len(payload)  # init_size covers .bss
    memory = FakeGuestMemory(16 * MIB)
    load_kernel(memory, build_guest("report", "elf64"), cmdline="", initrd_path=None, rsdp_address=None)
    assert memory.read(KERNEL_LOAD_ADDRESS, len(payload)) == payload
