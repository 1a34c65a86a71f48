"""A small ACPI Machine Language encoder (ACPI 6.x §20): enough for a DSDT that describes
devices with names, integers, strings, buffers, packages, resource templates and methods.

Every function returns the encoded bytes of one AML term, so terms compose by nesting
calls: `device("COM1", [name("_HID", eisa_id("PNP0501")), ...])`.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

ZERO_OP = 0x00
ONE_OP = 0x01
ONES_OP = 0xFF
NAME_OP = 0x08
BYTE_PREFIX = 0x0A
WORD_PREFIX = 0x0B
DWORD_PREFIX = 0x0C
STRING_PREFIX = 0x0D
QWORD_PREFIX = 0x0E
SCOPE_OP = 0x10
BUFFER_OP = 0x11
PACKAGE_OP = 0x12
METHOD_OP = 0x14
DUAL_NAME_PREFIX = 0x2E
MULTI_NAME_PREFIX = 0x2F
ROOT_PREFIX = 0x5C
EXT_OP_PREFIX = 0x5B
DEVICE_OP = 0x82
RETURN_OP = 0xA4
END_TAG = b"\x79\x00"


def pkg_length(body_length: int) -> bytes:
    """PkgLength for a body of `body_length` bytes; the encoded length counts itself."""
    for extra in range(4):
        total = body_length + 1 + extra
        if extra == 0 and total < 0x40:
            return bytes([total])
        if extra and total < 1 << (4 + 8 * extra):
            encoded = [(extra << 6) | (total & 0x0F)]
            encoded += [(total >> (4 + 8 * i)) & 0xFF for i in range(extra)]
            return bytes(encoded)
    raise ValueError(f"AML package too large: {body_length} bytes")


def _name_seg(segment: str) -> bytes:
    if not 1 <= len(segment) <= 4 or not (segment[0].isupper() or segment[0] == "_"):
        raise ValueError(f"invalid AML name segment: {segment!r}")
    if not all(char.isupper() or char.isdigit() or char == "_" for char in segment):
        raise ValueError(f"invalid AML name segment: {segment!r}")
    return segment.ljust(4, "_").encode("ascii")


def name_string(path: str) -> bytes:
    r"""A NameString: `\_SB_.COM1`, `COM1`, `_HID` (segments shorter than 4 are '_'-padded)."""
    prefix = b""
    if path.startswith("\\"):
        prefix, path = bytes([ROOT_PREFIX]), path[1:]
    segments = [_name_seg(segment) for segment in path.split(".")] if path else []
    if not segments:
        return prefix + b"\x00"  # NullName
    if len(segments) == 1:
        return prefix + segments[0]
    if len(segments) == 2:
        return prefix + bytes([DUAL_NAME_PREFIX]) + b"".join(segments)
    return prefix + bytes([MULTI_NAME_PREFIX, len(segments)]) + b"".join(segments)


def integer(value: int) -> bytes:
    """The shortest encoding of an integer constant (Zero, One, Ones, Byte..QWord)."""
    if value == 0:
        return bytes([ZERO_OP])
    if value == 1:
        return bytes([ONE_OP])
    if value < 0 or value >= 1 << 64:
        raise ValueError(f"AML integer out of range: {value}")
    if value == (1 << 64) - 1:
        return bytes([ONES_OP])
    for prefix, fmt, limit in ((BYTE_PREFIX, "<B", 1 << 8), (WORD_PREFIX, "<H", 1 << 16), (DWORD_PREFIX, "<I", 1 << 32)):
        if value < limit:
            return bytes([prefix]) + struct.pack(fmt, value)
    return bytes([QWORD_PREFIX]) + struct.pack("<Q", value)


def dword(value: int) -> bytes:
    """A DWordConst even for small values (e.g. `_UID`, as iasl keeps the declared width)."""
    return bytes([DWORD_PREFIX]) + struct.pack("<I", value)


def string(value: str) -> bytes:
    encoded = value.encode("ascii")
    if b"\0" in encoded:
        raise ValueError("AML strings cannot contain NUL")
    return bytes([STRING_PREFIX]) + encoded + b"\0"


def eisa_id(identifier: str) -> bytes:
    """EisaId("PNP0501"): three compressed letters and four hex digits, as a DWord."""
    if len(identifier) != 7 or not identifier[:3].isalpha() or not identifier[:3].isupper():
        raise ValueError(f"invalid EISA id: {identifier!r}")
    letters = [ord(char) - 0x40 for char in identifier[:3]]
    product = int(identifier[3:], 16)
    compressed = (letters[0] << 26) | (letters[1] << 21) | (letters[2] << 16) | product
    # EISA ids are stored big-endian inside the little-endian DWord.
    return dword(int.from_bytes(compressed.to_bytes(4, "big"), "little"))


def name(path: str, value: bytes) -> bytes:
    return bytes([NAME_OP]) + name_string(path) + value


def buffer(data: bytes) -> bytes:
    body = integer(len(data)) + data
    return bytes([BUFFER_OP]) + pkg_length(len(body)) + body


def package(elements: Sequence[bytes]) -> bytes:
    if len(elements) > 255:
        raise ValueError("AML Package holds at most 255 elements (use VarPackage)")
    body = bytes([len(elements)]) + b"".join(elements)
    return bytes([PACKAGE_OP]) + pkg_length(len(body)) + body


def scope(path: str, children: Iterable[bytes]) -> bytes:
    body = name_string(path) + b"".join(children)
    return bytes([SCOPE_OP]) + pkg_length(len(body)) + body


def device(path: str, children: Iterable[bytes]) -> bytes:
    body = name_string(path) + b"".join(children)
    return bytes([EXT_OP_PREFIX, DEVICE_OP]) + pkg_length(len(body)) + body


def method(path: str, argument_count: int, body_terms: Iterable[bytes], *, serialized: bool = False) -> bytes:
    if not 0 <= argument_count <= 7:
        raise ValueError("AML methods take 0..7 arguments")
    flags = argument_count | (0x08 if serialized else 0)
    body = name_string(path) + bytes([flags]) + b"".join(body_terms)
    return bytes([METHOD_OP]) + pkg_length(len(body)) + body


def return_(value: bytes) -> bytes:
    return bytes([RETURN_OP]) + value


# Resource descriptors (ACPI 6.x §6.4); a ResourceTemplate is a Buffer of them plus EndTag.

def resource_template(descriptors: Iterable[bytes]) -> bytes:
    """End tag checksum 0 means "treat as checksummed OK", which is what iasl emits."""
    return buffer(b"".join(descriptors) + END_TAG)


def memory32_fixed(base: int, length: int, *, writable: bool = True) -> bytes:
    return struct.pack("<BHBII", 0x86, 9, 1 if writable else 0, base, length)


def io(minimum: int, maximum: int, alignment: int, length: int, *, decode16: bool = True) -> bytes:
    return struct.pack("<BBHHBB", 0x47, 1 if decode16 else 0, minimum, maximum, alignment, length)


def irq_no_flags(irqs: Iterable[int]) -> bytes:
    """Short IRQ descriptor (IRQNoFlags: edge, active high, exclusive) for ISA IRQs 0..15."""
    mask = 0
    for irq in irqs:
        if not 0 <= irq <= 15:
            raise ValueError(f"ISA IRQ out of range: {irq}")
        mask |= 1 << irq
    return struct.pack("<BH", 0x22, mask)


def interrupt(
    gsis: Sequence[int],
    *,
    consumer: bool = True,
    level_triggered: bool = False,
    active_low: bool = False,
    shared: bool = False,
) -> bytes:
    """Extended Interrupt descriptor: GSIs (not limited to ISA IRQs) with explicit trigger."""
    if not 1 <= len(gsis) <= 255:
        raise ValueError("Interrupt() takes 1..255 GSIs")
    flags = (consumer << 0) | ((not level_triggered) << 1) | (active_low << 2) | (shared << 3)
    body = struct.pack("<BB", flags, len(gsis)) + b"".join(struct.pack("<I", gsi) for gsi in gsis)
    return struct.pack("<BH", 0x89, len(body)) + body
