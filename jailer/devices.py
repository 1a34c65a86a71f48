"""Device nodes inside the jail: only what a VMM needs (reference §2.9)."""

from __future__ import annotations

import os
import stat

from jailer.errors import ErrorKind, JailerError, os_error_text
from jailer.undo import UndoLog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MISC_MAJOR = 10
URANDOM_WARNING = (
    "Warning! Could not create /dev/urandom device inside jailer: {error}.\n"
    "MMDS version 2 will not be available to use."
)


class DeviceNode:
    """A character device the jail gets; `fatal=False` only warns when mknod fails."""

    __slots__ = ("path", "major", "minor", "fatal")

    def __init__(self, path: str, major: int, minor: int, fatal: bool = True) -> None:
        self.path = path
        self.major = major
        self.minor = minor
        self.fatal = fatal


def jail_devices(userfaultfd_minor: int | None) -> list[DeviceNode]:
    devices = [
        DeviceNode("/dev/net/tun", MISC_MAJOR, 200),
        DeviceNode("/dev/kvm", MISC_MAJOR, 232),
        DeviceNode("/dev/urandom", 1, 9, fatal=False),
    ]
    if userfaultfd_minor is not None:
        devices.append(DeviceNode("/dev/userfaultfd", MISC_MAJOR, userfaultfd_minor))
    return devices


def make_device(device: DeviceNode, uid: int, gid: int) -> None:
    try:
        os.mknod(device.path, stat.S_IFCHR | stat.S_IRUSR | stat.S_IWUSR, os.makedev(device.major, device.minor))
    except OSError as error:
        raise JailerError(ErrorKind.MKNOD, path=device.path, error=os_error_text(error)) from None
    try:
        os.chown(device.path, uid, gid)
    except OSError as error:
        raise JailerError(ErrorKind.CHANGE_FILE_OWNER, path=device.path, error=os_error_text(error)) from None


def make_devices(
    userfaultfd_minor: int | None, uid: int, gid: int, host_path: Callable[[str], str], undo: UndoLog
) -> None:
    for device in jail_devices(userfaultfd_minor):
        try:
            make_device(device, uid, gid)
        except JailerError as error:
            if error.kind is ErrorKind.CHANGE_FILE_OWNER:
                undo.created_path(host_path(device.path), is_dir=False)
            if device.fatal:
                raise
            os.write(1, (URANDOM_WARNING.format(error=error) + "\n").encode())
            continue
        undo.created_path(host_path(device.path), is_dir=False)
