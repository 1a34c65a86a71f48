"""Validators (§1.3): every message, the order of checks, and the pure parsing helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jailer.args import parse_args
from jailer.errors import ErrorKind, JailerError, os_error_text
from jailer.validation import (
    parse_resource_limits,
    parse_rust_uint,
    rust_uint_error,
    userfaultfd_minor,
    validate,
    validate_instance_id,
    validate_parent_cgroup_path,
)


def error_of(call, *args) -> JailerError:  # type: ignore[no-untyped-def]
    with pytest.raises(JailerError) as caught:
        call(*args)
    return caught.value


@pytest.fixture
def argv(tmp_path: Path) -> list[str]:
    exec_file = tmp_path / "vmm"
    exec_file.write_text("")
    return ["--id", "good-id", "--exec-file", str(exec_file), "--uid", "1", "--gid", "2",
            "--chroot-base-dir", str(tmp_path), "--no-seccomp"]


def validation_error(argv: list[str]) -> str:
    return str(error_of(validate, parse_args(argv)))


@pytest.mark.parametrize("jail_id", ["a", "x" * 64, "Ünïcödé-1", "-", "ab12-CD"])
def test_valid_ids(jail_id: str) -> None:
    validate_instance_id(jail_id)


@pytest.mark.parametrize(
    ("jail_id", "message"),
    [
        ("", "Invalid instance ID: Invalid len (0);  the length must be between 1 and 64"),
        ("x" * 65, "Invalid instance ID: Invalid len (65);  the length must be between 1 and 64"),
        ("é" * 33, "Invalid instance ID: Invalid len (66);  the length must be between 1 and 64"),
        ("ab_c", "Invalid instance ID: Invalid char (_) at position 2"),
        ("éé.", "Invalid instance ID: Invalid char (.) at position 2"),
        ("a/b", "Invalid instance ID: Invalid char (/) at position 1"),
    ],
)
def test_invalid_ids(jail_id: str, message: str) -> None:
    assert str(error_of(validate_instance_id, jail_id)) == message


@pytest.mark.parametrize(
    ("text", "maximum", "error"),
    [
        ("0", 255, None), ("+7", 255, None), ("255", 255, None),
        ("256", 255, "number too large to fit in target type"),
        ("", 255, "cannot parse integer from empty string"),
        ("+", 255, "invalid digit found in string"),
        ("-1", 255, "invalid digit found in string"),
        (" 1", 255, "invalid digit found in string"),
        ("١", 255, "invalid digit found in string"),  # non-ASCII digit
        ("4294967295", (1 << 32) - 1, None),
        ("4294967296", (1 << 32) - 1, "number too large to fit in target type"),
        ("9" * 5000, (1 << 64) - 1, "number too large to fit in target type"),  # beyond int()'s 4300 digits
        ("0" * 5000 + "42", 255, None),  # Rust parses leading zeros
    ],
)
def test_rust_uint_parsing(text: str, maximum: int, error: str | None) -> None:
    assert rust_uint_error(text, maximum) == error


@given(st.from_regex(r"\+?[0-9]{0,25}", fullmatch=True), st.sampled_from([255, (1 << 32) - 1, (1 << 64) - 1]))
def test_rust_uint_range_check_agrees_with_integer_comparison(text: str, maximum: int) -> None:
    digits = text.removeprefix("+")
    if not digits:
        return
    too_large = int(digits) > maximum
    assert (rust_uint_error(text, maximum) == "number too large to fit in target type") == too_large
    if not too_large:
        assert parse_rust_uint(text, maximum) == int(digits)


@pytest.mark.parametrize("path", ["a", "a/b", "a/./b", "a//b/", ""])
def test_parent_cgroup_accepted(path: str) -> None:
    assert validate_parent_cgroup_path(path) == path


@pytest.mark.parametrize("path", ["/a", "..", "a/../b", "./a", ".", "a/.."])
def test_parent_cgroup_rejected(path: str) -> None:
    assert str(error_of(validate_parent_cgroup_path, path)) == (
        "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'"
    )


def test_resource_limits() -> None:
    assert parse_resource_limits([]) == {"no-file": 2048}
    assert parse_resource_limits(["fsize=10", "no-file=5", "no-file=6"]) == {"fsize": 10, "no-file": 6}
    assert str(error_of(parse_resource_limits, ["fsize"])) == "Invalid format for resources limits: fsize"
    # The value is parsed before the name is checked.
    assert str(error_of(parse_resource_limits, ["bogus=x"])) == (
        "Invalid limit value for resource: x: invalid digit found in string"
    )
    assert str(error_of(parse_resource_limits, ["bogus=1"])) == "Invalid resource argument: bogus"
    assert str(error_of(parse_resource_limits, ["fsize=18446744073709551616"])) == (
        "Invalid limit value for resource: 18446744073709551616: number too large to fit in target type"
    )
    assert str(error_of(parse_resource_limits, ["fsize="])) == (
        "Invalid limit value for resource: : cannot parse integer from empty string"
    )


def test_proc_misc_minor_parsing_handles_padded_minors() -> None:
    assert userfaultfd_minor("125 cpu_dma_latency\n 57 userfaultfd\n") == 57
    assert userfaultfd_minor("257 userfaultfd\n") == 257
    assert userfaultfd_minor("  5 userfaultfd\n") == 5
    assert userfaultfd_minor("200 tun\n") is None
    assert userfaultfd_minor("") is None


def test_validation_order(argv: list[str], tmp_path: Path) -> None:
    """First failure wins, in the reference's order: id, exec-file, base, uid, gid, parent, version, limits."""
    def with_(**changes: str) -> list[str]:
        result = list(argv)
        for name, value in changes.items():
            flag = "--" + name.replace("_", "-")
            if flag in result:
                result[result.index(flag) + 1] = value
            else:
                result += [flag, value]
        return result

    everything_wrong = dict(id="", exec_file="/nope", chroot_base_dir="/nope", uid="x", gid="y",
                            parent_cgroup="/abs", cgroup_version="z", resource_limit="q")
    expected = [
        ("id", "Invalid instance ID: Invalid len (0);  the length must be between 1 and 64"),
        ("exec_file", "Failed to canonicalize path /nope: No such file or directory (os error 2)"),
        ("chroot_base_dir", "Failed to canonicalize path /nope: No such file or directory (os error 2)"),
        ("uid", "Invalid uid: x"),
        ("gid", "Invalid gid: y"),
        ("parent_cgroup", "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'"),
        ("cgroup_version", "z is an invalid cgroup version specifier"),
        ("resource_limit", "Invalid format for resources limits: q"),
    ]
    remaining = dict(everything_wrong)
    for name, message in expected:
        assert validation_error(with_(**remaining)) == message
        del remaining[name]
    config = validate(parse_args(with_(**remaining)))
    assert config.chroot_dir == os.path.join(str(tmp_path), "vmm", "good-id", "root")


def test_exec_file_symlink_uses_target_name(argv: list[str], tmp_path: Path) -> None:
    target = tmp_path / "real-vmm"
    target.write_text("")
    link = tmp_path / "link"
    link.symlink_to(target)
    argv[argv.index("--exec-file") + 1] = str(link)
    config = validate(parse_args(argv))
    assert config.exec_file == str(target)
    assert config.exec_file_name == "real-vmm"
    assert config.parent_cgroup == "real-vmm"


def test_chroot_base_must_be_a_directory(argv: list[str], tmp_path: Path) -> None:
    argv[argv.index("--chroot-base-dir") + 1] = argv[argv.index("--exec-file") + 1]
    assert validation_error(argv) == f"{tmp_path / 'vmm'} is not a directory"


def test_cgroup_version_other_than_two_without_cgroups_is_ignored(argv: list[str]) -> None:
    assert validate(parse_args([*argv, "--cgroup-version", "7"])).cgroup_version == 7


def test_os_error_text_uses_musl_texts() -> None:
    assert os_error_text(16) == "Resource busy (os error 16)"
    assert os_error_text(24) == "No file descriptors available (os error 24)"
    assert os_error_text(40) == "Too many levels of symbolic links (os error 40)"
    assert os_error_text(OSError(2, "x")) == "No such file or directory (os error 2)"
    assert os_error_text(133) == f"{os.strerror(133)} (os error 133)"


def test_error_kinds_needed_by_the_cgroups_module_exist() -> None:
    for name in ("CGROUP_HIERARCHY_MISSING", "CGROUP_INVALID_VERSION", "CGROUP_INVALID_PARENT_PATH", "CGROUP_MOVE",
                 "CGROUP_FORMAT", "CGROUP_INVALID_FILE", "CGROUP_CONTROLLER_UNAVAILABLE",
                 "CGROUP_INHERIT_FROM_PARENT", "READ_TO_STRING", "WRITE", "CREATE_DIR", "CGROUP_REMOVE"):
        assert name in ErrorKind.__members__
    error = JailerError(ErrorKind.CGROUP_MOVE, path='/sys/fs/cgroup/"x"', error=os_error_text(16))
    assert str(error) == (
        "Failed to move process to cgroup (/sys/fs/cgroup/x): Resource busy (os error 16).\n"
        "Hint: If you intended to create a child cgroup under /sys/fs/cgroup/x, pass any --cgroup parameters."
    )
    assert error.kind is ErrorKind.CGROUP_MOVE
