"""The jail's directory tree and the switch into it (reference §2.2, §2.8, §2.9).

No chroot(2): a private (slave) mount namespace, a recursive self-bind of the jail root,
pivot_root, and a lazy detach of the old root, so nothing of the host tree stays reachable.
"""

from __future__ import annotations

import os
import stat

from jailer.errors import ErrorKind, JailerError, os_error_text
from jailer.undo import UndoLog

JAILED_FOLDERS = ("/", "/dev", "/dev/net", "/run")
OLD_ROOT = "old_root"


def create_dir_all(path: str, undo: UndoLog) -> None:
    """`mkdir -p` that records each directory it creates (deepest removed first on undo)."""
    missing: list[str] = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o777)
        except FileExistsError:
            if not os.path.isdir(directory):
                raise JailerError(ErrorKind.CREATE_DIR, path=path, error=os_error_text(17)) from None
            continue
        except OSError as error:
            raise JailerError(ErrorKind.CREATE_DIR, path=path, error=os_error_text(error)) from None
        undo.created_path(directory, is_dir=True)


def _step(kind: ErrorKind, call, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        call(*args)
    except OSError as error:
        raise JailerError(kind, error=os_error_text(error)) from None


def unshare_mount_namespace() -> None:
    """New mount namespace with `/` a recursive slave: host mounts still propagate in, ours never out."""
    from jailer import libc

    _step(ErrorKind.UNSHARE_NEWNS, libc.unshare, libc.CLONE_NEWNS)
    _step(ErrorKind.MOUNT_PROPAGATION_SLAVE, libc.mount, None, "/", None, libc.MS_SLAVE | libc.MS_REC)


def pivot_into(chroot_dir: str) -> None:
    from jailer import libc

    _step(ErrorKind.MOUNT_BIND, libc.mount, chroot_dir, chroot_dir, None, libc.MS_BIND | libc.MS_REC)
    _step(ErrorKind.CHDIR, os.chdir, chroot_dir)
    _step(ErrorKind.MKDIR_OLD_ROOT, os.mkdir, OLD_ROOT, 0o600)
    try:
        _step(ErrorKind.PIVOT_ROOT, libc.pivot_root, ".", OLD_ROOT)
    except JailerError:
        os.rmdir(OLD_ROOT)
        raise
    _step(ErrorKind.CHDIR_NEW_ROOT, os.chdir, "/")
    _step(ErrorKind.UMOUNT_OLD_ROOT, libc.umount2, OLD_ROOT, libc.MNT_DETACH)
    _step(ErrorKind.RMDIR_OLD_ROOT, os.rmdir, OLD_ROOT)


def setup_jailed_folders(uid: int, gid: int, host_path, undo: UndoLog) -> None:  # type: ignore[no-untyped-def]
    """`/`, `/dev`, `/dev/net`, `/run` at 0700 owned by uid:gid (umask-independent).

    `host_path(jail_path)` maps a jail path to its host path for the undo log.
    """
    for folder in JAILED_FOLDERS:
        if os.path.isdir(folder):
            _restore_on_undo(host_path(folder), os.stat(folder), undo)
        else:
            try:
                os.mkdir(folder, 0o700)
            except OSError as error:
                raise JailerError(ErrorKind.CREATE_DIR, path=folder, error=os_error_text(error)) from None
            undo.created_path(host_path(folder), is_dir=True)
        try:
            os.chmod(folder, 0o700)
        except OSError as error:
            raise JailerError(ErrorKind.CHANGE_FILE_MODE, path=folder, error=os_error_text(error)) from None
        try:
            os.chown(folder, uid, gid)
        except OSError as error:
            raise JailerError(ErrorKind.CHANGE_FILE_OWNER, path=folder, error=os_error_text(error)) from None


def _restore_on_undo(path: str, before: os.stat_result, undo: UndoLog) -> None:
    """A folder the user pre-created gets its mode and owner back if the run fails."""

    def restore() -> None:
        os.chown(path, before.st_uid, before.st_gid, follow_symlinks=False)
        os.chmod(path, stat.S_IMODE(before.st_mode), follow_symlinks=False)

    undo.add(f"{path} (mode and owner)", restore)
