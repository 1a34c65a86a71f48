"""Input fuzzing of the three CLIs that take untrusted-ish input: `jailer` argv, VMM configs,
seccomp policies. Whatever the input: no traceback, a nonzero exit with an error line when the
input is bad, and nothing left behind on disk (jail directories, cgroups, mounts) after an error.

The jailer runs for real (as root), so an argv that happens to be valid makes a real jail: that
run must exit 0 and is cleaned up before the next example. `--daemonize` and `--new-pid-ns` are
not drawn: their parent returns before the jail is finished, so "before/after" would race.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.security import CGROUP_ROOT

FUZZ_PREFIX = "stfz"
EXEC_NAME = f"{FUZZ_PREFIX}_exec"
TIMEOUT = 15
FUZZ_SETTINGS = settings(
    max_examples=60, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# No NUL (argv cannot hold it) and no line breaks (the jailer echoes bad arguments verbatim, as
# Firecracker's does, so a newline in the input would split its one error line).
printable_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), max_size=40
)


def console_script(name: str) -> Path:
    return Path(sys.executable).parent / name


def our_state(base: Path) -> dict[str, object]:
    """What a failed run must not leave behind: files under the chroot base, our cgroups, our mounts."""
    files = sorted(str(path.relative_to(base)) for path in base.rglob("*")) if base.exists() else []
    cgroups = []
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else ():
        if hierarchy.is_dir() and not hierarchy.is_symlink():
            cgroups += [str(path) for path in hierarchy.glob("*") if path.name.startswith(FUZZ_PREFIX)]
            cgroups += [str(path) for path in hierarchy.glob("*/*") if path.name.startswith(FUZZ_PREFIX)]
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if FUZZ_PREFIX in line or str(base) in line]
    return {"files": files, "cgroups": sorted(cgroups), "mounts": mounts}


def assert_clean_failure(result: subprocess.CompletedProcess, before: dict, after: dict, what: str) -> None:
    assert "Traceback" not in result.stderr, f"{what}: traceback\n{result.stderr}"
    assert result.returncode != 0
    assert result.stderr.strip(), f"{what}: failed silently (exit {result.returncode})"
    assert after == before, f"{what}: partial state left behind after: {result.stderr.strip()}"


def remove_fuzz_cgroups() -> None:
    """rmdir every cgroup directory the fuzzed runs made (all named with our prefix), deepest first."""
    for hierarchy in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else ():
        if hierarchy.is_symlink() or not hierarchy.is_dir():
            continue
        found = [path for path in hierarchy.glob(f"{FUZZ_PREFIX}*/**") if path.is_dir()]
        for leftover in sorted(found, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                leftover.rmdir()


def undo_successful_run(base: Path) -> None:
    for child in base.iterdir():
        shutil.rmtree(child, ignore_errors=True)
    remove_fuzz_cgroups()


@pytest.fixture
def fuzz_area(tmp_path: Path, escape_probe: Path) -> Iterator[dict[str, Path]]:
    """A chroot base, a static exec file named with our prefix, and a few interesting files."""
    base = tmp_path / "base"
    base.mkdir()
    exec_file = tmp_path / EXEC_NAME
    shutil.copy(escape_probe, exec_file)
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"jail": {"default_action": "allow", "filter_action": "nope", "filter": [')
    yield {"base": base, "exec": exec_file, "garbage": garbage, "tmp": tmp_path}
    remove_fuzz_cgroups()


def jailer_argv(area: dict[str, Path]) -> st.SearchStrategy[list[str]]:
    ids = st.one_of(st.just(f"{FUZZ_PREFIX}-a1"), st.just(f"{FUZZ_PREFIX}-{'x' * 70}"), printable_text,
                    st.just(""), st.just("../escape"))
    numbers = st.one_of(st.integers(-3, 2**33).map(str), printable_text, st.just("40200"))
    paths = st.sampled_from([
        str(area["exec"]), "/nonexistent", "/bin/true", str(area["base"]), "relative/path", "",
        str(area["garbage"]), "/dev/null",
    ])
    options: dict[str, st.SearchStrategy[str]] = {
        "--id": ids,
        "--exec-file": paths,
        "--uid": numbers,
        "--gid": numbers,
        "--chroot-base-dir": st.sampled_from([str(area["base"]), "/nonexistent/base", str(area["exec"]), ""]),
        "--netns": st.sampled_from(["/nonexistent/netns", str(area["garbage"]), "/proc/self/ns/net", ""]),
        "--cgroup": st.one_of(
            st.sampled_from(["pids.max=10", "cpu.shares=abc", "nonsense", "memory.limit_in_bytes=-1",
                             "../x=1", "pids.max=max", "cpuset.cpus=0-999", "=", "pids.max="]),
            printable_text),
        "--cgroup-version": st.one_of(st.sampled_from(["1", "2", "3", "0", ""]), printable_text),
        "--parent-cgroup": st.sampled_from([f"{FUZZ_PREFIX}-parent", f"../../{FUZZ_PREFIX}", f"{FUZZ_PREFIX}/a/b", ""]),
        "--resource-limit": st.one_of(
            st.sampled_from(["fsize=10", "no-file=abc", "bogus=1", "no-file=999999999", "fsize=-1", "no-file"]),
            printable_text),
        "--seccomp-policy": st.sampled_from(["/nonexistent.json", str(area["garbage"]), str(area["exec"])]),
        "--seccomp-category": st.one_of(st.sampled_from(["jail", "baseline", "vcpu0"]), printable_text),
        "--ro-bind": st.one_of(st.sampled_from(["/nonexistent:/x", f"{area['exec']}:/bin/p", "relative", ":",
                                                f"{area['garbage']}:../../escape", "/:/"]), printable_text),
        "--bind": st.one_of(st.sampled_from(["/nonexistent", f"{area['tmp']}:/run/host", "a:b:c"]), printable_text),
    }
    valid = {"--id": f"{FUZZ_PREFIX}-a1", "--exec-file": str(area["exec"]), "--uid": "40200", "--gid": "40200",
             "--chroot-base-dir": str(area["base"])}
    # Mostly-valid required arguments, so runs get past the parser into validation and the jail
    # steps (where partial state can happen); each one is randomised on its own now and then.
    required = st.tuples(*(
        st.one_of(st.just(value), st.just(value), st.just(value), options[name]).map(lambda v, n=name: [n, v])
        for name, value in valid.items()
    ))
    optional_names = sorted(set(options) - set(valid))
    optional = st.lists(st.sampled_from(optional_names), unique=True, max_size=4).flatmap(
        lambda names: st.tuples(*(options[name].map(lambda v, n=name: [n, v]) for name in names))
    )
    # --no-seccomp often: without it every run stops at the outer filter's compilation.
    switches = st.sampled_from([["--no-seccomp"]] * 4 + [[], ["--python-runtime"], ["--bogus"], ["-"], ["--help"]])
    junk = st.lists(printable_text, max_size=1)
    # The exec file (the probe) exits 0 with `list`: any nonzero exit is then the jailer's own.
    tail = ["--", "list"]

    def assemble(parts: tuple) -> list[str]:
        required_pairs, optional_pairs, switch, extra, rest = parts
        pairs = [*required_pairs, *optional_pairs]
        return [item for pair in pairs for item in pair] + switch + extra + rest

    return st.tuples(required, optional, switches, junk, st.just(tail)).map(assemble)


@pytest.mark.root
def test_random_jailer_argv_fails_cleanly(fuzz_area: dict[str, Path]) -> None:
    jailer = console_script("jailer")
    base = fuzz_area["base"]

    @FUZZ_SETTINGS
    @given(jailer_argv(fuzz_area))
    def check(argv: list[str]) -> None:
        before = our_state(base)
        result = subprocess.run([str(jailer), *argv], capture_output=True, text=True, timeout=TIMEOUT,
                                stdin=subprocess.DEVNULL, cwd=fuzz_area["tmp"])
        after = our_state(base)
        if result.returncode == 0:
            # A valid argv made a real jail (or printed help): undo it for the next example.
            undo_successful_run(base)
            assert "Traceback" not in result.stderr
            return
        assert_clean_failure(result, before, after, f"jailer {argv!r}")
        # split("\n"), not splitlines(): the echoed argument may hold \x1c or \x85, which are not line ends.
        errors = [line for line in result.stderr.rstrip("\n").split("\n") if "--no-seccomp given" not in line]
        assert len(errors) <= 2, f"jailer {argv!r}: error is not one line:\n{result.stderr}"

    check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | printable_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(printable_text, children, max_size=4),
    max_leaves=12,
)


def fuzz_json_file(path: Path, known_keys: dict[str, st.SearchStrategy]) -> st.SearchStrategy[Callable[[], Path]]:
    """Either structured JSON close to the real schema (so parsing gets past the first key), raw
    random JSON, or broken text; drawn as a writer so each example gets its own file contents."""
    structured = st.fixed_dictionaries({}, optional=known_keys)
    document = st.one_of(structured.map(json.dumps), json_values.map(json.dumps),
                         st.sampled_from(["", "{", "[]", "null", '{"a": 1}{', "\ufeff{}"]))

    def writer(text: str) -> Callable[[], Path]:
        def write() -> Path:
            path.write_text(text)
            return path
        return write

    return document.map(writer)


def vmm_config_keys(tmp: Path) -> dict[str, st.SearchStrategy]:
    anything = json_values
    maybe_path = st.sampled_from([str(tmp / "missing-kernel"), "/dev/null", "", "relative"]) | anything
    return {
        "boot-source": st.fixed_dictionaries({}, optional={
            "kernel_image_path": maybe_path, "boot_args": printable_text | anything, "initrd_path": maybe_path}),
        "drives": st.lists(st.fixed_dictionaries({}, optional={
            "drive_id": printable_text | anything, "path_on_host": maybe_path,
            "is_root_device": st.booleans() | anything, "is_read_only": st.booleans() | anything}), max_size=3) | anything,
        "machine-config": st.fixed_dictionaries({}, optional={
            "vcpu_count": st.integers(-2, 300) | anything, "mem_size_mib": st.integers(-2, 2**40) | anything,
            "smt": st.booleans() | anything}),
        "network-interfaces": st.lists(anything, max_size=2),
        "logger": anything,
    }


def test_random_vmm_config_fails_cleanly(tmp_path: Path) -> None:
    vmm = console_script("vmm")
    config = tmp_path / "vm_config.json"

    @FUZZ_SETTINGS
    @given(fuzz_json_file(config, vmm_config_keys(tmp_path)))
    def check(write: Callable[[], Path]) -> None:
        path = write()
        before = our_state(tmp_path)
        result = subprocess.run([str(vmm), "--no-api", "--config-file", str(path)], capture_output=True,
                                text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, cwd=tmp_path)
        assert_clean_failure(result, before, our_state(tmp_path), f"vmm config {path.read_text()[:300]!r}")

    check()


def policy_keys() -> dict[str, st.SearchStrategy]:
    action = st.sampled_from(["allow", "trap", "kill_process", "kill_thread", "log", {"errno": 1}, "nope"]) | json_values
    rule = st.fixed_dictionaries({}, optional={
        "syscall": st.sampled_from(["read", "ioctl", "no_such_call", ""]) | json_values,
        "args": st.lists(st.fixed_dictionaries({}, optional={
            "index": st.integers(-1, 7) | json_values, "type": st.sampled_from(["dword", "qword", "x"]) | json_values,
            "op": st.sampled_from(["eq", "ne", "lt", "masked_eq", "bogus"]) | json_values,
            "val": st.integers(-1, 2**65) | json_values}), max_size=3) | json_values,
        "comment": printable_text,
    })
    category = st.fixed_dictionaries({}, optional={
        "default_action": action, "filter_action": action, "filter": st.lists(rule, max_size=4) | json_values,
    })
    return {"jail": category, "baseline": category, "vcpu0": category | json_values}


def test_random_policy_fails_cleanly_in_the_toolchain(tmp_path: Path) -> None:
    tool = console_script("jailer-policy")
    policy = tmp_path / "policy.json"
    output = tmp_path / "bpf"

    @FUZZ_SETTINGS
    @given(fuzz_json_file(policy, policy_keys()))
    def check(write: Callable[[], Path]) -> None:
        path = write()
        before = our_state(tmp_path)
        # --split-output writes one .bpf per category: a failure must not leave some of them behind.
        result = subprocess.run([str(tool), "compile", str(path), "--split-output", str(output)],
                                capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                                cwd=tmp_path)
        assert "Traceback" not in result.stderr, f"policy {path.read_text()[:300]!r}\n{result.stderr}"
        if result.returncode != 0:
            assert_clean_failure(result, before, our_state(tmp_path), f"policy {path.read_text()[:300]!r}")
        shutil.rmtree(output, ignore_errors=True)

    check()


@pytest.mark.root
def test_random_policy_fails_cleanly_in_the_jailer(fuzz_area: dict[str, Path]) -> None:
    """The same random policies through `jailer --seccomp-policy`: rejected during validation,
    before anything exists on disk."""
    jailer = console_script("jailer")
    base = fuzz_area["base"]
    policy = fuzz_area["tmp"] / "policy.json"

    @FUZZ_SETTINGS
    @given(fuzz_json_file(policy, policy_keys()), st.sampled_from(["jail", "baseline", "vcpu0", "missing"]))
    def check(write: Callable[[], Path], category: str) -> None:
        path = write()
        before = our_state(base)
        argv = [str(jailer), "--id", f"{FUZZ_PREFIX}-p1", "--exec-file", str(fuzz_area["exec"]), "--uid", "40200",
                "--gid", "40200", "--chroot-base-dir", str(base), "--seccomp-policy", str(path),
                "--seccomp-category", category, "--", "list"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                                cwd=fuzz_area["tmp"])
        if result.returncode == 0:
            undo_successful_run(base)
            assert "Traceback" not in result.stderr
            return
        assert_clean_failure(result, before, our_state(base), f"policy {path.read_text()[:300]!r}")

    check()
