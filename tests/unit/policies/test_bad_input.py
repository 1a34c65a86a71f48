"""jailer-policy on hostile input: one line on stderr and exit 2, never a traceback, never a
hang, nothing written outside the directory asked for and nothing at all when the run fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import cli, compiler, files
from support.policies import category, write_policy

GOOD = category([{"syscall": "read"}])
# (command, output option, the suffix of the files it writes)
WRITERS = [("compile", "--split-output", ".bpf"), ("export-oci", "--output-dir", ".oci.json")]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path below `root` with its content (None for directories)."""
    return {str(path.relative_to(root)): None if path.is_dir() else path.read_bytes() for path in root.rglob("*")}


@pytest.mark.parametrize(("command", "option", "suffix"), WRITERS)
@pytest.mark.parametrize("bad_name", ["../trav", "ABS/abs", "a/b", ".", "..", "nul\0byte", "\ud800"])
def test_category_names_never_leave_the_output_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        command: str, option: str, suffix: str, bad_name: str) -> None:
    # A good category first: it must not be written either (all or nothing), nor D created.
    bad_name = bad_name.replace("ABS", str(tmp_path / "elsewhere"))  # an absolute name, inside tmp_path
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"good": GOOD, bad_name: GOOD}))
    before = _tree(tmp_path)
    code, out, err = _run(capsys, command, str(policy), option, str(tmp_path / "out" / "D"))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"category name {bad_name!r} cannot be used as a file name" in err
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("bad_name", ["../x", "/tmp/x/abs", ""])
def test_import_oci_refuses_category_names_that_are_no_file_names(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 bad_name: str) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}))
    code, out, err = _run(capsys, "import-oci", str(profile), "--category", bad_name)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "cannot be used as a file name" in err or "must not be empty" in err


@pytest.mark.parametrize(("command", "option", "suffix"), WRITERS)
def test_a_failed_write_leaves_nothing_and_keeps_older_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            command: str, option: str, suffix: str) -> None:
    # The second category's file name is too long for the file system: that write fails midway.
    policy = write_policy(tmp_path, {"good": GOOD, "x" * 250: GOOD})
    fresh = tmp_path / "fresh" / "D"
    code, _, err = _run(capsys, command, str(policy), option, str(fresh))
    assert code == 2 and err.count("\n") == 1 and "File name too long" in err
    assert not (tmp_path / "fresh").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / f"good{suffix}").write_bytes(b"older")
    (existing / "unrelated").write_bytes(b"mine")
    before = _tree(existing)
    code, _, _ = _run(capsys, command, str(policy), option, str(existing))
    assert code == 2 and _tree(existing) == before


def test_a_failed_rename_removes_the_files_this_run_placed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_rename = os.rename
    calls: list[str] = []

    def rename(source: str, target: str) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise OSError(5, "Input/output error", target)
        real_rename(source, target)

    monkeypatch.setattr(files.os, "rename", rename)
    with pytest.raises(OSError, match="Input/output error"):
        files.write_category_files(tmp_path / "a" / "b", {"one": b"1", "two": b"2"}, ".bpf")
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_split_output_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"keep")
    directory = tmp_path / "D"
    directory.mkdir()
    (directory / "t.bpf").symlink_to(outside)
    paths = files.write_category_files(directory, {"t": b"program!"}, ".bpf")
    assert paths == [str(directory / "t.bpf")] and outside.read_bytes() == b"keep"
    assert (directory / "t.bpf").read_bytes() == b"program!" and not (directory / "t.bpf").is_symlink()


@pytest.mark.parametrize(
    "argv",
    [
        ["export-oci", "POLICY", "--output-dir", ""],
        ["compile", "POLICY", "--split-output", ""],
        ["precompile", "--policy", "baseline", "--output-dir", ""],
        ["trace", "--output", "", "--", "true"],
    ],
)
def test_empty_output_paths_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    policy = write_policy(tmp_path, {"good": GOOD})
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = _run(capsys, *[str(policy) if arg == "POLICY" else arg for arg in argv])
    assert code == 2 and out == "" and err.count("\n") == 1 and "the path must not be empty" in err
    assert list(work.iterdir()) == []


def _limit_memory() -> None:
    """In the child: a reader that streams /dev/zero fails at 2 GiB instead of taking the machine."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", "SPECIAL"],
        ["check", "SPECIAL", "--thread", "t", "read"],
        ["check", "SPECIAL.bpf", "read"],
        ["disasm", "SPECIAL"],
        ["import-oci", "SPECIAL"],
        ["explain", "SPECIAL"],
        ["diff", "SPECIAL", "SPECIAL"],
    ],
)
@pytest.mark.parametrize("kind", ["fifo", "directory", "/dev/zero"])
def test_only_regular_files_are_read(tmp_path: Path, argv: list[str], kind: str) -> None:
    """A FIFO would block the open forever, /dev/zero would be read forever: both are refused
    before a byte is read (in a child with a timeout, so a regression fails instead of hanging)."""
    special = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(special)
    elif kind == "directory":
        special.mkdir()
    else:
        special.symlink_to(kind)
    (tmp_path / "special.bpf").symlink_to(special)
    argv = [arg.replace("SPECIAL", str(special)) for arg in argv]
    result = subprocess.run([sys.executable, "-m", "jailer.policies.cli", *argv], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL, preexec_fn=_limit_memory)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "is not a regular file" in result.stderr, result.stderr


def test_the_jailer_and_the_vmm_refuse_a_fifo_as_their_policy(tmp_path: Path) -> None:
    """Both try the precompiled store first (which reads the policy too), then load_policy."""
    fifo = tmp_path / "policy.json"
    os.mkfifo(fifo)
    script = f"""
from pathlib import Path
from jailer import policies, seccomp
from jailer.policies import precompiled
from vmm import seccomp as vmm_seccomp
path = {str(fifo)!r}
assert precompiled.load(path, "jail") is None
for attempt in (lambda: policies.load_policy(path),
                lambda: seccomp.choose_filter(policy_path=path, category="jail", disabled=False),
                lambda: vmm_seccomp.compile_filters(Path(path), ["vcpu"])):
    try:
        attempt()
    except Exception as error:
        print(type(error).__name__, "|", error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["PolicyError", "JailerError", "VmmError"]
    assert all("not a regular file" in line for line in lines)


@pytest.mark.parametrize("value", ["-5", "-0", "+5", "0b101", "0o7", "1_000", "\uff15", " 5", "5 ", "0x", "", "1e3"])
def test_check_takes_only_plain_decimal_or_hex_arguments(capsys: pytest.CaptureFixture[str], value: str) -> None:
    baseline = str(policies.shipped_policy_path("baseline"))
    code, out, err = _run(capsys, "check", baseline, "--thread", "baseline", "read", value)
    assert code == 2 and out == "" and err.count("\n") == 1 and f"not an integer: {value!r}" in err


@pytest.mark.parametrize("value", ["18446744073709551616", "0x10000000000000000", "9" * 5000])
def test_check_arguments_beyond_64_bits_are_refused(capsys: pytest.CaptureFixture[str], value: str) -> None:
    baseline = str(policies.shipped_policy_path("baseline"))
    code, _, err = _run(capsys, "check", baseline, "--thread", "baseline", "read", value)
    assert code == 2 and err.count("\n") == 1 and "argument out of 64-bit range" in err


def test_check_arguments_in_range(capsys: pytest.CaptureFixture[str]) -> None:
    baseline = str(policies.shipped_policy_path("baseline"))
    code, out, _ = _run(capsys, "check", baseline, "--thread", "baseline", "read", "0", "007", "0XfF", "0x10",
                        "18446744073709551615", "0xffffffffffffffff", "--json")
    assert code == 0 and json.loads(out)["args"] == [0, 7, 255, 16, 2**64 - 1, 2**64 - 1]


@pytest.mark.parametrize(("syscall", "message"), [
    ("-1", "not a syscall number: '-1'"),
    ("+0", "not a syscall number: '+0'"),
    ("0x100000000", "not a syscall number: '0x100000000'"),
    ("1_0", "not a syscall number: '1_0'"),
    ("\uff15", "unknown syscall '\uff15'"),  # a fullwidth 5 is no number (and no syscall name)
    (" 5", "unknown syscall ' 5'"),
    ("\udcff", "unknown syscall '\\udcff'"),  # an undecodable argv byte: was a UnicodeEncodeError
    ("read\x1b[31m", "unknown syscall 'read\\x1b[31m'"),
])
def test_check_refuses_malformed_syscalls(capsys: pytest.CaptureFixture[str], syscall: str, message: str) -> None:
    baseline = str(policies.shipped_policy_path("baseline"))
    code, out, err = _run(capsys, "check", baseline, "--thread", "baseline", syscall)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err
    assert "\x1b" not in err


def test_check_syscall_numbers_in_range(capsys: pytest.CaptureFixture[str]) -> None:
    baseline = str(policies.shipped_policy_path("baseline"))
    assert _run(capsys, "check", baseline, "--thread", "baseline", "0")[1].startswith("baseline: read:")
    assert _run(capsys, "check", baseline, "--thread", "baseline", "0x0")[1].startswith("baseline: read:")
    assert _run(capsys, "check", baseline, "--thread", "baseline", "4294967295")[1].startswith("baseline: #4294967295:")


def test_control_characters_in_syscall_names_are_escaped_in_errors(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    policy = write_policy(tmp_path, {"t": category([{"syscall": "re\x1bad\x00"}])})
    code, _, err = _run(capsys, "compile", str(policy))
    assert code == 2 and "\x1b" not in err and "\x00" not in err
    assert "category 't', rule 1 ('re\\x1bad\\x00'): unknown syscall 're\\x1bad\\x00'" in err
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["\x1b[2J"],
                                   "syscalls": [{"names": ["read", "x\x1b[31m\x00"], "action": "SCMP_ACT_ALLOW"}]}))
    code, _, err = _run(capsys, "import-oci", str(profile))
    assert code == 2 and "\x1b" not in err and "it lists '\\x1b[2J'" in err
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO",
                                   "syscalls": [{"names": ["read", "x\x1b[31m\x00", "read\x00"], "action": "SCMP_ACT_ALLOW"}]}))
    code, out, err = _run(capsys, "import-oci", str(profile))
    assert code == 0 and "\x1b" not in err and "\x00" not in err
    assert err == "jailer-policy: skipped names unknown on x86_64: 'read\\x00', 'x\\x1b[31m\\x00'\n"
    assert [rule["syscall"] for rule in json.loads(out)["oci"]["filter"]] == ["read"]  # not "read\0" as read


def test_an_oversized_program_is_refused_before_the_merge_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merge check emulates the program thousands of times; a program the kernel would
    refuse anyway is refused first (it took minutes for a few thousand range rules)."""

    def range_check(*args: object) -> None:
        raise AssertionError("the merge check ran on a program over the limit")

    monkeypatch.setattr(compiler, "_refuse_mismerges", range_check)
    rules = [{"syscall": "ioctl", "args": [{"index": 1, "type": "qword", "op": "gt", "val": 3 * n}]} for n in range(4200)]
    policy = policies.load_policy(write_policy(tmp_path, {"t": category(rules)}))
    with pytest.raises(policies.PolicyError, match="instructions exceed the kernel's limit of 4096"):
        compiler.compile_category(policy, "t")


def test_the_merge_check_probes_each_argument_combination_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each combination of boundary values is emulated once: probing them again for every rule
    that compares the argument multiplied the work by the rule count (200 such rules: a minute)."""
    from jailer.policies import bpf

    real_emulate = bpf.emulate
    probes: list[tuple[int, ...]] = []

    def emulate(program: bytes, data: bpf.SeccompData) -> bpf.Run:
        probes.append(tuple(data.args))
        return real_emulate(program, data)

    monkeypatch.setattr(bpf, "emulate", emulate)
    rules = [{"syscall": "ioctl", "args": [{"index": 1, "type": "qword", "op": "gt", "val": 3 * n + 1}]} for n in range(60)]
    policy = policies.load_policy(write_policy(tmp_path, {"t": category(rules)}))
    compiler.compile_category(policy, "t")
    assert probes and len(probes) == len(set(probes))
