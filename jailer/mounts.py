"""Bind mounts into the jail (`--ro-bind`, `--bind`, `--python-runtime`).

They are made inside the jail's own mount namespace after `/` became a recursive slave and
before pivot_root, so they never appear on the host. Each is a plain (non-recursive) bind,
remounted nosuid,nodev (and read-only for `--ro-bind`), keeping noexec when the source has it.
Mount points the run creates inside the jail root are recorded for fail-closed clean-up.
"""

from __future__ import annotations

import os
import stat

from jailer.errors import ErrorKind, JailerError, os_error_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class BindMount:
    """Host path `source` mounted at jail path `target`."""

    __slots__ = ("source", "target", "read_only")

    def __init__(self, source: str, target: str, read_only: bool) -> None:
        self.source = source
        self.target = target
        self.read_only = read_only

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BindMount) and (self.source, self.target, self.read_only) == (
            other.source, other.target, other.read_only)

    def __repr__(self) -> str:
        return f"BindMount({self.source!r}, {self.target!r}, read_only={self.read_only})"


def parse_bind(spec: str, *, read_only: bool) -> BindMount:
    """`SRC[:DST]`: the source must exist; DST (default SRC) must be absolute without `..`."""
    source, _, target = spec.partition(":")
    target = target or source
    if not source:
        raise JailerError(ErrorKind.BIND_SPEC, value=spec, detail="the source path is empty")
    try:
        os.stat(source)
    except OSError as error:
        raise JailerError(ErrorKind.BIND_SPEC, value=spec, detail=f"source {source}: {os_error_text(error)}") from None
    except ValueError:
        raise JailerError(ErrorKind.BIND_SPEC, value=spec, detail="the path contains a NUL byte") from None
    if "\0" in target:
        raise JailerError(ErrorKind.BIND_SPEC, value=spec, detail="the path contains a NUL byte")
    _check_target_syntax(spec, target)
    return BindMount(os.path.abspath(source), os.path.normpath(target), read_only)


def _check_target_syntax(spec: str, target: str) -> None:
    if not target.startswith("/"):
        raise JailerError(ErrorKind.BIND_SPEC, value=spec, detail=f"destination {target} is not an absolute path")
    if ".." in target.split("/"):
        raise JailerError(ErrorKind.BIND_SPEC, value=spec, detail=f"destination {target} contains '..'")


def check_bind_targets(binds: list[BindMount], exec_file_name: str) -> None:
    """Refuse targets that would hide what the jailer itself puts in the jail.

    A bind over `/` or `/dev` would make the jailer's mknod calls land in a host directory.
    """
    reserved = ("/", "/dev", f"/{exec_file_name}", f"/{exec_file_name}.pid")
    for bind in binds:
        if bind.target in reserved or bind.target.startswith("/dev/"):
            raise JailerError(
                ErrorKind.BIND_SPEC, value=f"{bind.source}:{bind.target}",
                detail=f"destination {bind.target} is managed by the jailer"
            )


def python_runtime_binds() -> list[BindMount]:
    """Read-only binds for the Python runtime our `vmm` needs, computed by `jailer.runtime`."""
    try:
        from jailer.runtime import python_runtime_binds as compute
    except ImportError as error:
        raise JailerError(ErrorKind.PYTHON_RUNTIME, detail=f"jailer.runtime is unavailable ({error})") from None
    try:
        pairs = compute()
    except (OSError, ValueError) as error:
        raise JailerError(ErrorKind.PYTHON_RUNTIME, detail=str(error)) from None
    return [BindMount(str(source), os.path.normpath(str(target)), True) for source, target in pairs]


def _create_mount_point(
    jail_root: str, bind: BindMount, source_is_dir: bool, record: Callable[[str, bool], None]
) -> str:
    """Create the mount point (and missing parents) under `jail_root`, never through a symlink.

    `record(path, is_dir)` is called for each path this run created, parents first.
    """
    spec = f"{bind.source}:{bind.target}"
    current = jail_root
    components = [part for part in bind.target.split("/") if part]
    for index, part in enumerate(components):
        current = os.path.join(current, part)
        last = index == len(components) - 1
        want_dir = source_is_dir or not last
        try:
            mode = os.lstat(current).st_mode
        except OSError as error:
            if not isinstance(error, FileNotFoundError):  # e.g. a component over NAME_MAX
                raise JailerError(ErrorKind.CREATE_DIR, path=current, error=os_error_text(error)) from None
            try:
                if want_dir:
                    os.mkdir(current, 0o755)
                else:
                    os.close(os.open(current, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
            except OSError as error:
                raise JailerError(ErrorKind.CREATE_DIR, path=current, error=os_error_text(error)) from None
            record(current, want_dir)
            continue
        if stat.S_ISLNK(mode) or (want_dir and not stat.S_ISDIR(mode)):
            raise JailerError(
                ErrorKind.BIND_SPEC, value=spec,
                detail=f"{current} inside the jail is a symlink or not a directory",
            )
    return current


def make_bind_mounts(binds: list[BindMount], jail_root: str, record: Callable[[str, bool], None]) -> None:
    """Mount every bind under `jail_root` (host view, inside the jail's mount namespace)."""
    if not binds:
        return
    from jailer import libc

    # Shallow targets first, so a bind nested inside another lands on top of it (stable: for
    # the same target, the later flag wins).
    for bind in sorted(binds, key=lambda bind: bind.target.count("/")):
        source_is_dir = os.path.isdir(bind.source)
        mount_point = _create_mount_point(jail_root, bind, source_is_dir, record)
        try:
            libc.mount(bind.source, mount_point, None, libc.MS_BIND)
            flags = libc.MS_REMOUNT | libc.MS_BIND | libc.MS_NOSUID | libc.MS_NODEV
            if bind.read_only:
                flags |= libc.MS_RDONLY
            if os.statvfs(mount_point).f_flag & os.ST_NOEXEC:
                flags |= libc.MS_NOEXEC
            libc.mount(None, mount_point, None, flags)
        except OSError as error:
            raise JailerError(
                ErrorKind.BIND_MOUNT, src=bind.source, dst=bind.target, error=os_error_text(error)
            ) from None
