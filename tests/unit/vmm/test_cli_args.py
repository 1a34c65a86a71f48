"""The VMM's argument parsing: Firecracker's options, one-line errors, exit code 153."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmm.cli import ArgumentError, main, parse_arguments


def test_jailer_style_arguments() -> None:
    arguments = parse_arguments(
        ["--id", "vm-1", "--start-time-us", "12", "--start-time-cpu-us=3", "--parent-cpu-time-us", "4",
         "--config-file", "c.json", "--no-api", "--boot-timer", "--level", "Debug", "--seccomp-filter", "p.json"]
    )
    assert arguments.instance_id == "vm-1" and arguments.start_time_cpu_us == "3"
    assert arguments.config_file == "c.json" and arguments.no_api and arguments.boot_timer
    assert arguments.seccomp_filter == "p.json" and not arguments.no_seccomp


def test_time_options_keep_their_value_without_leading_zeros() -> None:
    arguments = parse_arguments(["--config-file", "c", "--no-api", "--start-time-us", "0" * 5000 + "42"])
    assert arguments.start_time_us == "42"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-api"], "--no-api needs --config-file"),
        (["--no-api", "--api-sock", "s", "--config-file", "c"], "--api-sock and --no-api contradict"),
        (["--config-file"], "--config-file needs a value"),
        (["--config-file", "c", "--no-api", "--bogus"], "unknown argument '--bogus'"),
        (["--config-file", "c", "--no-api", "--start-time-us", "-1"], r"must be an integer from 0 to 2\^64-1, got '-1'"),
        (["--config-file", "c", "--no-api", "--start-time-us", str(1 << 64)], r"from 0 to 2\^64-1"),
        (["--config-file", "c", "--no-api", "--parent-cpu-time-us", "9" * 5000], r"got '9{40}\.\.\.'"),
        (["--config-file", "c", "--config-file", "d", "--no-api"], "--config-file given twice"),
        (["--config-file", "c", "--no-api", "--no-api"], "--no-api given twice"),
        (["--config-file", "", "--no-api"], "--config-file needs a value, got an empty one"),
        (["--config-file=", "--no-api"], "--config-file needs a value, got an empty one"),
        (["--config-file", "c", "--no-api", "--level", ""], "--level needs a value, got an empty one"),
        (["--config-file", "c", "--no-api", "--no-seccomp", "--seccomp-filter", "p"], "contradict"),
        (["--config-file", "c", "--no-api", "--id", "a/b"], "--id 'a/b'"),
    ],
)
def test_bad_arguments(argv: list[str], message: str) -> None:
    with pytest.raises(ArgumentError, match=message):
        parse_arguments(argv)


def test_main_reports_bad_arguments_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bogus"]) == 153
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("vmm: unknown argument")


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--seccomp-filter FILE" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("vmm ")


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

OPTION_WORDS = st.sampled_from(
    ["--config-file", "--no-api", "--id", "--level", "--boot-timer", "--no-seccomp", "--seccomp-filter",
     "--start-time-us", "--metrics-path", "--log-path", "--test-devices", "--help", "--version", "-x", "--"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(OPTION_WORDS | st.text(max_size=6), max_size=8))
def test_random_argv_parses_or_fails_with_one_line(argv: list[str]) -> None:
    try:
        parse_arguments(argv)
    except ArgumentError as error:
        assert str(error) and "\n" not in str(error)


@pytest.mark.parametrize("collecting", [True, False])
def test_main_leaves_the_garbage_collector_as_it_found_it(collecting: bool, capsys: pytest.CaptureFixture[str]) -> None:
    # main() turns the collector off for the start-up; a run that starts no VM returns here.
    import gc

    was = gc.isenabled()
    try:
        (gc.enable if collecting else gc.disable)()
        assert main(["--no-api"]) == 153
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
    assert "needs --config-file" in capsys.readouterr().err


def test_the_end_of_the_start_up_freezes_what_it_made_and_collects_again() -> None:
    import subprocess
    import sys

    from support import PROJECT_ROOT

    script = (
        "import gc, sys; sys.path.insert(0, sys.argv[1]); from vmm import cli; gc.disable(); "
        "made = [[] for _ in range(1000)]; cli._startup_over(); "
        "print(gc.isenabled(), gc.get_freeze_count() >= 1000, gc.get_count()[0] < 100)"
    )
    result = subprocess.run([sys.executable, "-I", "-c", script, str(PROJECT_ROOT)],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    assert result.stdout.split() == ["True", "True", "True"]


def test_an_api_run_stopped_before_its_vm_leaves_the_collector_off_if_it_was(tmp_path: Path) -> None:
    # API mode turns the collector on before the API serves; Ctrl-C (or a failed build)
    # before any VM starts must still leave main() with the collector as it found it.
    import subprocess
    import sys

    from support import PROJECT_ROOT

    script = (
        "import gc, sys; sys.path.insert(0, sys.argv[1]); from vmm import api, cli; gc.disable()\n"
        "def interrupted(self): raise KeyboardInterrupt\n"
        "api.ApiServer.start = interrupted\n"
        "status = cli.main(['--api-sock', sys.argv[2], '--no-seccomp'])\n"
        "print(status, gc.isenabled())\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", script, str(PROJECT_ROOT), str(tmp_path / "api.sock")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.stdout.split() == ["130", "False"], result.stderr
