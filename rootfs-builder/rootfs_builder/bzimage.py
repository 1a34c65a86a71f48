"""The uncompressed ``vmlinux`` inside a bzImage, whatever compressor its payload uses.

The x86 boot protocol (2.08+) records where the compressed kernel sits: ``payload_offset`` and
``payload_length`` at 0x248/0x24c, relative to the protected-mode code that starts after the
``setup_sects`` + 1 real-mode sectors. The kernel's build appends the uncompressed size (4
bytes, little-endian) to every payload except gzip's, whose trailer already holds it; we strip
it and check the decompressed length against it.

gzip, xz, lzma and bzip2 are decompressed in-process; lz4 (legacy frame), zstd and lzo by the
Debian tools (`lz4`, `zstd`, `lzop`), which read those formats and Python's stdlib does not.
"""

from __future__ import annotations

import bz2
import lzma
import shutil
import struct
import subprocess
import zlib

from rootfs_builder.errors import BuildError

_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"BZh", "bzip2"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x89LZO", "lzo"),
)
_TOOLS = {"lz4": ["lz4", "-dc"], "zstd": ["zstd", "-dcq"], "lzo": ["lzop", "-dc"]}


def payload(bzimage: bytes) -> bytes:
    if len(bzimage) < 0x250 or bzimage[0x202:0x206] != b"HdrS":
        raise BuildError("not a bzImage: no 'HdrS' boot protocol header")
    protocol, = struct.unpack_from("<H", bzimage, 0x206)
    if protocol < 0x208:
        raise BuildError(f"bzImage boot protocol {protocol >> 8}.{protocol & 0xff} has no payload fields")
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    if start + length > len(bzimage):
        raise BuildError("bzImage payload runs past the end of the file")
    return bzimage[start : start + length]


def compressor(data: bytes) -> str:
    for magic, name in _MAGICS:
        if data.startswith(magic):
            return name
    raise BuildError(f"unknown bzImage payload compression (magic {data[:6].hex()})")


def _run_tool(name: str, data: bytes) -> bytes:
    command = _TOOLS[name]
    if shutil.which(command[0]) is None:
        raise BuildError(f"the bzImage payload is {name}-compressed; install '{command[0]}' to decompress it")
    result = subprocess.run(command, input=data, capture_output=True)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise BuildError(f"{command[0]} failed on the bzImage payload: {message[-1] if message else result.returncode}")
    return result.stdout


def decompress(data: bytes, method: str) -> bytes:
    if method == "gzip":
        return zlib.decompressobj(wbits=31).decompress(data)
    body, size = data[:-4], struct.unpack("<I", data[-4:])[0]
    if method == "xz":
        output = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(body)
    elif method == "lzma":
        output = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(body)
    elif method == "bzip2":
        output = bz2.BZ2Decompressor().decompress(body)
    else:
        output = _run_tool(method, body)
    if len(output) != size:
        raise BuildError(f"{method} payload decompressed to {len(output)} bytes, header says {size}")
    return output


def extract_vmlinux(bzimage: bytes) -> tuple[bytes, str]:
    """(vmlinux ELF bytes, compressor name)."""
    compressed = payload(bzimage)
    method = compressor(compressed)
    try:
        vmlinux = decompress(compressed, method)
    except (lzma.LZMAError, OSError, zlib.error, EOFError) as error:
        raise BuildError(f"cannot decompress the {method} bzImage payload: {error}") from None
    if not vmlinux.startswith(b"\x7fELF"):
        raise BuildError(f"the {method} bzImage payload is not an ELF vmlinux")
    return vmlinux, method
