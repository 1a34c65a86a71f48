"""`jailer.runtime`'s ELF reader and library search, checked against binutils' readelf,
glibc's ldconfig and the loader itself on real system objects and on objects gcc builds here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jailer import runtime
from support import compile_c


def _readelf_dynamic(path: Path) -> dict[str, list[str]]:
    output = subprocess.run(["readelf", "-dW", str(path)], capture_output=True, text=True, check=True).stdout
    found: dict[str, list[str]] = {"NEEDED": [], "RPATH": [], "RUNPATH": [], "SONAME": []}
    for tag, value in re.findall(r"\((NEEDED|RPATH|RUNPATH|SONAME)\)\s+[^\[]*\[([^\]]*)\]", output):
        found[tag].append(value)
    return found


def _readelf_interpreter(path: Path) -> str | None:
    output = subprocess.run(["readelf", "-lW", str(path)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\[Requesting program interpreter: ([^\]]+)\]", output)
    return match.group(1) if match else None


def _system_objects() -> list[Path]:
    import _ctypes

    candidates = [Path(os.path.realpath(sys.executable)), Path(_ctypes.__file__)]
    for name in ("c", "seccomp", "cap", "ffi", "m"):
        for directory in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"):
            matches = sorted(Path(directory).glob(f"lib{name}.so.[0-9]*"))
            if matches:
                candidates.append(Path(os.path.realpath(matches[0])))
                break
    libpython = Path(sys.base_prefix) / "lib" / f"libpython{sys.version_info[0]}.{sys.version_info[1]}.so.1.0"
    if libpython.exists():
        candidates.append(libpython)
    return candidates


@pytest.mark.parametrize("path", _system_objects(), ids=lambda p: p.name)
def test_dynamic_section_matches_readelf(path: Path) -> None:
    expected = _readelf_dynamic(path)
    info = runtime.read_dynamic(path)
    assert list(info.needed) == expected["NEEDED"]
    assert ":".join(info.rpath) == ":".join(expected["RPATH"])
    assert ":".join(info.runpath) == ":".join(expected["RUNPATH"])
    assert info.soname == (expected["SONAME"][0] if expected["SONAME"] else None)
    assert info.interpreter == _readelf_interpreter(path)


def _shared_library(build: Path, name: str, soname: str, extra: tuple[str, ...] = ()) -> Path:
    source = build / f"{name}.c"
    source.write_text(f"int {name}_value(void) {{ return 1; }}\n")
    return compile_c([source], build / soname, flags=("-shared", "-fPIC", f"-Wl,-soname,{soname}", *extra))


def test_rpath_runpath_and_origin_from_gcc_built_objects(tmp_path: Path) -> None:
    lib = _shared_library(tmp_path, "alpha", "libalpha.so.1")
    with_rpath = _shared_library(
        tmp_path, "beta", "libbeta.so.1",
        ("-Wl,--no-as-needed", str(lib), "-Wl,--disable-new-dtags", "-Wl,-rpath,$ORIGIN/sub:/opt/x"),
    )  # fmt: skip
    with_runpath = _shared_library(
        tmp_path, "gamma", "libgamma.so.1", ("-Wl,--no-as-needed", str(lib), "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN")
    )
    for path in (with_rpath, with_runpath):
        expected = _readelf_dynamic(path)
        info = runtime.read_dynamic(path)
        assert list(info.needed) == expected["NEEDED"] and "libalpha.so.1" in info.needed
        assert ":".join(info.rpath) == ":".join(expected["RPATH"])
        assert ":".join(info.runpath) == ":".join(expected["RUNPATH"])
        assert info.soname == expected["SONAME"][0]
    assert runtime.read_dynamic(with_rpath).rpath == ("$ORIGIN/sub", "/opt/x")
    assert runtime.read_dynamic(with_runpath).runpath == ("$ORIGIN",)


def test_resolver_follows_origin_runpath_before_system_dirs(tmp_path: Path) -> None:
    """libgamma's RUNPATH is $ORIGIN: its libalpha comes from its own directory, even though a
    libc-like search would not look there; an unknown library is an error naming it."""
    app = tmp_path / "app"
    app.mkdir()
    _shared_library(app, "alpha", "libalpha.so.1")
    gamma = _shared_library(
        app, "gamma", "libgamma.so.1",
        ("-Wl,--no-as-needed", str(app / "libalpha.so.1"), "-Wl,--enable-new-dtags", "-Wl,-rpath,$ORIGIN"),
    )
    executable = runtime.read_dynamic(Path(os.path.realpath(sys.executable)))
    assert executable.interpreter is not None
    resolver = runtime.LibraryResolver(executable.interpreter, executable)
    closure = resolver.closure([str(gamma)])
    assert closure[0] == str(app / "libalpha.so.1")
    libc = resolver.find("libc.so.6", str(gamma), runtime.read_dynamic(gamma))
    assert os.path.dirname(libc) in resolver.search.system_dirs or "glibc-hwcaps" in libc
    with pytest.raises(runtime.RuntimeComputationError, match="libnothere.so.9"):
        resolver.find("libnothere.so.9", str(gamma), runtime.read_dynamic(gamma))


def test_origin_in_the_executable_is_unusable_without_proc() -> None:
    assert runtime.LibraryResolver._expand(("$ORIGIN/../lib", "/usr/lib"), None) == ["/usr/lib"]
    assert runtime.LibraryResolver._expand(("${ORIGIN}/x",), "/a/b/libc.so") == ["/a/b/x"]


def test_loader_search_comes_from_the_loader_itself() -> None:
    executable = runtime.read_dynamic(Path(os.path.realpath(sys.executable)))
    assert executable.interpreter is not None
    search = runtime.LoaderSearch.of(executable.interpreter)
    help_text = subprocess.run([executable.interpreter, "--help"], capture_output=True, text=True).stdout
    listed = re.findall(r"^\s+(\S+) \(system search path\)", help_text, flags=re.M)
    assert list(search.system_dirs) == listed
    assert all(os.path.isabs(directory) for directory in search.system_dirs)


def test_ld_so_cache_agrees_with_ldconfig_p() -> None:
    if not Path("/etc/ld.so.cache").is_file() or shutil.which("ldconfig") is None:
        pytest.skip("no ld.so.cache or ldconfig here")
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    expected: dict[str, str] = {}
    for soname, path in re.findall(r"^\s+(\S+) \(libc6,x86-64[^)]*\) => (\S+)$", listing, flags=re.M):
        expected.setdefault(soname, path)
    parsed = runtime.read_ld_so_cache()
    assert expected, "ldconfig -p lists no x86-64 libraries"
    assert {name: parsed.get(name) for name in expected} == expected


def test_not_an_elf_is_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(runtime.RuntimeComputationError, match="not an ELF"):
        runtime.read_dynamic(script)


def test_symlink_chain(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "middle").symlink_to("real")
    (tmp_path / "front").symlink_to(tmp_path / "middle")
    assert runtime.symlink_chain(str(tmp_path / "front")) == [
        (str(tmp_path / "front"), str(tmp_path / "middle")),
        (str(tmp_path / "middle"), "real"),
    ]
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(runtime.RuntimeComputationError, match="symbolic links"):
        runtime.symlink_chain(str(tmp_path / "loop"))


def test_plan_collapses_full_directories_and_covered_files(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    for name in ("a.py", "b.py"):
        (full / name).write_text("")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("a.py", "b.py"):
        (partial / name).write_text("")
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "sub" / "m.py").write_text("")
    plan = runtime._Plan()
    plan.file(str(full / "a.py"))
    plan.file(str(full / "b.py"))
    plan.file(str(partial / "a.py"))
    plan.directory(str(package))
    plan.directory(str(package / "sub"))
    plan.file(str(package / "sub" / "m.py"))
    targets = sorted(str(target) for _, target in plan.pairs())
    assert targets == sorted([str(full), str(partial / "a.py"), str(package)])


class CountedCompute:
    """Stands in for `runtime._compute` with a cache under tmp_path: one bind of `source`,
    and the interpreters it was asked about in `calls`."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.source = tmp_path / "lib.py"
        self.calls: list[str] = []
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        monkeypatch.setattr(runtime, "_compute", self)

    def __call__(self, interpreter: str, modules: object, keep_symlinks: bool, ldconfig: bool) -> list[tuple[Path, Path]]:
        self.calls.append(interpreter)
        return [(self.source, Path("/jail/lib.py"))]


def test_binds_are_cached_and_recomputed_when_a_source_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compute = CountedCompute(tmp_path, monkeypatch)
    source, calls = compute.source, compute.calls
    source.write_text("x = 1\n")
    first = runtime.python_runtime_binds(Path("/usr/bin/python3"), ("x",))
    second = runtime.python_runtime_binds(Path("/usr/bin/python3"), ("x",))
    assert first == second == [(source, Path("/jail/lib.py"))] and len(calls) == 1
    runtime.python_runtime_binds(Path("/usr/bin/python3"), ("x", "y"))
    assert len(calls) == 2  # other modules, other entry
    source.write_text("x = 2  # longer\n")
    runtime.python_runtime_binds(Path("/usr/bin/python3"), ("x",))
    assert len(calls) == 3


def test_a_cache_file_others_can_write_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compute = CountedCompute(tmp_path, monkeypatch)
    compute.source.write_text("")
    runtime.python_runtime_binds(Path("/usr/bin/python3"), ("x",))
    (cache_file,) = (tmp_path / "cache" / "stockade" / "python-runtime").iterdir()
    cache_file.chmod(0o666)
    runtime.python_runtime_binds(Path("/usr/bin/python3"), ("x",))
    assert len(compute.calls) == 2
