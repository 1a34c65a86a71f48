"""Property: no command line, however odd, makes the jailer print a traceback.

In-process, parsing and validation may only raise `JailerError` (one line, or the two-line
CGROUP_MOVE message). A few runs of the real `jailer` check the same at the process level:
exit status 0 or 1, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jailer.args import ARG_SPECS, parse_args
from jailer.errors import JailerError
from jailer.validation import parse_rust_uint, validate

FLAGS = [f"--{spec.name}" for spec in ARG_SPECS] + ["--help", "-h", "--", "-", "--=", "---"]
VALUES = ["", "0", "1", "+1", "-1", "2", "x", "/", "/nonexistent", "/tmp", "/bin/true", "a=b", "a=b=c",
          "no-file=", "fsize=1", "cpu.shares=2", "..", "./a", "/:/x", "é", "\x00", "a" * 70, "4294967296"]

token = st.one_of(st.sampled_from(FLAGS), st.sampled_from(VALUES), st.text(max_size=12))


def parse_and_validate(argv: list[str]) -> None:
    parsed = parse_args(argv)
    if parsed.help or parsed.version:
        return
    if parse_rust_uint(parsed.value("cgroup-version") or "", 255) == 2 and not parsed.multiple("cgroup"):
        # Never let the property test move the test process into a cgroup (v2 move mode);
        # planning `--cgroup` values only reads /proc/mounts and is fuzzed like the rest.
        parsed.values["cgroup-version"] = "1"
    parsed.flags.add("no-seccomp")
    parsed.values.pop("seccomp-policy", None)
    parsed.values.pop("seccomp-category", None)
    validate(parsed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(token, max_size=14))
@example(["--id", "a", "--uid", "1", "--gid", "1", "--exec-file", "\x00"])
@example(["--id", "a", "--uid", "1", "--gid", "1", "--exec-file", "/bin/true", "--chroot-base-dir", "\x00"])
@example(["--id", "a", "--uid", "1", "--gid", "1", "--exec-file", "/bin/true", "--chroot-base-dir", "/tmp",
          "--ro-bind", "/tmp:/a\x00"])
@example(["--id", "a", "--uid", "1", "--gid", "1", "--exec-file", "/bin/true", "--chroot-base-dir", "/tmp",
          "--bind", "\x00"])
def test_random_argv_only_raises_jailer_error(argv: list[str]) -> None:
    try:
        parse_and_validate(argv)
    except JailerError as error:
        message = str(error)
        assert message and "Traceback" not in message
        assert message.count("\n") <= 1


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(FLAGS[:6] + VALUES), max_size=10))
def test_random_argv_from_vocabulary(argv: list[str]) -> None:
    try:
        parse_and_validate(argv)
    except JailerError as error:
        assert "\n" not in str(error) or str(error).count("\n") == 1


ODD_ARGVS = [
    [],
    ["--"],
    ["--", "--help"],
    ["-h", "--nonsense"],
    ["--version", "--id"],
    ["--id"],
    ["--id", "\udcff", "--exec-file", "/bin/true", "--uid", "1", "--gid", "1"],
    ["--id", "a", "--exec-file", "\x7f", "--uid", "1", "--gid", "1"],
    ["--id", "a", "--exec-file", "/bin/true", "--uid", "1", "--gid", "1", "--chroot-base-dir", "/bin/true"],
    ["--id", "a", "--exec-file", "/bin/true", "--uid", "99999999999", "--gid", "1"],
    ["--id", "a" * 65, "--exec-file", "/", "--uid", "1", "--gid", "1"],
    ["--id", "a", "--exec-file", "/bin/true", "--uid", "1", "--gid", "1", "--chroot-base-dir", "/nonexistent",
     "--resource-limit", "="],
]


@pytest.mark.parametrize("argv", ODD_ARGVS, ids=range(len(ODD_ARGVS)))
def test_real_jailer_never_prints_a_traceback(argv: list[str]) -> None:
    script = Path(sys.executable).with_name("jailer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "jailer"]
    encoded = [arg.encode("utf-8", "surrogateescape") for arg in argv]
    result = subprocess.run([c.encode() for c in command] + encoded, capture_output=True, timeout=60)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode in (0, 1), stderr
    assert "Traceback" not in stderr
    if result.returncode == 1:
        assert stderr.count("\n") == 1 and stderr.endswith("\n"), stderr
