"""The command-line parser: reference mechanics (§1.1), every message, help and version."""

from __future__ import annotations

import pytest

from jailer.args import ARG_SPECS, help_text, parse_args
from jailer.errors import ErrorKind, JailerError

REQUIRED = ["--id", "a", "--exec-file", "/bin/true", "--uid", "1", "--gid", "2"]


def parse_error(argv: list[str]) -> str:
    with pytest.raises(JailerError) as caught:
        parse_args(argv)
    assert caught.value.kind is ErrorKind.ARGUMENT_PARSING
    return str(caught.value)


def test_minimal_command_line() -> None:
    parsed = parse_args(REQUIRED)
    assert parsed.values == {"id": "a", "exec-file": "/bin/true", "uid": "1", "gid": "2"}
    assert parsed.value("chroot-base-dir") == "/srv/jailer"
    assert parsed.value("cgroup-version") == "1"
    assert parsed.value("netns") is None
    assert not parsed.flag("daemonize")


def test_everything_after_first_double_dash_is_passed_verbatim() -> None:
    parsed = parse_args([*REQUIRED, "--", "--config-file", "x", "--", "--help", "-h"])
    assert parsed.extra_args == ["--config-file", "x", "--", "--help", "-h"]
    assert not parsed.help


@pytest.mark.parametrize("token", ["--help", "-h"])
def test_help_anywhere_before_separator_wins(token: str) -> None:
    assert parse_args(["--bogus", "x", token, "--version"]).help


def test_version_only_when_no_help() -> None:
    parsed = parse_args(["--version", "--bogus"])
    assert parsed.version and not parsed.help


def test_unknown_and_bare_tokens() -> None:
    assert parse_error(["id"]) == (
        "Failed to parse arguments: Found argument 'id' which wasn't expected, or isn't valid in this context."
    )
    assert parse_error(["--bogus"]) == (
        "Failed to parse arguments: Found argument 'bogus' which wasn't expected, or isn't valid in this context."
    )
    assert parse_error(["--id=a"]) == (
        "Failed to parse arguments: Found argument 'id=a' which wasn't expected, or isn't valid in this context."
    )
    assert parse_error(["-x"]) == (
        "Failed to parse arguments: Found argument '-x' which wasn't expected, or isn't valid in this context."
    )


def test_value_missing_or_looking_like_a_flag() -> None:
    assert parse_error(["--id"]) == "Failed to parse arguments: The argument 'id' requires a value, but none was supplied."
    assert parse_error(["--id", "--uid", "1"]) == (
        "Failed to parse arguments: The argument 'id' requires a value, but none was supplied."
    )


def test_duplicates_rejected_but_repeatable_kept_in_order() -> None:
    assert parse_error([*REQUIRED, "--uid", "3"]) == "Failed to parse arguments: The argument 'uid' was provided more than once."
    assert parse_error([*REQUIRED, "--daemonize", "--daemonize"]) == (
        "Failed to parse arguments: The argument 'daemonize' was provided more than once."
    )
    parsed = parse_args([*REQUIRED, "--cgroup", "b=1", "--cgroup", "a=2", "--resource-limit", "fsize=1",
                         "--ro-bind", "/x", "--bind", "/y", "--ro-bind", "/z"])
    assert parsed.multiple("cgroup") == ["b=1", "a=2"]
    assert parsed.multiple("ro-bind") == ["/x", "/z"]
    assert parsed.multiple("bind") == ["/y"]


def test_required_arguments_checked_in_alphabetical_order() -> None:
    assert parse_error([]) == "Failed to parse arguments: Argument 'exec-file' required, but not found."
    assert parse_error(["--exec-file", "x"]) == "Failed to parse arguments: Argument 'gid' required, but not found."
    assert parse_error(["--exec-file", "x", "--gid", "1"]) == "Failed to parse arguments: Argument 'id' required, but not found."
    assert parse_error(["--exec-file", "x", "--gid", "1", "--id", "a"]) == (
        "Failed to parse arguments: Argument 'uid' required, but not found."
    )


def test_parse_errors_come_before_missing_required() -> None:
    assert "wasn't expected" in parse_error(["--id", "a", "--nope"])


def test_empty_value_is_a_value() -> None:
    assert parse_args(["--id", "", "--exec-file", "x", "--uid", "1", "--gid", "1"]).values["id"] == ""


def test_help_layout() -> None:
    text = help_text("9.9.9")
    assert text.startswith("Jailer v9.9.9\n\nrequired arguments:\n  --exec-file <exec-file>   File path to exec into.\n")
    assert text.endswith("\n\nAny arguments after the -- separator will be supplied to the jailed binary.\n\n")
    required, optional = text.split("\n\noptional arguments:\n")
    optional_lines = optional.split("\n\n")[0].splitlines()
    names = [line.split()[0] for line in optional_lines]
    assert names == sorted(names)
    assert "--help" in names
    assert '[default: "/srv/jailer"]' in optional
    assert '[default: "1"]' in optional
    # Every help column starts at the same offset within a block.
    offsets = {len(line) - len(line[line.index("   ", 2):].lstrip()) for line in optional_lines}
    assert len(offsets) == 1
    for spec in ARG_SPECS:
        assert f"--{spec.name}" in text
