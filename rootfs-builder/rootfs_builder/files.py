"""Output files that appear whole or not at all, and content hashes.

Outputs are written to a temporary name in the destination directory and renamed into place
at the end, so an interrupted or failed build never leaves a half-written artifact behind,
and a rename within one directory cannot fail for lack of space.
"""

from __future__ import annotations

import hashlib
import os
import shutil
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


def check_output_dir(final: Path) -> None:
    """Fail before any slow work when `final` (existing or to be created) cannot be written."""
    final = final.absolute()
    _check_writable_dir(final if final.exists() else final.parent)


@contextmanager
def output_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to `final`; rename it to `final` only if the body succeeds."""
    final = final.absolute()
    _check_writable_dir(final.parent)
    if final.is_dir():
        raise BuildError(f"output {final} is a directory")
    handle, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o644)
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
        for entry in sorted(staging.iterdir()):
            target = final / entry.name
            if target.is_dir() and not target.is_symlink():
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
