"""Precompiled programs (`jailer.policies.precompiled`): byte-identical to compiling, fresh only
for the exact policy bytes, ignored when damaged or untrusted, and really used at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jailer import policies, seccomp
from jailer.policies import cli, compiler, precompiled

SHIPPED = [(name, category) for name in policies.shipped_policy_names()
           for category in policies.load_policy(policies.shipped_policy_path(name)).categories]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("store")
    precompiled.precompile(store=str(directory))
    return directory


@pytest.fixture
def own_store(tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the store, made the default one."""
    directory = tmp_path / "store"
    directory.mkdir()
    for file in store.iterdir():
        (directory / file.name).write_bytes(file.read_bytes())
        os.chmod(directory / file.name, 0o644)
    monkeypatch.setattr(precompiled, "STORE_DIR", str(directory))
    return directory


def _compiled(path: str | Path, category: str) -> bytes:
    return compiler.compile_category(policies.load_policy(path), category, "x86_64")


@pytest.mark.parametrize(("name", "category"), SHIPPED)
def test_stored_program_is_byte_identical_to_compiling(store: Path, name: str, category: str) -> None:
    path = policies.shipped_policy_file(name)
    assert precompiled.load(path, category, store=str(store)) == _compiled(path, category)


@pytest.mark.parametrize(("name", "category"), SHIPPED)
def test_the_package_store_is_fresh_and_identical_or_unused(name: str, category: str) -> None:
    # Whatever the bootstrap left in jailer/policies/compiled/ (or nothing): never a wrong program.
    path = policies.shipped_policy_file(name)
    stored = precompiled.load(path, category)
    assert stored is None or stored == _compiled(path, category)


def test_stale_source_is_recompiled_identically(own_store: Path, tmp_path: Path) -> None:
    source = Path(policies.shipped_policy_file("vmm")).read_text()
    policy = tmp_path / "vmm.json"
    policy.write_text(source)
    stored = precompiled.load(str(policy), "jail")
    assert stored is not None  # same bytes under another path: fresh
    document = json.loads(source)
    document["jail"]["filter"] = [rule for rule in document["jail"]["filter"] if rule["syscall"] != "madvise"]
    policy.write_text(json.dumps(document))
    assert precompiled.load(str(policy), "jail") is None
    choice = seccomp.choose_filter(policy_path=str(policy), category="jail", disabled=False)
    assert choice.program == _compiled(policy, "jail") != stored
    # Whitespace alone is another content too (freshness is by bytes, not by meaning).
    policy.write_text(source + "\n")
    assert precompiled.load(str(policy), "jail") is None
    assert seccomp.choose_filter(policy_path=str(policy), category="jail", disabled=False).program == stored


def _damage(data: bytes) -> list[bytes]:
    header = precompiled.HEADER_SIZE
    flipped_program = bytearray(data)
    flipped_program[header + 3] ^= 0x01
    flipped_key = bytearray(data)
    flipped_key[len(precompiled.MAGIC) + 5] ^= 0x80
    flipped_length = bytearray(data)
    flipped_length[len(precompiled.MAGIC) + precompiled.DIGEST_SIZE] ^= 0x08
    return [b"", data[:7], data[:header], data[: header + 8], data[:-8], data[:-1], data + b"\0" * 8,
            b"X" + data[1:], bytes(flipped_program), bytes(flipped_key), bytes(flipped_length)]


def test_corrupt_or_truncated_store_files_are_ignored_and_recompiled(own_store: Path) -> None:
    path = policies.shipped_policy_file("baseline")
    stored_file = own_store / "baseline.baseline.x86_64.bpf"
    good = stored_file.read_bytes()
    expected = _compiled(path, "baseline")
    for damaged in _damage(good):
        stored_file.write_bytes(damaged)
        assert precompiled.load(path, "baseline") is None, damaged[:16]
        assert seccomp.choose_filter(policy_path=None, category=None, disabled=False).program == expected
    stored_file.write_bytes(good)
    assert precompiled.load(path, "baseline") == expected


def test_a_key_for_another_category_or_arch_is_not_fresh(own_store: Path) -> None:
    path = policies.shipped_policy_file("vmm")
    vcpu = own_store / "vmm.vcpu.x86_64.bpf"
    (own_store / "vmm.api.x86_64.bpf").write_bytes(vcpu.read_bytes())
    assert precompiled.load(path, "api") is None
    (own_store / "vmm.vcpu.aarch64.bpf").write_bytes(vcpu.read_bytes())
    assert precompiled.load(path, "vcpu", "aarch64") is None
    assert precompiled.load(path, "vcpu") == _compiled(path, "vcpu")


def test_a_changed_toolchain_makes_every_program_stale(own_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = policies.shipped_policy_file("baseline")
    assert precompiled.load(path, "baseline") is not None
    monkeypatch.setattr(precompiled, "_toolchain_digest", b"\0" * precompiled.DIGEST_SIZE)
    assert precompiled.load(path, "baseline") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file another owner")
def test_untrusted_store_files_are_refused(own_store: Path, tmp_path: Path) -> None:
    path = policies.shipped_policy_file("baseline")
    stored_file = own_store / "baseline.baseline.x86_64.bpf"
    assert precompiled.load(path, "baseline") is not None
    for mode in (0o664, 0o646, 0o666):
        os.chmod(stored_file, mode)
        assert precompiled.load(path, "baseline") is None, oct(mode)
    os.chmod(stored_file, 0o644)
    os.chown(stored_file, 4321, 4321)
    assert precompiled.load(path, "baseline") is None
    os.chown(stored_file, 0, 4321)  # root-owned, another group: fine while not group-writable
    assert precompiled.load(path, "baseline") is not None
    target = tmp_path / "elsewhere.bpf"
    target.write_bytes(stored_file.read_bytes())
    stored_file.unlink()
    stored_file.symlink_to(target)
    assert precompiled.load(path, "baseline") is None


def test_writes_are_atomic_0644_and_leave_no_temporary_files(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        entries = precompiled.precompile(["baseline"], store=str(tmp_path))
    finally:
        os.umask(old_umask)
    assert [entry.status for entry in entries] == ["written"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["baseline.baseline.x86_64.bpf", "toolchain-stamp"]
    for name in ("baseline.baseline.x86_64.bpf", "toolchain-stamp"):
        info = (tmp_path / name).stat()
        assert info.st_mode & 0o777 == 0o644
        assert info.st_uid == os.geteuid() and (os.geteuid() != 0 or info.st_gid == 0)


def test_the_stored_toolchain_stamp_records_the_digest_of_the_sources(store: Path) -> None:
    stamped = precompiled._stamped_toolchain_digest(precompiled._HERE, precompiled.toolchain_stamp_path(str(store)))
    assert stamped == precompiled._hash_toolchain(precompiled._HERE)[0]


@pytest.fixture
def toolchain_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the toolchain sources and a stamp for them recording a digest no hashing
    gives: whatever returns that digest took it from the stamp."""
    sources = tmp_path / "toolchain"
    sources.mkdir()
    for name in precompiled.TOOLCHAIN_MODULES:
        (sources / f"{name}.py").write_bytes((Path(precompiled._HERE) / f"{name}.py").read_bytes())
    identities = [precompiled._file_identity(str(sources / f"{name}.py")) for name in precompiled.TOOLCHAIN_MODULES]
    stamp = tmp_path / "toolchain-stamp"
    stamp.write_bytes(precompiled._encode_stamp(b"\x5a" * precompiled.DIGEST_SIZE, identities))
    os.chmod(stamp, 0o644)
    return sources, stamp


def test_a_stamp_stands_for_the_files_it_describes_and_no_others(toolchain_copy: tuple[Path, Path]) -> None:
    sources, stamp = toolchain_copy
    stamped = b"\x5a" * precompiled.DIGEST_SIZE
    assert precompiled._stamped_toolchain_digest(str(sources), str(stamp)) == stamped
    model = sources / "model.py"
    info = model.stat()
    os.utime(model, ns=(info.st_atime_ns, info.st_mtime_ns))  # same content and mtime, new ctime
    assert precompiled._stamped_toolchain_digest(str(sources), str(stamp)) is None


@pytest.mark.parametrize("change", ["edit", "replace", "damage", "truncate", "group-writable", "symlink"])
def test_a_stamp_that_does_not_match_or_cannot_be_trusted_is_not_used(
    toolchain_copy: tuple[Path, Path], tmp_path: Path, change: str
) -> None:
    sources, stamp = toolchain_copy
    parser = sources / "parser.py"
    if change == "edit":
        with open(parser, "ab") as source:
            source.write(b"# changed\n")
    elif change == "replace":  # same bytes, another file (a checkout, a copy)
        parser.rename(tmp_path / "old-parser.py")
        parser.write_bytes((tmp_path / "old-parser.py").read_bytes())
    elif change == "damage":
        stamp.write_bytes(stamp.read_bytes().replace(b"parser ", b"parsex "))
    elif change == "truncate":
        stamp.write_bytes(stamp.read_bytes()[:-20])
    elif change == "group-writable":
        os.chmod(stamp, 0o664)
    else:
        target = tmp_path / "elsewhere"
        target.write_bytes(stamp.read_bytes())
        stamp.unlink()
        stamp.symlink_to(target)
    assert precompiled._stamped_toolchain_digest(str(sources), str(stamp)) is None


def test_the_toolchain_digest_comes_from_a_matching_stamp(own_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    identities = [precompiled._file_identity(os.path.join(precompiled._HERE, f"{name}.py"))
                  for name in precompiled.TOOLCHAIN_MODULES]
    stamped = b"\x5a" * precompiled.DIGEST_SIZE
    Path(precompiled.toolchain_stamp_path()).write_bytes(precompiled._encode_stamp(stamped, identities))
    monkeypatch.setattr(precompiled, "_toolchain_digest", None)
    assert precompiled.toolchain_digest() == stamped
    os.unlink(precompiled.toolchain_stamp_path())
    monkeypatch.setattr(precompiled, "_toolchain_digest", None)
    assert precompiled.toolchain_digest() == precompiled._hash_toolchain(precompiled._HERE)[0]


def test_precompile_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*argv: str) -> tuple[int, str]:
        code = cli.main(["precompile", "--output-dir", str(tmp_path), *argv])
        return code, capsys.readouterr().out

    code, out = run("--json")
    assert code == 0
    data = json.loads(out)
    assert data["arch"] == "x86_64"
    entries = {(entry["policy"], entry["category"]): entry for entry in data["entries"]}
    names_entry = entries.pop(precompiled.NAMES_ENTRY)
    assert names_entry["status"] == "written" and names_entry["instructions"] == precompiled.SYSCALL_NAME_TABLE_SIZE
    assert names_entry["path"] == str(tmp_path / "syscall-names.x86_64")
    assert sorted(entries) == sorted(SHIPPED)
    for (name, category), entry in entries.items():
        assert entry["status"] == "written"
        assert entry["path"] == str(tmp_path / f"{name}.{category}.x86_64.bpf")
        assert entry["instructions"] == len(_compiled(policies.shipped_policy_file(name), category)) // 8
    code, out = run()
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["policy", "category", "entries", "status", "file"]
    assert lines[-1] == f"{len(SHIPPED) + 1} unchanged"
    assert run("--check")[0] == 0
    # A damaged file and a left-over one: --check fails and says which; a run repairs both.
    (tmp_path / "vmm.vcpu.x86_64.bpf").write_bytes(b"junk")
    (tmp_path / "vmm.gone.x86_64.bpf").write_bytes(b"junk")
    code, out = run("--check")
    assert code == 1
    assert "stale" in out and "extra" in out
    code, out = run()
    assert code == 0
    assert out.splitlines()[-1] == f"{len(SHIPPED)} unchanged, 1 written, 1 removed"
    assert not (tmp_path / "vmm.gone.x86_64.bpf").exists()
    code, out = run("--policy", "baseline")
    assert code == 0 and out.splitlines()[-1] == "1 unchanged"


def test_the_stored_syscall_name_table_is_libseccomps(store: Path) -> None:
    stored = precompiled.load_syscall_names("x86_64", store=str(store))
    assert stored == precompiled.compute_syscall_names("x86_64")
    assert stored[0] == "read" and stored[59] == "execve" and stored[400] is None


def test_a_damaged_stale_or_untrusted_name_table_is_not_used(own_store: Path) -> None:
    table = own_store / "syscall-names.x86_64"
    good = table.read_bytes()
    assert precompiled.load_syscall_names("x86_64") is not None
    damaged = bytearray(good)
    damaged[-1] ^= 1
    table.write_bytes(bytes(damaged))
    assert precompiled.load_syscall_names("x86_64") is None
    table.write_bytes(good.replace(precompiled.names_key("x86_64"), bytes(precompiled.DIGEST_SIZE)))
    assert precompiled.load_syscall_names("x86_64") is None
    table.write_bytes(good)
    table.chmod(0o666)
    assert precompiled.load_syscall_names("x86_64") is None
    table.chmod(0o644)
    assert precompiled.load_syscall_names("x86_64") is not None
    # A well-formed table whose names are not syscall names (or the wrong count) is refused too.
    bogus = ["x y"] + ["read"] * (precompiled.SYSCALL_NAME_TABLE_SIZE - 1)
    table.write_bytes(precompiled.encode(precompiled.names_key("x86_64"), "\n".join(bogus).encode()))
    assert precompiled.load_syscall_names("x86_64") is None
    table.write_bytes(precompiled.encode(precompiled.names_key("x86_64"), b"read\nwrite"))
    assert precompiled.load_syscall_names("x86_64") is None


def test_the_vmm_uses_the_stored_name_table_without_loading_libseccomp(own_store: Path) -> None:
    code = (
        f"from jailer.policies import precompiled\nprecompiled.STORE_DIR = {str(own_store)!r}\n"
        "from vmm import seccomp\nnames = seccomp.syscall_names()\nimport sys\n"
        "print(names[0], names[400], 'jailer.policies.syscalls' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["read", "syscall_400", "False"]
    (own_store / "syscall-names.x86_64").unlink()
    # Without the table, the VMM resolves the names through libseccomp, as before.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["read", "syscall_400", "True"]


def test_precompile_refuses_unknown_policies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["precompile", "--output-dir", str(tmp_path), "--policy", "nope"]) == 2
    assert "no shipped policy named 'nope'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _modules_after(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                            capture_output=True, text=True, check=True)
    return set(result.stdout.split())


TOOLCHAIN_MODULES = {"jailer.policies.compiler", "jailer.policies.parser", "jailer.policies.model",
                     "jailer.policies.syscalls", "json", "pathlib", "hashlib", "_hashlib"}


def test_the_jailer_uses_a_fresh_stored_program_without_the_toolchain(store: Path) -> None:
    modules = _modules_after(
        "from jailer.policies import precompiled\n"
        f"precompiled.STORE_DIR = {str(store)!r}\n"
        "from jailer import seccomp\n"
        "choice = seccomp.choose_filter(policy_path=None, category=None, disabled=False)\n"
        f"assert choice.program == open({str(store / 'baseline.baseline.x86_64.bpf')!r}, 'rb').read()"
        f"[precompiled.HEADER_SIZE:]\n"
    )
    assert "jailer.policies.precompiled" in modules
    assert not TOOLCHAIN_MODULES & modules


def test_the_vmm_uses_fresh_stored_programs_without_the_toolchain(store: Path) -> None:
    categories = ["vmm", "vcpu", "api"]
    modules = _modules_after(
        "from jailer.policies import precompiled\n"
        f"precompiled.STORE_DIR = {str(store)!r}\n"
        "from vmm import seccomp\n"
        f"programs = seccomp.compile_filters(None, {categories!r})\n"
        "import os\n"
        f"assert programs == {{name: open(os.path.join({str(store)!r}, f'vmm.{{name}}.x86_64.bpf'), 'rb')"
        f".read()[precompiled.HEADER_SIZE:] for name in {categories!r}}}\n"
    )
    assert "jailer.policies.loader" in modules  # still loaded before any thread starts
    assert not (TOOLCHAIN_MODULES - {"pathlib"}) & modules  # (vmm's own modules may use pathlib)


def test_the_vmm_compiles_when_one_category_is_not_stored(own_store: Path) -> None:
    from vmm import seccomp as vmm_seccomp

    (own_store / "vmm.api.x86_64.bpf").unlink()
    path = policies.shipped_policy_file("vmm")
    programs = vmm_seccomp.compile_filters(None, ["vmm", "api"])
    assert programs == {"vmm": _compiled(path, "vmm"), "api": _compiled(path, "api")}


def test_loading_stored_programs_stays_inside_the_jail_category(store: Path) -> None:
    # The jailed VMM reads its stored programs under the outer `jail` filter (default: trap):
    # any system call that category does not allow (geteuid, say) would end it with SIGSYS.
    code = (
        "from jailer.policies import precompiled, loader\n"
        f"precompiled.STORE_DIR = {str(store)!r}\n"
        "from vmm import seccomp\n"
        "jail = open(precompiled.STORE_DIR + '/vmm.jail.x86_64.bpf', 'rb').read()[precompiled.HEADER_SIZE:]\n"
        "loader.install_filter(jail, all_threads=True)\n"
        "programs = seccomp.compile_filters(None, ['vmm', 'vcpu', 'api'])\n"
        "print(sorted(programs))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout == "['api', 'vcpu', 'vmm']\n"
