"""Copy the exec file into the jail: always a copy, never a hard link (reference §2.3).

Hard links fail across devices and would let jails share `.text` pages; the destination is
opened with O_NOFOLLOW and rejected when it is a hard link, so a pre-placed link cannot redirect
the write or the chown to a host file.
"""

from __future__ import annotations

import os

from jailer.errors import ErrorKind, JailerError, os_error_text
from jailer.undo import UndoLog

_CHUNK = 1 << 20


def copy_exec_file(source: str, chroot_dir: str, exec_file_name: str, uid: int, gid: int, undo: UndoLog) -> str:
    destination = os.path.join(chroot_dir, exec_file_name)
    try:
        source_fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise JailerError(ErrorKind.OPEN, path=source, error=os_error_text(error)) from None
    try:
        mode = os.fstat(source_fd).st_mode
        existed = os.path.lexists(destination)
        try:
            dest_fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o7777)
        except OSError as error:
            raise JailerError(ErrorKind.OPEN, path=destination, error=os_error_text(error)) from None
        if not existed:
            undo.created_path(destination, is_dir=False)
        try:
            if os.fstat(dest_fd).st_nlink > 1:
                raise JailerError(ErrorKind.HARD_LINK, path=destination)
            try:
                os.fchown(dest_fd, uid, gid)
            except OSError as error:
                raise JailerError(ErrorKind.CHANGE_FILE_OWNER, path=destination, error=os_error_text(error)) from None
            try:
                _copy_fd(source_fd, dest_fd)
            except OSError as error:
                raise JailerError(ErrorKind.COPY, src=source, dst=destination, error=os_error_text(error)) from None
        finally:
            os.close(dest_fd)
    finally:
        os.close(source_fd)
    return destination


def _copy_fd(source_fd: int, dest_fd: int) -> None:
    """Copy in the kernel where possible (copy_file_range/sendfile), like Rust's io::copy."""
    size = os.fstat(source_fd).st_size
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dest_fd, source_fd, offset, min(size - offset, 1 << 30))
            if sent == 0:
                break
            offset += sent
        return
    except OSError as error:
        if offset or error.errno not in (22, 38):  # EINVAL/ENOSYS: fall back to read/write
            raise
    while chunk := os.read(source_fd, _CHUNK):
        os.write(dest_fd, chunk)
