"""The jailer-policy commands people and CI run: output shape, JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import bpf, cli, compiler
from support.policies import FIRECRACKER_X86_64, category, write_policy


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compile_split_output_matches_compile_policy(firecracker_reference: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = firecracker_reference / FIRECRACKER_X86_64
    code, out, _ = _run(capsys, "compile", str(source), "--split-output", str(tmp_path / "bpf"), "--json")
    assert code == 0
    data = json.loads(out)
    programs = compiler.compile_policy(policies.load_policy(source))
    assert {name: info["instructions"] for name, info in data["categories"].items()} == {
        name: len(program) // 8 for name, program in programs.items()}
    for name, program in programs.items():
        assert (tmp_path / "bpf" / f"{name}.bpf").read_bytes() == program


def test_disasm_names_syscalls_and_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy_path = write_policy(tmp_path, {"t": category([{"syscall": "ioctl", "args": [
        {"index": 1, "type": "dword", "op": "eq", "val": 0xAE80}]}])})
    program_path = tmp_path / "t.bpf"
    program_path.write_bytes(compiler.compile_category(policies.load_policy(policy_path), "t"))
    code, out, _ = _run(capsys, "disasm", str(program_path))
    assert code == 0
    assert "A = arch" in out and "AUDIT_ARCH_X86_64" in out and "ioctl" in out
    assert "args[1].lo" in out and "0xae80" in out and "return KILL_PROCESS" in out and "return ALLOW" in out
    code, out, _ = _run(capsys, "disasm", str(program_path), "--json")
    assert len(json.loads(out)) == len(program_path.read_bytes()) // 8


def test_disasm_rejects_a_non_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.bpf"
    path.write_bytes(b"abc")
    code, _, err = _run(capsys, "disasm", str(path))
    assert code == 2 and "not a BPF program: 3 bytes" in err


def test_check_policy_names_the_deciding_rule(firecracker_reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = str(firecracker_reference / FIRECRACKER_X86_64)
    code, out, _ = _run(capsys, "check", source, "--thread", "vcpu", "ioctl", "3", "0xae80", "--json")
    data = json.loads(out)
    assert code == 0 and data["verdict"] == "allow" == data["compiled_verdict"] and "arg1 (low 32 bits) == 0xae80" in data["rule"]
    code, out, _ = _run(capsys, "check", source, "--thread", "vcpu", "ioctl", "3", "0xae81")
    assert code == 0 and out.strip() == "vcpu: ioctl: trap (default action)"


def test_check_bpf_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = compiler.compile_category(policies.load_policy(policies.shipped_policy_path("baseline")), "baseline")
    path = tmp_path / "baseline.bpf"
    path.write_bytes(program)
    code, out, _ = _run(capsys, "check", str(path), "clone3")
    assert code == 0 and out.startswith("clone3: errno(38)")
    code, out, _ = _run(capsys, "check", str(path), str(0x40000000 | 59))
    assert out.startswith("#1073741883: kill_process")


def test_check_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    baseline = str(policies.shipped_policy_path("baseline"))
    assert _run(capsys, "check", baseline, "--thread", "baseline", "no_such_call")[2].endswith("unknown syscall 'no_such_call' on x86_64\n")
    assert "not an integer" in _run(capsys, "check", baseline, "--thread", "baseline", "read", "zero")[2]
    assert "--thread CATEGORY is needed" in _run(capsys, "check", baseline, "read")[2]


def test_explain_json_counts(firecracker_reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "explain", str(firecracker_reference / FIRECRACKER_X86_64), "--json")
    summaries = {item["category"]: item for item in json.loads(out)}
    assert code == 0 and summaries["vcpu"]["rules"] == 49 and summaries["vcpu"]["entries"]["ioctl"]


def test_export_and_import_oci(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = str(policies.shipped_policy_path("baseline"))
    code, out, _ = _run(capsys, "export-oci", baseline, "--output-dir", str(tmp_path))
    assert code == 0 and (tmp_path / "baseline.oci.json").is_file()
    code, out, _ = _run(capsys, "import-oci", str(tmp_path / "baseline.oci.json"), "--category", "baseline")
    imported = policies.parser.policy_from_json(json.loads(out))
    original = policies.load_policy(baseline)
    assert compiler.compile_policy(imported) == compiler.compile_policy(original)


def test_console_script_has_no_traceback_on_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"vcpu": {"default_action": "trap", "filter_action": "allow", "filter": [{"syscall": "ioctl", '
                   '"args": [{"index": 6, "type": "dword", "op": "eq", "val": 1}]}]}}')
    result = subprocess.run([sys.executable, "-m", "jailer.policies.cli", "audit", str(bad)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "category 'vcpu', rule 1 (ioctl), args[0]: 'index' must be an integer from 0 to 5, got 6" in result.stderr


def test_import_oci_refuses_unconvertible_integers_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "huge.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", '
                       '"args": [{"index": 0, "value": ' + "9" * 5000 + ', "op": "SCMP_CMP_EQ"}]}]}')
    code, _, err = _run(capsys, "import-oci", str(profile))
    assert code == 2
    assert err.strip() == f"jailer-policy: {profile}: invalid JSON: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"


def test_diff_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_policy(tmp_path, {"t": category([{"syscall": "read"}])}, "old.json")
    new = write_policy(tmp_path, {"t": category([{"syscall": "read"}, {"syscall": "ptrace"}])}, "new.json")
    code, out, _ = _run(capsys, "diff", str(old), str(new))
    assert code == 0 and "ptrace" in out and "added" in out
    assert _run(capsys, "diff", str(old), str(old))[1].strip() == "no differences"


def test_emulator_trace_ends_at_a_return(firecracker_reference: Path) -> None:
    program = compiler.compile_category(policies.load_policy(firecracker_reference / FIRECRACKER_X86_64), "api")
    run = bpf.emulate(program, bpf.SeccompData(0))
    assert bpf.decode(program)[run.trace[-1]].cls == bpf.RET


def test_export_firecracker_refuses_per_rule_actions(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "export-firecracker", str(policies.shipped_policy_path("baseline")))
    assert code == 2 and "category 'baseline', rule" in err and "(clone3): its own action errno(38)" in err


def test_export_firecracker_round_trips(firecracker_reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = firecracker_reference / FIRECRACKER_X86_64
    code, out, _ = _run(capsys, "export-firecracker", str(source))
    assert code == 0
    exported = policies.parser.policy_from_json(json.loads(out))
    assert compiler.compile_policy(exported) == compiler.compile_policy(policies.load_policy(source))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "jailer-policy: error: the following arguments are required: COMMAND (see --help)"),
        (["bogus"], "jailer-policy: error: argument COMMAND: invalid choice: 'bogus'"),
        (["compile"], "jailer-policy compile: error: the following arguments are required: policy (see --help)"),
        (["compile", "--arch", "mips", "p.json"], "jailer-policy compile: error: argument --arch: invalid choice: 'mips'"),
        (["check", "--no-such-option"], "jailer-policy check: error: "),
        (["compile", "p.json", "--x\ny"], "jailer-policy: error: unrecognized arguments: --x\\ny (see --help)"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(message), captured.err
