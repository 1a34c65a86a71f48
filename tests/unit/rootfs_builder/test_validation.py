"""Bad input is refused up front with one clear line: sizes, SOURCE_DATE_EPOCH, output targets
that are not regular files, empty paths, non-UTF-8 names, and `all`'s options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rootfs_builder import bundle, cli
from rootfs_builder.cli import main
from rootfs_builder.errors import BuildError
from rootfs_builder.files import check_output_dir, output_dir, output_file
from rootfs_builder.rootfs import MAX_EPOCH, MAX_SIZE, _tree_digest_and_usage, parse_size, source_date_epoch


def _one_line(error: pytest.ExceptionInfo[BuildError]) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) < 300, message
    return message


# --- output targets: never replace what a build did not write --------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_output_file_refuses_a_fifo_and_leaves_it_alone(fifo: Path) -> None:
    before = os.lstat(fifo)
    with pytest.raises(BuildError) as error:
        with output_file(fifo) as temporary:
            temporary.write_text("image")
    assert _one_line(error) == f"output {fifo} is a named pipe (FIFO), not a regular file; refusing to replace it"
    after = os.lstat(fifo)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert list(fifo.parent.iterdir()) == [fifo]  # no temporary left behind


def test_output_file_refuses_a_directory_and_a_symlink_before_the_body_runs(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / "keep").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(directory / "keep")
    for target, kind in ((directory, "a directory"), (link, "a symbolic link")):
        ran = []
        with pytest.raises(BuildError, match=f"is {kind}, not a regular file") as error:
            with output_file(target):
                ran.append(True)
        _one_line(error)
        assert ran == []
    assert (directory / "keep").read_text() == "mine" and os.readlink(link) == str(directory / "keep")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "link"]


def test_output_file_checks_again_right_before_the_rename(tmp_path: Path) -> None:
    target = tmp_path / "image"
    with pytest.raises(BuildError, match="named pipe"):
        with output_file(target) as temporary:
            temporary.write_text("image")
            os.mkfifo(target)  # appeared while the build ran
    assert os.path.exists(target) and not target.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["image"]


def test_output_file_still_replaces_an_earlier_regular_output(tmp_path: Path) -> None:
    target = tmp_path / "image"
    target.write_text("old")
    with output_file(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "new"


def test_output_dir_refuses_before_replacing_anything(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a-vmlinuz").write_text("old")
    os.mkfifo(out / "b-rootfs.ext4")
    with pytest.raises(BuildError, match="b-rootfs.ext4 is a named pipe"):
        with output_dir(out) as staging:
            (staging / "a-vmlinuz").write_text("new")
            (staging / "b-rootfs.ext4").write_text("image")
    assert (out / "a-vmlinuz").read_text() == "old"  # checked all before replacing the first
    assert sorted(p.name for p in out.iterdir()) == ["a-vmlinuz", "b-rootfs.ext4"]


def test_check_output_dir_names_what_is_in_the_way(tmp_path: Path, fifo: Path) -> None:
    with pytest.raises(BuildError, match="pipe is a named pipe \\(FIFO\\), not a directory"):
        check_output_dir(fifo)
    out = tmp_path / "out"
    (out / "kernel").mkdir(parents=True)
    (out / "manifest.json").mkdir()
    check_output_dir(out, files=("rootfs.ext4",), dirs=("kernel",))
    with pytest.raises(BuildError, match="manifest.json is a directory, not a regular file"):
        check_output_dir(out, files=("manifest.json",), dirs=("kernel",))


# --- sizes and SOURCE_DATE_EPOCH: ASCII digits, length checked before int() -------------------


def test_a_5000_digit_size_is_too_large_not_a_traceback() -> None:
    with pytest.raises(BuildError) as error:
        parse_size("1" * 5000 + "M")
    assert "too large" in _one_line(error)
    assert parse_size("0" * 5000 + "4M") == 4 << 20  # leading zeros are not "large"


@pytest.mark.parametrize("size", ["５M", "٤M", "4\u212a", "²M", "4\u2003M"])
def test_only_ascii_digits_units_and_spaces(size: str) -> None:
    with pytest.raises(BuildError, match="invalid size"):
        parse_size(size)


@given(st.integers(min_value=0, max_value=1 << 70), st.sampled_from(["", "K", "M", "G", "k", "MiB", "GB"]))
def test_parse_size_agrees_with_integer_arithmetic(count: int, unit: str) -> None:
    size = count * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[unit[:1].upper()]
    if (1 << 20) <= size <= MAX_SIZE and size % 4096 == 0:
        assert parse_size(f"{count}{unit}") == size
    else:
        with pytest.raises(BuildError, match="size"):
            parse_size(f"{count}{unit}")


@pytest.mark.parametrize("value", ["²", "５", "1" * 5000, str(MAX_EPOCH + 1), "-1", ""])
def test_bad_source_date_epoch_is_one_line(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH") as error:
        source_date_epoch()
    _one_line(error)


def test_source_date_epoch_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0" * 5000 + str(MAX_EPOCH))
    assert source_date_epoch() == MAX_EPOCH
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert source_date_epoch() == 1


# --- names that are not UTF-8 -----------------------------------------------------------------


def test_tree_digest_takes_names_and_link_targets_that_are_not_utf8(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    os.close(os.open(os.path.join(root, b"\xff"), os.O_CREAT | os.O_WRONLY, 0o644))
    os.symlink(b"\xfe-target", os.path.join(root, b"link"))
    digest, needed = _tree_digest_and_usage(tmp_path)
    os.rename(os.path.join(root, b"\xff"), os.path.join(root, b"\xfd"))
    assert _tree_digest_and_usage(tmp_path)[0] != digest  # the name's bytes are in the digest
    assert needed > 0


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--cache-dir", "", "rootfs", "--from", "tree", "--out", "r.ext4", "--size", "8M"],
        ["rootfs", "--from", "", "--out", "r.ext4", "--size", "8M"],
        ["rootfs", "--from", "tree", "--out", "", "--size", "8M"],
        ["rootfs", "--debootstrap", "", "--out", "r.ext4", "--size", "8M"],
        ["initramfs", "--kernel", "", "--out", "i"],
        ["kernel", "--out", ""],
        ["all", "--out", ""],
    ],
)
def test_empty_paths_are_usage_errors(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before the fix these argv built (even fetched a kernel) in the current directory; make
    # sure a regression can do nothing: no build runs, and the directory is a scratch one.
    def no_build(args: object) -> None:
        raise AssertionError(f"an empty path was accepted: {args}")

    monkeypatch.setattr(cli, "_run", no_build)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_status:
        main(argv)
    assert exit_status.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rootfs-builder: error: argument")
    assert "empty" in lines[0]


# --- `all` validates every option before the kernel step --------------------------------------


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"compression": "lzip"}, "unknown compression 'lzip'"),
        ({"rootfs_size": "12X"}, "invalid size"),
        ({"rootfs_size": "1" * 5000}, "too large"),
        ({"flavor": "rt"}, "unknown kernel flavor"),
        ({"busybox_path": Path("/nonexistent/busybox")}, "busybox not found"),
    ],
)
def test_all_refuses_bad_options_before_fetching_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, object], fragment: str
) -> None:
    def no_kernel(*args: object, **kwargs: object) -> None:
        raise AssertionError("build_kernel ran before the options were checked")

    monkeypatch.setattr(bundle, "build_kernel", no_kernel)
    with pytest.raises(BuildError, match=fragment) as error:
        bundle.build_all(tmp_path / "out", **options)  # type: ignore[arg-type]
    _one_line(error)
    assert list(tmp_path.iterdir()) == []


def test_all_refuses_a_fifo_where_an_artifact_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "initramfs.cpio.zst")
    bundle.check_arguments(out, flavor="cloud", compression="gzip", rootfs_size="16M")  # the .gz name is free
    os.mkfifo(out / "rootfs.ext4")
    with pytest.raises(BuildError, match="rootfs.ext4 is a named pipe"):
        bundle.check_arguments(out, flavor="cloud", compression="gzip", rootfs_size="16M")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH"):
        bundle.check_arguments(tmp_path / "new", flavor="cloud", compression="gzip", rootfs_size="16M")
