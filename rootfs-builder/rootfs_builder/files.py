"""Output files that appear whole or not at all, and content hashes.

Outputs are written to a temporary name in the destination directory and renamed into place
at the end, so an interrupted or failed build never leaves a half-written artifact behind,
and a rename within one directory cannot fail for lack of space. A rename replaces whatever
the name points at, so an existing target must be a regular file (or, for an output directory's
entries, a real directory): devices, FIFOs, sockets and symlinks are refused, never replaced.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rootfs_builder.errors import BuildError


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_writable_dir(directory: Path) -> None:
    if not directory.is_dir():
        raise BuildError(f"output directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BuildError(f"output directory {directory} is not writable")


_KINDS = {
    stat.S_IFREG: "a regular file",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
}


def _existing_kind(path: Path) -> int | None:
    """The file type of `path` itself (a symlink is not followed), or None if it is absent."""
    try:
        return stat.S_IFMT(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise BuildError(f"cannot inspect output {path}: {error.strerror}") from None


def check_replaceable(target: Path, *, directory: bool = False) -> None:
    """Refuse to replace `target` unless it is absent or an earlier output of the same kind.

    Outputs are renamed over their target, and a rename replaces whatever the name points at:
    ``--out /dev/null`` would swap the host's null device for a regular file. So an existing
    target must be a regular file (a real directory where `directory` is set); symlinks,
    devices, FIFOs and sockets are refused, since none of them is something a build wrote.
    """
    kind = _existing_kind(target)
    wanted = stat.S_IFDIR if directory else stat.S_IFREG
    if kind is None or kind == wanted:
        return
    expected = "a directory" if directory else "a regular file"
    what = _KINDS.get(kind, "of an unknown file type")
    raise BuildError(f"output {target} is {what}, not {expected}; refusing to replace it")


def check_output_file(final: Path) -> None:
    """Fail before any slow work when `final` cannot be written or must not be replaced."""
    final = final.absolute()
    _check_writable_dir(final.parent)
    check_replaceable(final)


def check_output_dir(final: Path, *, files: tuple[str, ...] = (), dirs: tuple[str, ...] = ()) -> None:
    """Fail before any slow work when `final` (existing or to be created) cannot be written,
    or when one of the `files` or `dirs` the build will put in it must not be replaced."""
    final = final.absolute()
    kind = _existing_kind(final)
    if kind is not None and not final.is_dir():  # a symlink to a directory is written into
        raise BuildError(f"output {final} is {_KINDS.get(kind, 'of an unknown file type')}, not a directory")
    _check_writable_dir(final if kind is not None else final.parent)
    for name in files:
        check_replaceable(final / name)
    for name in dirs:
        check_replaceable(final / name, directory=True)


@contextmanager
def output_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it to `final` only if the body succeeds.

    The target is checked before the body runs and again just before the rename, since the
    body can take minutes. (No rename flag means "replace only a regular file", so a target
    swapped for a device in the last microseconds is not caught; such a swap needs write
    access to the output directory, which would let it do the same damage anyway.)
    """
    final = final.absolute()
    check_output_file(final)
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
        check_replaceable(final)
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def output_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary directory; its entries replace same-named ones in `final` on success.

    `final` is created if missing (its parent must exist) and removed again if the build fails
    and it was created here.
    """
    final = final.absolute()
    created = False
    if not final.exists():
        _check_writable_dir(final.parent)
        try:
            final.mkdir()
        except OSError as error:
            raise BuildError(f"cannot create output directory {final}: {error.strerror}") from None
        created = True
    _check_writable_dir(final)
    staging = Path(tempfile.mkdtemp(prefix=".rootfs-builder.", suffix=".partial", dir=final))
    try:
        yield staging
        entries = sorted(staging.iterdir())
        # Every target is checked before the first is replaced, so a refusal changes nothing.
        for entry in entries:
            check_replaceable(final / entry.name, directory=entry.is_dir() and not entry.is_symlink())
        for entry in entries:
            target = final / entry.name
            if _existing_kind(target) == stat.S_IFDIR:
                shutil.rmtree(target)
            os.replace(entry, target)
    except BaseException:
        if created:
            shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_entry(source: Path, destination: Path) -> None:
    """Copy a cached file or tree (symlinks kept as symlinks) into a staging directory."""
    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, destination, symlinks=True)
    else:
        shutil.copyfile(source, destination, follow_symlinks=False)


def deliver(cached_file: Path, out: Path) -> tuple[Path, int, str]:
    """Copy a cached artifact to `out` atomically; (absolute path, size, sha256) of the result."""
    with output_file(out) as temporary:
        shutil.copyfile(cached_file, temporary)
    out = out.absolute()
    return out, out.stat().st_size, sha256_file(out)
