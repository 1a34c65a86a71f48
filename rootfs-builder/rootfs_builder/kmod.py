"""Kernel modules: their ``.modinfo``, a ``modules.dep`` for trees that lack one, load order.

Debian's kernel packages ship no ``modules.dep``: ``depmod`` writes it at install time, and
neither it nor kmod is on a builder host necessarily. Each module's ``.modinfo`` carries the
``depends=`` list that modpost computed from the same symbol references depmod resolves, so
we write ``modules.dep`` from those, in depmod's format (every transitive dependency, listed
so that loading from last to first works). Consumers then read the order from
``modules.dep`` only.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from rootfs_builder import elf
from rootfs_builder.errors import BuildError

MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def module_name(relative_path: str) -> str:
    """The kernel's name for a module file: basename without suffixes, '-' read as '_'."""
    base = relative_path.rsplit("/", 1)[-1]
    for suffix in MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def read_module(path: Path) -> bytes:
    """A module's ELF bytes, decompressed: busybox's insmod reads plain ELF only."""
    data = path.read_bytes()
    name = path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if name.endswith(".ko.zst"):
        if shutil.which("zstd") is None:
            raise BuildError(f"{path} is zstd-compressed; install 'zstd' to read it")
        result = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True)
        if result.returncode != 0:
            raise BuildError(f"zstd cannot decompress {path}")
        return result.stdout
    return data


def modinfo(data: bytes, what: str = "module") -> dict[str, str]:
    section = elf.section(data, ".modinfo", what)
    info: dict[str, str] = {}
    for field in (section or b"").split(b"\0"):
        key, sep, value = field.decode(errors="replace").partition("=")
        if sep and key not in info:
            info[key] = value
    return info


def find_modules(modules_dir: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(modules_dir):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(MODULE_SUFFIXES):
                found.append(os.path.relpath(os.path.join(root, name), modules_dir))
    return found


def compute_modules_dep(modules_dir: Path) -> str:
    """``modules.dep`` text for the modules under `modules_dir`, from their ``depends=``."""
    paths = find_modules(modules_dir)
    by_name = {module_name(path): path for path in paths}
    direct: dict[str, list[str]] = {}
    for path in paths:
        info = modinfo(read_module(modules_dir / path), path)
        depends = [name.replace("-", "_") for name in info.get("depends", "").split(",") if name]
        missing = [name for name in depends if name not in by_name]
        if missing:
            raise BuildError(f"{path} depends on {', '.join(missing)}, which is not in {modules_dir}")
        direct[path] = [by_name[name] for name in depends]
    lines = []
    for path in paths:
        order = load_order_from(direct, [path])[:-1]
        lines.append(f"{path}:" + "".join(f" {dependency}" for dependency in reversed(order)))
    return "\n".join(lines) + "\n"


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    dependencies: dict[str, list[str]] = {}
    for line in text.splitlines():
        module, sep, rest = line.partition(":")
        if sep:
            dependencies[module.strip()] = rest.split()
    return dependencies


def load_order_from(dependencies: dict[str, list[str]], wanted: Iterable[str]) -> list[str]:
    """Module paths so that each comes after everything it depends on (depth-first, stable)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(path: str, chain: tuple[str, ...]) -> None:
        if state.get(path) == "done":
            return
        if state.get(path) == "visiting":
            raise BuildError("modules.dep has a dependency cycle: " + " -> ".join((*chain, path)))
        if path not in dependencies:
            raise BuildError(f"modules.dep lists {chain[-1] if chain else path} needing {path}, which it does not describe")
        state[path] = "visiting"
        # modules.dep lists dependencies so that the last is loaded first.
        for dependency in reversed(dependencies[path]):
            visit(dependency, (*chain, path))
        state[path] = "done"
        order.append(path)

    for path in wanted:
        visit(path, ())
    return order


def builtin_names(modules_dir: Path) -> set[str]:
    builtin = modules_dir / "modules.builtin"
    if not builtin.is_file():
        return set()
    return {module_name(line.strip()) for line in builtin.read_text().splitlines() if line.strip()}


def resolve_load_order(modules_dir: Path, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(module paths to insmod in order, names that are built into the kernel) for `names`."""
    dep_file = modules_dir / "modules.dep"
    if not dep_file.is_file():
        raise BuildError(f"{modules_dir} has no modules.dep")
    dependencies = parse_modules_dep(dep_file.read_text())
    by_name = {module_name(path): path for path in dependencies}
    builtin = builtin_names(modules_dir)
    wanted, built_in = [], []
    for name in names:
        key = name.replace("-", "_")
        if key in by_name:
            wanted.append(by_name[key])
        elif key in builtin:
            built_in.append(key)
        else:
            raise BuildError(f"the kernel has no module {name!r} (neither in modules.dep nor built in)")
    return load_order_from(dependencies, wanted), built_in
