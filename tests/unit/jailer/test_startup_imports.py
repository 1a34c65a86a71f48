"""The jailer's start-up path stays lean: what a benchmark-like run imports (argv parsing,
validation with the default outer filter from a fresh precompiled store, and the preload of
everything the run's later steps need) must not pull in the heavy modules again.

Start-up time is a product feature (benchmarks/jail_handoff.py); each module below cost
milliseconds under `python -X importtime` before it was taken off this path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jailer.policies import precompiled

HEAVY = {
    # stdlib modules that cost milliseconds each, with what they drag in. `enum` is not here:
    # ErrorKind is an Enum, and pip's console-script wrapper imports `re` (hence enum) first.
    "pathlib", "re", "fnmatch", "urllib", "urllib.parse", "contextlib", "dataclasses", "typing",
    "inspect", "logging", "json", "subprocess", "selectors", "socket", "signal", "functools", "warnings",
    "hashlib", "_hashlib", "ctypes", "ctypes.util", "importlib.util", "importlib.metadata", "termios", "encodings.ascii",
    # third-party wrappers: only their C module or the part the run needs
    "prctl", "pyseccomp", "pyroute2", "cgroupspy.nodes",
    # the policy toolchain (a fresh precompiled program needs none of it) and host-side helpers
    "jailer.policies.compiler", "jailer.policies.parser", "jailer.policies.model", "jailer.policies.syscalls",
    "jailer.runtime", "jailer.microvm", "jailer.netns", "jailer.daemonize", "jailer.help",
}

_SCRIPT = r"""
import json, sys
before = set(sys.modules)
store, argv, with_cgroups = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
from jailer.policies import precompiled
precompiled.STORE_DIR = store
from jailer.args import parse_args
from jailer.cli import JailRun
from jailer.validation import validate
config = validate(parse_args(argv))
assert config.seccomp is not None and config.seccomp.program, "no outer filter"
JailRun(config, 0, 0).preload()
if with_cgroups:  # what CgroupPlan.apply imports for a v1 `--cgroup cpu.shares=...`
    import jailer.cgroups
    from cgroupspy.controllers import Controller
loaded = set(sys.modules) - before
print(json.dumps(sorted(loaded)))
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("store")
    precompiled.precompile(["baseline"], store=str(directory))
    return str(directory)


def _loaded(store: str, argv: list[str], with_cgroups: bool) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, store, json.dumps(argv), "1" if with_cgroups else "0"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def _argv(tmp_path: Path) -> list[str]:
    exec_file = tmp_path / "probe"
    exec_file.write_bytes(b"#!/bin/sh\n")
    base = tmp_path / "jails"
    base.mkdir()
    return ["--id", "startup-path", "--exec-file", str(exec_file), "--uid", "1234", "--gid", "1234",
            "--chroot-base-dir", str(base), "--new-pid-ns"]


@pytest.mark.parametrize("with_cgroups", [False, True], ids=["no-cgroups", "v1-cgroup"])
def test_benchmark_like_run_imports_nothing_heavy(store: str, tmp_path: Path, with_cgroups: bool) -> None:
    loaded = _loaded(store, _argv(tmp_path), with_cgroups)
    assert "jailer.policies.precompiled" in loaded  # the stored baseline program was used
    assert not HEAVY & loaded, sorted(HEAVY & loaded)
    assert ("cgroupspy.controllers" in loaded) == with_cgroups  # cgroupspy only when cgroups are asked for


def test_the_outer_filter_falls_back_to_compiling_without_a_store(tmp_path: Path) -> None:
    # The same run without a stored program still works: it compiles (and pays for it).
    loaded = _loaded(str(tmp_path / "no-store"), _argv(tmp_path), False)
    assert "jailer.policies.compiler" in loaded
