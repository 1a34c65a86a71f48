"""Checks made inside the jail while still root, for failures that would otherwise only show
after the privilege drop, when the run can no longer remove what it created.

exec(2) of the copied file fails when the file is not executable by the jailed uid, or when its
ELF interpreter (or `#!` interpreter) is not inside the jail, a common mistake with dynamically
linked VMMs. Catching it here keeps the jail fail-closed.
"""

from __future__ import annotations

import os
import stat
import struct

from jailer.errors import ErrorKind, JailerError, os_error_text

_PT_INTERP = 3
_ELFCLASS64 = 2
_ELFDATA2LSB = 1
_EM_X86_64 = 62
_ENOEXEC = 8


class _NotExecutable(Exception):
    """execve would fail with ENOEXEC."""


def interpreter_of(path: str) -> str | None:
    """The ELF PT_INTERP path or the `#!` interpreter of `path`, or None when it needs none."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if header.startswith(b"#!"):
            handle.seek(0)
            line = handle.readline(256)[2:].strip()
            return line.split()[0].decode(errors="surrogateescape") if line else None
        if not header.startswith(b"\x7fELF"):
            # binfmt_misc handlers live outside the jail, so in it only ELF and #! can run.
            raise _NotExecutable("neither an ELF file nor a #! script")
        if len(header) < 64 or header[4] != _ELFCLASS64 or header[5] != _ELFDATA2LSB:
            raise _NotExecutable("not a 64-bit little-endian ELF file")
        machine, = struct.unpack_from("<H", header, 0x12)
        if machine != _EM_X86_64:
            raise _NotExecutable(f"ELF machine {machine} is not x86-64 ({_EM_X86_64})")
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
        for index in range(phnum):
            entry = index * phentsize
            p_type, = struct.unpack_from("<I", table, entry)
            if p_type == _PT_INTERP:
                offset, = struct.unpack_from("<Q", table, entry + 8)
                size, = struct.unpack_from("<Q", table, entry + 32)
                handle.seek(offset)
                return handle.read(size).rstrip(b"\0").decode(errors="surrogateescape")
    return None


def check_executable(jail_path: str, uid: int, gid: int) -> None:
    """Raise EXEC with the errno execve would give, for the cases detectable beforehand."""
    try:
        if not _may_execute(os.stat(jail_path), uid, gid):
            raise JailerError(ErrorKind.EXEC, error=os_error_text(13))
        interpreter = interpreter_of(jail_path)
    except OSError as error:
        raise JailerError(ErrorKind.EXEC, error=os_error_text(error)) from None
    except (_NotExecutable, struct.error) as error:
        raise JailerError(ErrorKind.EXEC, error=f"{os_error_text(_ENOEXEC)}: {error or 'truncated ELF file'}") from None
    if interpreter is not None and not os.path.exists(interpreter):
        raise JailerError(
            ErrorKind.EXEC, error=f"{os_error_text(2)}: interpreter {interpreter} is not inside the jail"
        )


def _may_execute(info: os.stat_result, uid: int, gid: int) -> bool:
    """Plain DAC: after the drop no capability (not even for uid 0) overrides the mode bits."""
    if not stat.S_ISREG(info.st_mode):
        return False
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)
