"""The toolchain's writers: every file written where a user asked goes through here.

`write_category_files` writes one file per category into a directory, all of them or none.
Every name is checked and every file is written to a temporary next to its target before the
first one is renamed into place; whatever fails, what this run created (files and directories)
is removed again. Category names become file names only through `check_category_file_name`,
the single rule for which names can. (Reading is `jailer.policies.read_regular_file`, kept in
the package itself because the jailer's and the VMM's start-up path reads policies with it.)
"""

from __future__ import annotations

import os

from jailer.policies.errors import PolicyError

TYPE_CHECKING = False  # typing stays unimported at run time, as in the rest of the package
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


def check_category_file_name(name: str) -> None:
    """PolicyError unless `name` can become a file name in the directory it is written to:
    not empty, not `.` or `..`, no `/` (which would leave the directory) and no NUL byte,
    representable in the file system's encoding."""
    if not isinstance(name, str) or not name:
        raise PolicyError("a category name must not be empty")
    try:
        encodable = bool(os.fsencode(name))
    except UnicodeEncodeError:
        encodable = False
    if not encodable or "/" in name or "\0" in name or name in (".", ".."):
        raise PolicyError(f"category name {name!r} cannot be used as a file name")


def check_output_path(path: str | None, option: str) -> None:
    """An empty path is a mistake, not a request for the current directory or for no output."""
    if path is not None and not path:
        raise PolicyError(f"{option}: the path must not be empty")


def write_category_files(directory: str | os.PathLike[str], contents: Mapping[str, bytes], suffix: str) -> list[str]:
    """Write `<category><suffix>` for every category in `contents` into `directory` (created
    with its missing parents), all or none; the paths written, in `contents`' order."""
    directory = os.fspath(directory)
    check_output_path(directory, "output directory")
    for name in contents:
        check_category_file_name(name)
    targets = {name: os.path.join(directory, f"{name}{suffix}") for name in contents}
    for path in targets.values():
        if os.path.isdir(path) and not os.path.islink(path):
            raise PolicyError(f"{path} is a directory")
    created_directories = _make_directories(directory)
    temporaries: list[str] = []
    placed: list[str] = []
    try:
        for name, data in contents.items():
            temporaries.append(write_temporary(targets[name], data))
        for temporary, path in zip(temporaries, targets.values()):
            existed = os.path.lexists(path)
            os.rename(temporary, path)
            if not existed:
                placed.append(path)
    except BaseException:
        for path in temporaries + placed:
            _remove(path, os.unlink)
        for created in created_directories:
            _remove(created, os.rmdir)
        raise
    return list(targets.values())


def write_temporary(path: str, data: bytes) -> str:
    """`data` in a new temporary file next to `path` (mode 0644 whatever the umask, owned by
    root when run as root, synced), for the caller to rename over `path`; its name. Nothing is
    left behind when this fails."""
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if os.geteuid() == 0:
                os.fchown(fd, 0, 0)
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(temporary, os.unlink)
        raise
    return temporary


def _make_directories(directory: str) -> list[str]:
    """Create `directory` and its missing parents; the ones this call created, deepest first."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    created: list[str] = []
    try:
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                if not os.path.isdir(path):
                    raise
                continue  # made by someone else meanwhile: not ours to remove
            created.insert(0, path)
    except BaseException:
        for path in created:
            _remove(path, os.rmdir)
        raise
    if not os.path.isdir(directory):
        raise NotADirectoryError(20, "Not a directory", directory)
    return created


def _remove(path: str, remove: Callable[[str], None]) -> None:
    try:
        remove(path)
    except OSError:
        pass  # clean-up is best effort: the original error is the one to report
