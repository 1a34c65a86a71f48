"""The `jailer` executable's own output: version, help, and error exit status."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from jailer.args import ARG_SPECS


def jailer(*argv: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("jailer")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "jailer"]
    return subprocess.run([*command, *argv], capture_output=True, text=True, timeout=60)


def test_jailer_version_constant_matches_the_distribution() -> None:
    import jailer

    assert jailer.__version__ == version("stockade")


def test_version_is_the_stockade_package_version() -> None:
    result = jailer("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"Jailer v{version('stockade')}\n\n", "")


def test_help_documents_every_flag_and_the_hardening() -> None:
    result = jailer("--id", "x", "-h")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"Jailer v{version('stockade')}\n\nrequired arguments:\n")
    for spec in ARG_SPECS:
        assert f"  --{spec.name}" in result.stdout
    for word in ("bounding", "securebits", "no_new_privs", "IPC and UTS", "baseline", "fail closed"):
        assert word in result.stdout


def test_help_wins_over_errors_and_version() -> None:
    assert jailer("--bogus", "--version", "--help").stdout.startswith("Jailer v")
    assert "required arguments:" in jailer("--bogus", "--version", "--help").stdout


def test_parse_error_is_one_line_and_exit_1() -> None:
    result = jailer("--id", "a", "--id", "b")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Failed to parse arguments: The argument 'id' was provided more than once.\n"


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "jailer", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("Jailer v")
