"""The VMM's start-path modules as one file of bytecode, served by a meta-path finder.

Importing a module through the standard path finder costs ~100-200 µs on our PVM hosts
(directory and source stats, opening and reading its `.pyc`, validating it) before its code
runs, and the VMM imports ~50 of its own modules before the guest's first instruction: ~4
ms of every start, a product target. `python -m vmm.bundle` (run by the bootstrap after
`compileall`) writes their bytecode into one file; `install` (called by `vmm.cli` before it
imports the rest) maps it and puts a finder in front of `sys.meta_path` that executes a
module's code from the mapping, and `release` (called by `Machine.run` once the VM is built)
unmaps it and drops the finder, so later imports take the usual path. Mapped, not read: the
file's pages come from the page cache a few at a fault, and a module's code is unmarshalled
straight from them (reading ~300 KB and splitting it into per-module bytes copied it twice,
~150 fresh pages at ~5 µs a fault on our PVM hosts); modules the run never imports are never
touched.

Layout: the index's length (4 bytes, little-endian), the index (marshal: format, the
interpreter's bytecode magic, and per module: is a package, source path, source mtime_ns and
size, and where its marshalled code lies in the file), then the modules' code.

Never stale: each entry records its source file's path, size and mtime (the checks CPython
applies to a `.pyc`; taken before the source is read), and the finder serves a module only
while its source still matches and sits in the directory its parent package is imported
from (a tree copied with its bundle, or a `jailer` found elsewhere, gets nothing from it);
otherwise (and for modules not in the bundle, a bundle from another interpreter or format,
or a missing, damaged or untrusted file) it declines, and the module is imported as usual.
Trusted like the policy store (`jailer.trusted`, which imports nothing of `jailer.policies`, so
the policy modules the VMM loads its filters with come from the bundle too): a regular file
owned by root or the running user, writable by its owner only, never through a symlink. Code
keeps its source file name, so tracebacks and `__file__` are what they would be.
"""

from __future__ import annotations

import marshal
import mmap
import os
import sys

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Sequence

FORMAT = b"stockade-bundle/2"
# The VMM and the parts of `jailer` it loads its filters with (`install` itself imports
# `jailer.trusted`, with its package, the usual way).
PACKAGES = ("vmm",)
EXTRA_MODULES = (
    "jailer.native",
    "jailer.policies",
    "jailer.policies.errors",
    "jailer.policies.precompiled",
    "jailer.policies.loader",
    "jailer.policies.syscalls",
)
# Imported before `install` runs, so never served: left out.
IMPORTED_BEFORE = ("vmm", "vmm.__main__", "vmm.bundle", "vmm.cli", "vmm.errors")
_MAX_SIZE = 8 << 20
_INDEX_LENGTH_SIZE = 4

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bundle_path(root: str = PROJECT_ROOT) -> str:
    tag = sys.implementation.cache_tag or "none"
    return os.path.join(root, "vmm", "__pycache__", f"start-path.{tag}.bundle")


def _magic() -> bytes:
    return sys.modules["_frozen_importlib_external"].MAGIC_NUMBER


def _source_path(root: str, name: str) -> tuple[str, bool]:
    """(source file, is a package) for module ``name`` under ``root``."""
    base = os.path.join(root, *name.split("."))
    package_init = os.path.join(base, "__init__.py")
    if os.path.isfile(package_init):
        return package_init, True
    return base + ".py", False


def module_names(root: str = PROJECT_ROOT) -> list[str]:
    names = list(EXTRA_MODULES)
    for package in PACKAGES:
        top = os.path.join(root, package)
        for directory, subdirectories, files in os.walk(top):
            subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
            prefix = os.path.relpath(directory, root).replace(os.sep, ".")
            for file in sorted(files):
                if file.endswith(".py"):
                    stem = file[: -len(".py")]
                    names.append(prefix if stem == "__init__" else f"{prefix}.{stem}")
    return [name for name in names if name not in IMPORTED_BEFORE]


def build(root: str = PROJECT_ROOT, path: str | None = None) -> str:
    """Write the bundle for the modules under ``root``; returns its path."""
    modules: dict[str, tuple[bool, str, int, int, bytes]] = {}
    for name in module_names(root):
        source_path, is_package = _source_path(root, name)
        with open(source_path, "rb") as stream:
            info = os.fstat(stream.fileno())  # before reading: a later change then mismatches
            source = stream.read()
        code = compile(source, source_path, "exec", dont_inherit=True)
        modules[name] = (is_package, source_path, info.st_mtime_ns, info.st_size, marshal.dumps(code))
    target = path or bundle_path(root)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    from jailer.policies.precompiled import write_atomically

    write_atomically(target, encode(FORMAT, _magic(), modules))
    return target


def encode(form: bytes, magic: bytes, modules: dict[str, tuple[bool, str, int, int, bytes]]) -> bytes:
    """A bundle's bytes (see Layout) for ``modules``: name -> (is a package, source path,
    source mtime_ns, source size, marshalled code)."""
    index: dict[str, tuple[bool, str, int, int, int, int]] = {}
    offset = 0
    for name, (is_package, source_path, mtime_ns, size, code) in modules.items():
        index[name] = (is_package, source_path, mtime_ns, size, offset, len(code))
        offset += len(code)
    # Offsets in the index count from the end of the index; made absolute by `_read_index`.
    header = marshal.dumps((form, magic, index))
    return len(header).to_bytes(_INDEX_LENGTH_SIZE, "little") + header + b"".join(code for *_, code in modules.values())


def decode(data: bytes) -> tuple[bytes, bytes, dict[str, tuple[bool, str, int, int, bytes]]] | None:
    """`encode`'s arguments back from a bundle's bytes (for tests and inspection), or None."""
    read = _read_index(data)
    if read is None:
        return None
    form, magic, index = read
    modules = {name: (*entry[:4], bytes(data[entry[4] : entry[4] + entry[5]])) for name, entry in index.items()}
    return form, magic, modules


def _read_index(data: bytes | mmap.mmap) -> tuple[bytes, bytes, dict[str, tuple[bool, str, int, int, int, int]]] | None:
    """(format, magic, index with absolute offsets) if ``data`` is a well-formed bundle whose
    every entry lies inside it, else None."""
    if len(data) < _INDEX_LENGTH_SIZE:
        return None
    length = int.from_bytes(data[:_INDEX_LENGTH_SIZE], "little")
    start = _INDEX_LENGTH_SIZE + length
    if start > len(data):
        return None
    try:
        form, magic, index = marshal.loads(data[_INDEX_LENGTH_SIZE:start])
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(index, dict):
        return None
    located = {}
    for name, entry in index.items():
        if not (isinstance(entry, tuple) and len(entry) == 6 and all(isinstance(n, int) for n in entry[2:])):
            return None
        offset, size = entry[4], entry[5]
        if offset < 0 or size < 0 or start + offset + size > len(data):
            return None
        located[name] = (*entry[:4], start + offset, size)
    return form, magic, located


_CODE_TYPE = type(bundle_path.__code__)


class BundleFinder:
    """Finds and loads (PEP 451) the modules of one bundle whose sources are unchanged."""

    def __init__(self, data: mmap.mmap, index: dict[str, tuple[bool, str, int, int, int, int]]) -> None:
        self._data: mmap.mmap | None = data
        self._entries = index
        self._module_spec = sys.modules["_frozen_importlib"].ModuleSpec

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: object = None) -> object:
        entry = self._entries.get(name)
        if entry is None:
            return None
        is_package, source_path, mtime_ns, size, _, _ = entry
        directory = os.path.dirname(source_path)
        if path is None or (os.path.dirname(directory) if is_package else directory) not in path:
            return None  # not where its parent package was imported from
        try:
            info = os.stat(source_path)
        except OSError:
            return None
        if info.st_mtime_ns != mtime_ns or info.st_size != size:
            return None
        spec = self._module_spec(name, self, origin=source_path, is_package=is_package)
        if is_package:
            spec.submodule_search_locations = [os.path.dirname(source_path)]
        spec.has_location = True
        return spec

    def create_module(self, spec: object) -> None:
        return None  # the default module object

    def exec_module(self, module: object) -> None:
        spec = module.__spec__  # type: ignore[attr-defined]
        entry = self._entries.pop(spec.name, None)
        compiled = None
        if entry is not None and self._data is not None:
            *_, offset, size = entry
            try:
                with memoryview(self._data) as view, view[offset : offset + size] as code:
                    compiled = marshal.loads(code)
            except (EOFError, ValueError, TypeError):
                compiled = None
        if type(compiled) is not _CODE_TYPE:
            # Damaged inside a module's code (the index only says where it lies): the
            # module's source, checked unchanged by `find_spec`, compiled as the path finder would.
            with open(spec.origin, "rb") as stream:
                compiled = compile(stream.read(), spec.origin, "exec", dont_inherit=True)
        exec(compiled, module.__dict__)  # noqa: S102 - our own compiled modules

    def close(self) -> None:
        self._entries = {}
        if self._data is not None:
            try:
                self._data.close()
            except BufferError:  # another thread's import is reading it: unmapped after that
                pass
            self._data = None


_installed: list[BundleFinder] = []


def install(path: str | None = None) -> bool:
    """Serve the start path from the bundle at ``path`` (default: this tree's); False when
    there is none that may be used (then everything is imported as usual)."""
    if _installed:
        return True
    from jailer.trusted import open_trusted

    opened = open_trusted(path or bundle_path(), _MAX_SIZE)
    if opened is None:
        return False
    fd, size = opened
    try:
        data = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    except (OSError, ValueError):  # an empty file cannot be mapped
        return False
    finally:
        os.close(fd)
    read = _read_index(data)
    if read is None or read[0] != FORMAT or read[1] != _magic():
        data.close()
        return False
    finder = BundleFinder(data, read[2])
    sys.meta_path.insert(0, finder)
    _installed.append(finder)
    return True


def release() -> None:
    """Stop serving from the bundle and unmap it (the start path is over; the modules it
    served keep the finder as their loader, not the bytecode of those it did not)."""
    while _installed:
        finder = _installed.pop()
        finder.close()
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments not in ([], ["--quiet"]):
        sys.stderr.write("usage: python -m vmm.bundle [--quiet]\n")
        return 2
    try:
        written = build()
    except (OSError, SyntaxError) as error:
        sys.stderr.write(f"vmm.bundle: {error}\n")
        return 1
    if not arguments:
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
