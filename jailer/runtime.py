"""The Python runtime our VMM needs inside the jail, computed: read-only binds and nothing more.

The jailed VMM is a Python program started with an empty environment, no /proc and no /sys,
after pivot_root. It needs, at the same paths as on the host:

* the interpreter ELF, at the path its users exec (``sys.executable``, usually a venv symlink
  chain: bound as the ELF itself, since a bind mount cannot be a symlink; the chain is
  available from `python_runtime_symlinks` for a jail that wants to recreate it);
* the dynamic loader (``PT_INTERP``) and every shared library reached from the interpreter,
  from each extension module imported and from each library loaded with ``dlopen`` (ctypes:
  pyseccomp's libseccomp), following ``DT_NEEDED`` with ``DT_RPATH``/``DT_RUNPATH`` (and
  ``$ORIGIN``), then the loader's own system directories — the search the loader performs
  *in the jail*, where there is no ``/etc/ld.so.cache`` unless a library is only found
  through it (then the cache is bound too);
* ``pyvenv.cfg`` and getpath's landmark (``os.py``), so ``sys.prefix`` is computed as on the host;
* the data files glibc maps while Python starts (the C.UTF-8 ``LC_CTYPE`` that Python's
  locale coercion needs, or the jail's interpreter runs with an ASCII locale and fails to
  decode a non-ASCII ``.pth``; the gconv cache);
* the Python modules actually imported — not the whole stdlib. They are found by running the
  interpreter itself (same empty environment as the jail) to import `modules`, plus every
  module reachable through imports from them inside our own packages (function-level
  imports included, read from their syntax trees; a bare own package name such as ``vmm``
  means all of its modules, a dotted one such as ``vmm.cli`` only what it reaches), and
  reading ``sys.modules`` and ``/proc/self/maps`` afterwards. ``-X importtime`` would list the same modules but not
  their files; ``sys.modules`` gives each module's spec (origin, cached bytecode) directly.
  Frozen modules need no file. Our own packages (and the editable-install finder and ``.pth``
  that map them) are bound as whole directories because any of their modules may run.

Mount count: a source file is a file bind; each ``__pycache__`` directory holding a needed
``.pyc`` is one directory bind (bytecode without its source cannot be imported, so the extra
``.pyc`` files expose nothing runnable); a directory whose entries are all needed is one bind.

``ctypes.util.find_library`` does NOT work in such a jail: it runs ``/sbin/ldconfig -p``, then
``gcc``/``cc`` and ``ld``, none of which exists there (each attempt also forks), so it returns
None — and pyseccomp 0.1.2 then raises ``RuntimeError("Unable to find libseccomp")`` at import.
The library itself is bound (found by soname), so ``dlopen("libseccomp.so.2")`` works, which
is how the policy toolchain loads it (at import, so that this computation sees it mapped); code
importing pyseccomp in a jail must answer ``find_library("seccomp")`` with the soname first —
binding ldconfig would need exec in the jail.

The result is cached (``$XDG_CACHE_HOME/stockade/python-runtime``, or ``~/.cache``), keyed
by the interpreter, the modules and a fingerprint (sizes, mtimes) of every bound source,
because computing it costs a Python start-up and the jailer's own start-up time is a product
feature: a cache hit imports nothing beyond ``os``/``sys``/``struct`` and stats the sources.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# What the jailed VMM imports: the VMM itself (its in-function imports reach the policy
# compiler), the filter installer and python-prctl. Not the bare `jailer` package: that would
# pull in every host-side module (the CLI, the demo, rootfs_builder's guest builder).
DEFAULT_MODULES = ("vmm", "jailer.policies.loader", "prctl")
_CACHE_FORMAT = 2

# ELF constants (elf.h).
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29


class RuntimeComputationError(ValueError):
    """The runtime cannot be computed (not an ELF, a library that cannot be found, ...)."""


class DynamicInfo:
    """What the dynamic loader reads from one ELF object."""

    __slots__ = ("needed", "rpath", "runpath", "soname", "interpreter")

    def __init__(
        self,
        needed: tuple[str, ...],
        rpath: tuple[str, ...],
        runpath: tuple[str, ...],
        soname: str | None,
        interpreter: str | None,
    ) -> None:
        self.needed = needed
        self.rpath = rpath
        self.runpath = runpath
        self.soname = soname
        self.interpreter = interpreter

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"DynamicInfo({fields})"


def read_dynamic(path: Path) -> DynamicInfo:
    """Parse an ELF64 little-endian object's ``PT_INTERP`` and ``.dynamic`` (via ``PT_DYNAMIC``,
    with string-table addresses mapped to file offsets through the ``PT_LOAD`` segments)."""
    with open(path, "rb") as stream:
        data = stream.read()
    if data[:4] != b"\x7fELF":
        raise RuntimeComputationError(f"{path} is not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise RuntimeComputationError(f"{path} is not a little-endian ELF64 object")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: tuple[int, int] | None = None
    interpreter = None
    for index in range(phnum):
        p_type, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from("<IIQQQQ", data, phoff + index * phentsize)
        if p_type == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (offset, filesz)
        elif p_type == PT_INTERP:
            interpreter = data[offset : offset + filesz].split(b"\0", 1)[0].decode()
    if dynamic is None:
        return DynamicInfo((), (), (), None, interpreter)

    entries: list[tuple[int, int]] = []
    offset, size = dynamic
    for position in range(offset, offset + size, 16):
        tag, value = struct.unpack_from("<qQ", data, position)
        if tag == DT_NULL:
            break
        entries.append((tag, value))
    strtab_vaddr = next((value for tag, value in entries if tag == DT_STRTAB), None)
    if strtab_vaddr is None:
        raise RuntimeComputationError(f"{path} has a dynamic section without DT_STRTAB")
    strtab = _file_offset(loads, strtab_vaddr, path)

    def string(index: int) -> str:
        end = data.index(b"\0", strtab + index)
        return data[strtab + index : end].decode()

    def paths(tag: int) -> tuple[str, ...]:
        return tuple(part for tag_, value in entries if tag_ == tag for part in string(value).split(":") if part)

    sonames = [string(value) for tag, value in entries if tag == DT_SONAME]
    return DynamicInfo(
        needed=tuple(string(value) for tag, value in entries if tag == DT_NEEDED),
        rpath=paths(DT_RPATH),
        runpath=paths(DT_RUNPATH),
        soname=sonames[0] if sonames else None,
        interpreter=interpreter,
    )


def _file_offset(loads: list[tuple[int, int, int]], vaddr: int, path: Path) -> int:
    for start, offset, filesz in loads:
        if start <= vaddr < start + filesz:
            return offset + vaddr - start
    raise RuntimeComputationError(f"{path}: address {vaddr:#x} is in no PT_LOAD segment")


def read_ld_so_cache(path: Path = Path("/etc/ld.so.cache")) -> dict[str, str]:
    """soname -> path for x86-64 libc6 entries of glibc's ``ld.so.cache`` (format 1.1)."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    magic = b"glibc-ld.so.cache1.1"
    start = data.find(magic)
    if start < 0:
        return {}
    nlibs, = struct.unpack_from("<I", data, start + 20)
    entries: dict[str, str] = {}
    base = start + 48
    for index in range(nlibs):
        flags, key, value = struct.unpack_from("<iII", data, base + index * 24)
        # FLAG_ELF_LIBC6 (3) with FLAG_X8664_LIB64 (0x0300).
        if flags & 0xFF != 3 or flags & 0xFF00 != 0x0300:
            continue

        def text(offset: int) -> str:
            return data[offset : data.index(b"\0", offset)].decode()

        entries.setdefault(text(key), text(value))
    return entries


class LoaderSearch:
    """The dynamic loader's own search configuration, read from ``ld.so --help``."""

    def __init__(self, system_dirs: tuple[str, ...], hwcaps_subdirs: tuple[str, ...]) -> None:
        self.system_dirs = system_dirs
        # glibc-hwcaps and legacy subdirectories the loader searches first, in order.
        self.hwcaps_subdirs = hwcaps_subdirs

    @classmethod
    def of(cls, loader: str) -> LoaderSearch:
        import subprocess

        result = subprocess.run([loader, "--help"], capture_output=True, text=True, env={})
        system, subdirs, section = [], [], ""
        for line in result.stdout.splitlines():
            stripped = line.strip()
            if not line.startswith(" "):
                section = stripped
                continue
            if stripped.endswith("(system search path)"):
                system.append(stripped.split()[0])
            elif "supported, searched" in stripped and "glibc-hwcaps" in section:
                subdirs.append(f"glibc-hwcaps/{stripped.split()[0]}")
            elif "supported, searched" in stripped and "HWCAP" in section:
                subdirs.append(stripped.split()[0])
        if not system:
            raise RuntimeComputationError(f"{loader} --help lists no system search path")
        return cls(tuple(system), tuple(dict.fromkeys(subdirs)))


class LibraryResolver:
    """Where the loader *inside the jail* finds each library, and everything it needs."""

    def __init__(self, loader: str, executable: DynamicInfo) -> None:
        self.search = LoaderSearch.of(loader)
        self.executable = executable
        self.cache: dict[str, str] | None = None
        self.needs_ld_so_cache = False

    def _candidates(self, directory: str, name: str) -> Iterable[str]:
        for subdir in self.search.hwcaps_subdirs:
            yield os.path.join(directory, subdir, name)
        yield os.path.join(directory, name)

    def find(self, name: str, requester: str | None, info: DynamicInfo | None) -> str:
        """The path the loader opens for `name` needed by `requester` (None: dlopen from the
        interpreter), following ld.so(8): RPATH (unless RUNPATH), RUNPATH, cache, system dirs."""
        if "/" in name:
            return name
        directories: list[str] = []
        if info is not None and not info.runpath:
            directories += self._expand(info.rpath, requester)
        if not self.executable.runpath and requester is not None:
            directories += self._expand(self.executable.rpath, None)
        if info is not None:
            directories += self._expand(info.runpath, requester)
        for directory in directories:
            for candidate in self._candidates(directory, name):
                if os.path.isfile(candidate):
                    return candidate
        for directory in self.search.system_dirs:
            for candidate in self._candidates(directory, name):
                if os.path.isfile(candidate):
                    return candidate
        if self.cache is None:
            self.cache = read_ld_so_cache()
        if name in self.cache:
            self.needs_ld_so_cache = True
            return self.cache[name]
        raise RuntimeComputationError(f"shared library {name} (needed by {requester or 'dlopen'}) is not found")

    @staticmethod
    def _expand(directories: Sequence[str], requester: str | None) -> list[str]:
        """``$ORIGIN`` is the requester's directory; for the executable it is unusable in a
        jail without /proc (the loader reads /proc/self/exe), so such entries are skipped."""
        expanded = []
        for directory in directories:
            if "$ORIGIN" in directory or "${ORIGIN}" in directory:
                if requester is None:
                    continue
                origin = os.path.dirname(requester)
                directory = directory.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
            expanded.append(os.path.normpath(directory))
        return expanded

    def closure(self, roots: Iterable[str], loaded_sonames: Iterable[str] = ()) -> list[str]:
        """Every library (jail path) reached through DT_NEEDED from the `roots` objects; a name
        matching an already loaded object's soname (the loader itself) is not searched for."""
        found: list[str] = []
        seen: set[str] = set()
        loaded = set(loaded_sonames)
        pending = [(root, read_dynamic(Path(root))) for root in roots]
        while pending:
            requester, info = pending.pop()
            for name in info.needed:
                if name in loaded:
                    continue
                path = self.find(name, requester, info)
                if path not in seen:
                    seen.add(path)
                    found.append(path)
                    pending.append((path, read_dynamic(Path(path))))
        return found


# Runs inside the interpreter being provisioned, with the jail's empty environment. It must
# not import anything before the snapshot that the jail would not import: only builtins
# (`_ast` via compile's flag, `os`/`sys` already loaded at start-up) are used until then.
_COLLECTOR = r"""
import os, sys
requested, own_scan = sys.argv[1].split(","), sys.argv[2] == "1"
for name in requested:
    __import__(name)
site_dirs = [p for p in sys.path if p.endswith("site-packages")]
stdlib = os.path.dirname(os.__file__)
def is_own(path):
    return not any(path.startswith(root + os.sep) for root in [stdlib] + site_dirs)
own_dirs = []
for name in requested:
    module = sys.modules[name.split(".")[0]]
    for directory in getattr(module, "__path__", []) or []:
        if is_own(directory) and directory not in own_dirs:
            own_dirs.append(directory)
def imports_of(tree, package):
    pending = [tree]
    while pending:
        node = pending.pop()
        kind = type(node).__name__
        if kind == "Import":
            for alias in node.names:
                yield alias.name
        elif kind == "ImportFrom":
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            yield base
            for alias in node.names:
                yield base + "." + alias.name
        for field in getattr(node, "_fields", ()):
            value = getattr(node, field, None)
            if isinstance(value, list):
                pending.extend(item for item in value if hasattr(item, "_fields"))
            elif hasattr(value, "_fields"):
                pending.append(value)
own_roots = {os.path.basename(d): os.path.dirname(d) for d in own_dirs}
def own_file(name):
    # The source file of an own module (name -> path), or None for anything else.
    parts = name.split(".")
    if parts[0] not in own_roots:
        return None
    base = os.path.join(own_roots[parts[0]], *parts)
    for candidate in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None
def package_modules(directory):
    top = os.path.dirname(directory)
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py") and file != "__main__.py":
                yield os.path.relpath(os.path.join(root, file[:-3]), top).replace(os.sep, ".").removesuffix(".__init__")
# Entry points: a bare own package name means every module in it; a dotted name, that module.
pending = []
for name in requested:
    if own_scan and name in own_roots:
        pending.extend(package_modules(os.path.join(own_roots[name], name)))
    elif own_scan and own_file(name):
        pending.append(name)
extra, visited = [], set()
while pending:
    name = pending.pop()
    path = own_file(name)
    if name in visited or path is None:
        continue
    visited.add(name)
    extra.append(name)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    with open(path, "rb") as stream:
        tree = compile(stream.read(), path, "exec", 0x400)  # ast.PyCF_ONLY_AST
    for imported in imports_of(tree, package):
        extra.append(imported)
        parts = imported.split(".")
        pending.extend(".".join(parts[:index]) for index in range(1, len(parts) + 1))
for name in dict.fromkeys(extra):
    if name and not name.endswith("__main__"):
        try:
            __import__(name)
        except BaseException:
            pass
modules = []
for name, module in list(sys.modules.items()):
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec is not None else getattr(module, "__file__", None)
    cached = getattr(spec, "cached", None) if spec is not None else None
    locations = list(getattr(spec, "submodule_search_locations", None) or []) if spec is not None else []
    modules.append([name, origin, cached, locations])
with open("/proc/self/maps") as maps:
    mapped = sorted({line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6})
import json
print(json.dumps({
    "modules": modules, "mapped": [m for m in mapped if m.startswith("/")], "own_dirs": own_dirs,
    "site_dirs": site_dirs, "stdlib": stdlib, "prefix": sys.prefix, "base_prefix": sys.base_prefix,
    "platstdlib": os.path.join(sys.base_exec_prefix, sys.platlibdir, "python%d.%d" % sys.version_info[:2], "lib-dynload"),
}))
"""


def _collect(interpreter: str, modules: Sequence[str]) -> dict[str, object]:
    import json
    import subprocess

    result = subprocess.run(
        [interpreter, "-s", "-B", "-c", _COLLECTOR, ",".join(modules), "1"],
        capture_output=True, text=True, env={}, cwd="/",
    )  # fmt: skip
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeComputationError(f"{interpreter} cannot import {', '.join(modules)}: {last}")
    return json.loads(result.stdout)


def symlink_chain(path: str) -> list[tuple[str, str]]:
    """(link path, link target as stored) for each symlink met resolving `path` (last component)."""
    chain = []
    current = os.path.abspath(path)
    for _ in range(40):
        if not os.path.islink(current):
            return chain
        target = os.readlink(current)
        chain.append((current, target))
        current = os.path.normpath(os.path.join(os.path.dirname(current), target))
    raise RuntimeComputationError(f"{path}: too many levels of symbolic links")


def _real(path: str) -> str:
    return os.path.realpath(path)


class _Plan:
    """Targets -> sources, collapsed into directory binds where allowed."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.dirs: dict[str, str] = {}

    def file(self, target: str, source: str | None = None) -> None:
        self.files.setdefault(os.path.normpath(target), _real(source or target))

    def directory(self, target: str) -> None:
        self.dirs.setdefault(os.path.normpath(target), _real(target))

    def pairs(self) -> list[tuple[Path, Path]]:
        dirs = sorted(self.dirs)
        kept_dirs = [d for d in dirs if not any(d.startswith(other + os.sep) for other in dirs if other != d)]

        def covered(path: str) -> bool:
            return any(path.startswith(d + os.sep) for d in kept_dirs)

        files = {t: s for t, s in self.files.items() if not covered(t)}
        # A directory every entry of which is bound as a file: one bind instead of many.
        by_parent: dict[str, set[str]] = {}
        for target, source in files.items():
            if target == source:
                by_parent.setdefault(os.path.dirname(target), set()).add(os.path.basename(target))
        for parent, names in by_parent.items():
            try:
                entries = set(os.listdir(parent))
            except OSError:
                continue
            if entries and entries <= names and not covered(parent) and parent != "/":
                kept_dirs.append(parent)
                for name in entries:
                    files.pop(os.path.join(parent, name), None)
        pairs = [(Path(self.dirs.get(d, _real(d))), Path(d)) for d in kept_dirs]
        pairs += [(Path(source), Path(target)) for target, source in files.items()]
        return sorted(pairs, key=lambda pair: (len(pair[1].parts), str(pair[1])))


def _compute(
    interpreter: str, modules: Sequence[str], keep_symlinks: bool, ldconfig: bool
) -> list[tuple[Path, Path]]:
    interpreter = os.path.abspath(interpreter)
    real_interpreter = _real(interpreter)
    executable = read_dynamic(Path(real_interpreter))
    if executable.interpreter is None:
        raise RuntimeComputationError(f"{real_interpreter} has no PT_INTERP (a static Python is not supported)")
    facts = _collect(interpreter, modules)
    plan = _Plan()
    plan.file(real_interpreter if keep_symlinks else interpreter, real_interpreter)
    plan.file(executable.interpreter)

    prefix, base_prefix = str(facts["prefix"]), str(facts["base_prefix"])
    if prefix != base_prefix and os.path.isfile(os.path.join(prefix, "pyvenv.cfg")):
        plan.file(os.path.join(prefix, "pyvenv.cfg"))
    plan.file(os.path.join(str(facts["stdlib"]), "os.py"))  # getpath's prefix landmark
    own_dirs = [str(d) for d in facts["own_dirs"]]  # type: ignore[union-attr]
    for directory in own_dirs:
        plan.directory(directory)

    extensions: list[str] = []
    for name, origin, cached, locations in facts["modules"]:  # type: ignore[union-attr]
        if not origin or origin in ("built-in", "frozen") or not os.path.isabs(origin):
            continue
        if any(origin.startswith(d + os.sep) for d in own_dirs):
            continue
        plan.file(origin)
        if origin.endswith(".so"):
            extensions.append(origin)
        if cached and os.path.isfile(cached):
            plan.directory(os.path.dirname(cached))

    for site_dir in facts["site_dirs"]:  # type: ignore[union-attr]
        _add_pth_files(plan, str(site_dir))
    # The platform landmark: getpath checks that lib-dynload exists.
    platstdlib = str(facts["platstdlib"])
    if not any(ext.startswith(platstdlib + os.sep) for ext in extensions) and os.path.isdir(platstdlib):
        plan.directory(platstdlib)

    resolver = LibraryResolver(executable.interpreter, executable)
    loader_soname = read_dynamic(Path(executable.interpreter)).soname
    loaded = [loader_soname] if loader_soname else []
    libraries = resolver.closure([real_interpreter, *extensions], loaded)
    # Libraries loaded with dlopen (ctypes) appear in the maps but in no DT_NEEDED: resolve
    # them by soname, as dlopen("libname.so.N") will in the jail.
    reached = {_real(path) for path in [*libraries, executable.interpreter, real_interpreter, *extensions]}
    dlopened = []
    for mapped in facts["mapped"]:  # type: ignore[union-attr]
        if _real(mapped) in reached or not os.path.isfile(mapped):
            continue
        try:
            info = read_dynamic(Path(mapped))
        except RuntimeComputationError:
            # Data glibc maps at start-up: the C.UTF-8 LC_CTYPE that Python's locale coercion
            # loads (without it the jail falls back to ASCII) and the gconv module cache.
            plan.file(mapped)
            continue
        soname = info.soname or os.path.basename(mapped)
        dlopened.append(resolver.find(soname, None, None))
    libraries += [path for path in resolver.closure(dlopened, loaded) if path not in libraries]
    libraries += [path for path in dlopened if path not in libraries]
    for library in libraries:
        plan.file(library)
    if resolver.needs_ld_so_cache or ldconfig:
        plan.file("/etc/ld.so.cache")
    if ldconfig:
        _add_ldconfig(plan)
    return plan.pairs()


def _add_ldconfig(plan: _Plan) -> None:
    """``/sbin/ldconfig`` for ``ctypes.util.find_library``; it must be static (no libraries)."""
    path = "/sbin/ldconfig"
    info = read_dynamic(Path(_real(path)))
    if info.interpreter is not None or info.needed:
        raise RuntimeComputationError(f"{path} is dynamically linked; find_library support needs a static ldconfig")
    plan.file(path)


def _add_pth_files(plan: _Plan, site_dir: str) -> None:
    """Every ``.pth`` file site reads at start-up: ``import`` lines (setuptools' distutils shim,
    an editable-install finder) and path lines (a compat editable install names the project
    root, whose package directories are bound as own dirs), so ``sys.path`` and start-up in
    the jail are what they are on the host."""
    if not os.path.isdir(site_dir):
        return
    for entry in sorted(os.listdir(site_dir)):
        if entry.endswith(".pth") and not entry.startswith("."):
            plan.file(os.path.join(site_dir, entry))


def _cache_file(key: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = 0xCBF29CE484222325  # FNV-1a: no hashlib (and OpenSSL) on the jailer's start-up path
    for byte in key.encode():
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return Path(base) / "stockade" / "python-runtime" / f"{digest:016x}.txt"


def _fingerprint(pairs: list[tuple[Path, Path]]) -> str:
    """Size and mtime of every bound source, plus those of the ``.py`` files under bound
    package directories (an edit there may add an import). A directory's own mtime covers
    entries added, removed or atomically replaced (as ``.pyc`` writes are)."""
    parts = []
    for source, _ in pairs:
        stat = os.stat(source)
        parts.append(f"{source}:{stat.st_size}:{stat.st_mtime_ns}")
        if os.path.isdir(source) and source.name != "__pycache__":
            pending = [str(source)]
            while pending:
                with os.scandir(pending.pop()) as entries:
                    for entry in entries:
                        if entry.name.endswith(".py"):
                            inner = entry.stat()
                            parts.append(f"{entry.path}:{inner.st_size}:{inner.st_mtime_ns}")
                        elif entry.name != "__pycache__" and entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
    return "|".join(sorted(parts))


def _read_cache(path: Path, key: str) -> list[tuple[Path, Path]] | None:
    """The cached binds if the file is for `key` and every source is unchanged."""
    try:
        # Only a cache file this user wrote and nobody else can change decides what is bound.
        with open(path) as stream:
            info = os.fstat(stream.fileno())
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                return None
            lines = stream.read().split("\n")
        if len(lines) < 3 or lines[0] != key:
            return None
        pairs = [(Path(s), Path(t)) for s, _, t in (line.partition("\t") for line in lines[2:] if line)]
        return pairs if lines[1] == _fingerprint(pairs) else None
    except (OSError, ValueError):
        return None


def _write_cache(path: Path, key: str, pairs: list[tuple[Path, Path]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        body = [key, _fingerprint(pairs), *(f"{source}\t{target}" for source, target in pairs)]
        temporary.write_text("\n".join(body) + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError:
        pass  # an unwritable cache only costs the next run a recomputation


def python_runtime_binds(
    interpreter: Path | None = None,
    modules: Sequence[str] = DEFAULT_MODULES,
    *,
    keep_symlinks: bool = False,
    ldconfig: bool = False,
    use_cache: bool = True,
) -> list[tuple[Path, Path]]:
    """Read-only (host source, jail target) binds that let `interpreter` (default: this
    interpreter, ``sys.executable``) start and import `modules` in the jail, shallow first.

    With `keep_symlinks`, the interpreter ELF is bound at its real path and the jail must also
    create `python_runtime_symlinks(interpreter)`; otherwise it is bound at `interpreter`'s path.
    `ldconfig` adds ``/sbin/ldconfig`` and ``/etc/ld.so.cache`` so that ``find_library`` (and
    a plain ``import pyseccomp``) works — only where the jail may fork and exec.
    Raises `RuntimeComputationError` (a ValueError) or OSError when it cannot be computed.
    """
    chosen = os.path.abspath(str(interpreter or sys.executable))
    key = f"v{_CACHE_FORMAT} {chosen} {','.join(modules)} symlinks={keep_symlinks} ldconfig={ldconfig}"
    cache_path = _cache_file(key)
    if use_cache:
        cached = _read_cache(cache_path, key)
        if cached is not None:
            return cached
    pairs = _compute(chosen, modules, keep_symlinks, ldconfig)
    if use_cache:
        _write_cache(cache_path, key, pairs)
    return pairs


def python_runtime_symlinks(interpreter: Path | None = None) -> list[tuple[Path, str]]:
    """(jail path, link target) of the symlink chain from `interpreter` to its ELF, for a jail
    built with ``keep_symlinks=True``."""
    return [(Path(link), target) for link, target in symlink_chain(str(interpreter or sys.executable))]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jailer.runtime [MODULE...]``: print the binds, one ``SOURCE -> TARGET`` a line."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        pairs = python_runtime_binds(modules=tuple(args) or DEFAULT_MODULES, use_cache=False)
    except (RuntimeComputationError, OSError) as error:
        print(f"jailer.runtime: {error}", file=sys.stderr)
        return 1
    for source, target in pairs:
        print(f"{source} -> {target}" if source != target else str(target))
    print(f"{len(pairs)} read-only binds", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
