"""`vmm.bundle`: the start path's bytecode in one file, used only while each module's source
is unchanged, ignored when untrusted or foreign, and dropped after the build."""

from __future__ import annotations

import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import PROJECT_ROOT
from vmm import bundle

PROBE = """
import sys
sys.path.insert(0, {root!r})
from vmm import bundle
print(bundle.install({path!r}))
import vmm.config, jailer.policies.loader, vmm.kvm.structs
for module in (vmm.config, jailer.policies.loader, vmm.kvm.structs):
    print(module.__name__, type(module.__loader__).__name__, module.__file__)
print(hasattr(vmm.config, "CHANGED"))
finders = [finder for finder in sys.meta_path if isinstance(finder, bundle.BundleFinder)]
bundle.release()
print(any(isinstance(finder, bundle.BundleFinder) for finder in sys.meta_path), [len(f._entries) for f in finders])
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the modules a bundle holds, so the test can change their sources."""
    root = tmp_path / "tree"
    shutil.copytree(PROJECT_ROOT / "vmm", root / "vmm", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "jailer" / "policies").mkdir(parents=True)
    for name in ("__init__", "native", "trusted"):
        shutil.copy(PROJECT_ROOT / "jailer" / f"{name}.py", root / "jailer")
    for name in ("__init__", "errors", "loader", "precompiled", "syscalls"):
        shutil.copy(PROJECT_ROOT / "jailer" / "policies" / f"{name}.py", root / "jailer" / "policies")
    return root


def probe(root: Path, path: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-I", "-B", "-c", PROBE.format(root=str(root), path=str(path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_modules_come_from_the_bundle_with_their_own_file_names(tree: Path, tmp_path: Path) -> None:
    path = Path(bundle.build(str(tree), str(tmp_path / "b.bundle")))
    assert path.stat().st_mode & 0o777 == 0o644
    lines = probe(tree, path)
    assert lines[0] == "True"
    assert lines[1:4] == [
        f"vmm.config BundleFinder {tree}/vmm/config.py",
        f"jailer.policies.loader BundleFinder {tree}/jailer/policies/loader.py",
        f"vmm.kvm.structs BundleFinder {tree}/vmm/kvm/structs.py",
    ]
    assert lines[4] == "False"  # the code is the source's
    assert lines[5] == "False [0]"  # released: no finder left, and no bytecode kept


def test_a_changed_source_is_imported_from_the_source(tree: Path, tmp_path: Path) -> None:
    path = bundle.build(str(tree), str(tmp_path / "b.bundle"))
    with open(tree / "vmm" / "config.py", "a") as source:
        source.write("\nCHANGED = True\n")
    lines = probe(tree, Path(path))
    assert lines[1].split()[:2] == ["vmm.config", "SourceFileLoader"]
    assert lines[2].split()[1] == "BundleFinder"  # the others still come from the bundle
    assert lines[4] == "True"


@pytest.mark.parametrize(
    "damage", ["world-writable", "symlink", "truncated", "cut-in-its-code", "empty", "other-interpreter", "missing"]
)
def test_an_unusable_bundle_is_not_installed(tree: Path, tmp_path: Path, damage: str) -> None:
    path = Path(bundle.build(str(tree), str(tmp_path / "b.bundle")))
    if damage == "world-writable":
        path.chmod(0o666)
    elif damage == "symlink":
        link = tmp_path / "link.bundle"
        link.symlink_to(path)
        path = link
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "cut-in-its-code":  # the index is whole, the last module's code is not
        path.write_bytes(path.read_bytes()[:-10])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other-interpreter":
        decoded = bundle.decode(path.read_bytes())
        assert decoded is not None
        form, _magic, modules = decoded
        path.write_bytes(bundle.encode(form, b"\0\0\r\n", modules))
    else:
        path.unlink()
    lines = probe(tree, path)
    assert lines[0] == "False"
    assert all(line.split()[1] == "SourceFileLoader" for line in lines[1:4])


def test_a_tree_copied_with_its_bundle_takes_nothing_from_it(tree: Path, tmp_path: Path) -> None:
    bundle.build(str(tree))  # into the tree's own vmm/__pycache__
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    with open(copy / "vmm" / "config.py", "a") as source:
        source.write("\nCHANGED = True\n")
    lines = probe(copy, Path(bundle.bundle_path(str(copy))))
    assert lines[0] == "True"  # a usable bundle, but every entry names the original tree
    assert [line.split()[1] for line in lines[1:4]] == ["SourceFileLoader"] * 3
    assert all(f" {copy}/" in line for line in lines[1:4])
    assert lines[4] == "True"


def test_the_bundle_holds_the_vmm_and_the_filter_loading_modules() -> None:
    names = bundle.module_names()
    assert {"vmm.builder", "vmm.kvm.structs", "vmm.loader.boot", "vmm.acpi.build"} <= set(names)
    assert not set(bundle.IMPORTED_BEFORE) & set(names)  # imported before the bundle is installed
    assert {"jailer.native", "jailer.policies.precompiled", "jailer.policies.loader", "jailer.policies.syscalls"} <= set(
        names
    )
    assert not any(name.startswith(("jailer.cli", "jailer.policies.compiler", "rootfs_builder")) for name in names)


def test_the_trees_own_bundle_is_fresh_or_absent() -> None:
    # What the bootstrap left (or nothing): it must never serve code other than the source's.
    path = bundle.bundle_path()
    if not os.path.exists(path):
        pytest.skip(f"no bundle at {path}: the bootstrap's setup step writes it")
    decoded = bundle.decode(Path(path).read_bytes())
    assert decoded is not None and decoded[:2] == (bundle.FORMAT, bundle._magic())
    for name, (_is_package, source_path, mtime_ns, size, code) in decoded[2].items():
        info = os.stat(source_path)
        if (info.st_mtime_ns, info.st_size) == (mtime_ns, size):
            compiled = compile(Path(source_path).read_bytes(), source_path, "exec", dont_inherit=True)
            assert marshal.loads(code) == compiled, name  # (marshal's bytes vary with interning)


def test_a_module_whose_code_is_damaged_is_compiled_from_its_source(tree: Path, tmp_path: Path) -> None:
    # The index is whole and every entry lies inside the file, but vmm.config's code is not
    # marshal data any more: the import must not fail with a traceback.
    path = Path(bundle.build(str(tree), str(tmp_path / "b.bundle")))
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[:4], "little")
    _form, _magic, index = marshal.loads(bytes(data[4 : 4 + length]))
    offset, size = index["vmm.config"][4:]
    start = 4 + length + offset
    data[start : start + size] = b"\xff" * size
    path.write_bytes(bytes(data))
    lines = probe(tree, path)
    assert lines[0] == "True"
    assert lines[1] == f"vmm.config BundleFinder {tree}/vmm/config.py"
    assert lines[4] == "False"  # the source's code, run
    assert lines[2].split()[1] == lines[3].split()[1] == "BundleFinder"


def test_release_while_another_thread_reads_the_mapping(tree: Path, tmp_path: Path) -> None:
    # An API-thread import in exec_module holds a view of the mapping when Machine.run releases.
    path = bundle.build(str(tree), str(tmp_path / "b.bundle"))
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from vmm import bundle\n"
        "assert bundle.install(sys.argv[2]); finder = bundle._installed[0]\n"
        "view = memoryview(finder._data)\n"
        "bundle.release()\n"
        "print(finder in sys.meta_path, finder._data, view[:4].tobytes() != b'')\n"
        "view.release()\n"
    )
    result = subprocess.run([sys.executable, "-I", "-B", "-c", script, str(tree), path],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.stdout.split() == ["False", "None", "True"], result.stderr
