"""A reproducible newc ("070701") cpio writer, the format the kernel unpacks as initramfs.

Entries are sorted by path (parents sort before their children), inode numbers are assigned
in that order, and mtime, uid and gid are fixed, so the archive depends only on the contents.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    path: str  # relative, no leading '/'
    mode: int  # full st_mode: type and permissions
    data: bytes = b""  # file contents, or the target of a symlink
    rdev_major: int = 0
    rdev_minor: int = 0


def directory(path: str, permissions: int = 0o755) -> Entry:
    return Entry(path, stat.S_IFDIR | permissions)


def regular(path: str, data: bytes, permissions: int = 0o644) -> Entry:
    return Entry(path, stat.S_IFREG | permissions, data)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, stat.S_IFLNK | 0o777, target.encode())


def char_device(path: str, major: int, minor: int, permissions: int = 0o600) -> Entry:
    return Entry(path, stat.S_IFCHR | permissions, b"", major, minor)


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _record(name: bytes, ino: int, mode: int, nlink: int, mtime: int, data: bytes, major: int, minor: int) -> bytes:
    fields = (ino, mode, 0, 0, nlink, mtime, len(data), 0, 0, major, minor, len(name) + 1, 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    name_part = name + b"\0"
    return header + name_part + _pad(len(header) + len(name_part)) + data + _pad(len(data))


def archive(entries: list[Entry], mtime: int = 0) -> bytes:
    paths = [entry.path for entry in entries]
    duplicates = {path for path in paths if paths.count(path) > 1}
    if duplicates:
        raise ValueError(f"duplicate cpio entries: {sorted(duplicates)}")
    chunks = []
    for ino, entry in enumerate(sorted(entries, key=lambda e: e.path), start=1):
        nlink = 2 if stat.S_ISDIR(entry.mode) else 1
        chunks.append(
            _record(entry.path.encode(), ino, entry.mode, nlink, mtime, entry.data, entry.rdev_major, entry.rdev_minor)
        )
    chunks.append(_record(b"TRAILER!!!", 0, 0, 1, 0, b"", 0, 0))
    body = b"".join(chunks)
    return body + _pad(len(body))
