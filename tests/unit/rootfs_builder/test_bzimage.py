"""vmlinux extraction from bzImages built here with each compressor the kernel supports."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
import struct
import subprocess

import pytest

from rootfs_builder import bzimage
from rootfs_builder.errors import BuildError

FAKE_VMLINUX = b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 64


def _compress(method: str, data: bytes) -> bytes:
    """Compress as the kernel's arch/x86/boot/compressed Makefile does (size appended except gzip)."""
    size = struct.pack("<I", len(data))
    if method == "gzip":
        return gzip.compress(data)
    if method == "xz":
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32) + size
    if method == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE) + size
    if method == "bzip2":
        return bz2.compress(data) + size
    tool = {"lz4": ["lz4", "-l", "-9", "-c"], "zstd": ["zstd", "-19", "-c", "-q"]}[method]
    if shutil.which(tool[0]) is None:
        pytest.skip(f"{tool[0]} is not installed")
    return subprocess.run(tool, input=data, capture_output=True, check=True).stdout + size


def _bzimage(payload: bytes, setup_sects: int = 3) -> bytes:
    setup = bytearray((setup_sects + 1) * 512)
    setup[0x1F1] = setup_sects
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, 0x20F)
    offset = 0x40
    struct.pack_into("<II", setup, 0x248, offset, len(payload))
    return bytes(setup) + b"\x90" * offset + payload + b"\0" * 100


@pytest.mark.parametrize("method", ["gzip", "xz", "lzma", "bzip2", "lz4", "zstd"])
def test_each_compressor_round_trips(method: str) -> None:
    vmlinux, detected = bzimage.extract_vmlinux(_bzimage(_compress(method, FAKE_VMLINUX)))
    assert detected == method
    assert vmlinux == FAKE_VMLINUX


def test_a_wrong_trailing_size_is_caught() -> None:
    payload = _compress("xz", FAKE_VMLINUX)
    corrupted = payload[:-4] + struct.pack("<I", len(FAKE_VMLINUX) + 1)
    with pytest.raises(BuildError, match="header says"):
        bzimage.extract_vmlinux(_bzimage(corrupted))


def test_not_a_bzimage_and_unknown_compressor() -> None:
    with pytest.raises(BuildError, match="HdrS"):
        bzimage.extract_vmlinux(b"\0" * 4096)
    with pytest.raises(BuildError, match="unknown bzImage payload compression"):
        bzimage.extract_vmlinux(_bzimage(b"\x11\x22\x33\x44" * 20))


def test_payload_that_is_not_elf_is_rejected() -> None:
    with pytest.raises(BuildError, match="not an ELF"):
        bzimage.extract_vmlinux(_bzimage(gzip.compress(b"MZ not an elf")))
