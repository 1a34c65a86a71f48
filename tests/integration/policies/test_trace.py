"""`jailer-policy trace` on a real multi-threaded Python program, then the policy it wrote."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import cli, compiler

PROGRAM = """
import ctypes, fcntl, os, socket, threading
libc = ctypes.CDLL(None)
def vcpu(index):
    libc.prctl(15, f"vcpu{index}".encode(), 0, 0, 0)
    read_end, write_end = os.pipe()
    try:
        fcntl.ioctl(read_end, 0x5401, bytes(60))  # TCGETS: ENOTTY on a pipe, but the request is what counts
    except OSError:
        pass
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
    os.close(read_end); os.close(write_end)
threads = [threading.Thread(target=vcpu, args=(i,)) for i in range(2)]
for t in threads: t.start()
for t in threads: t.join()
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_trace_writes_one_category_per_thread_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    output = tmp_path / "traced.json"
    assert cli.main(["trace", "--output", str(output), "--union", "jail", "--", sys.executable, str(script)]) == 0
    policy = policies.load_policy(output)
    assert "vcpu" in policy.categories and "jail" in policy.categories
    vcpu = {rule.describe() for rule in policy.category("vcpu").rules}
    assert "ioctl when arg1 (low 32 bits) == 0x5401" in vcpu
    assert "socket when arg0 (low 32 bits) == 0x1" in vcpu
    assert all(name not in policy.category("vcpu").syscalls() for name in ("execve", "clone3"))
    assert compiler.compile_policy(policy)  # what trace writes always compiles
    assert json.loads(output.read_text())["vcpu"]["default_action"] == "kill_process"


def test_trace_without_command_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["trace", "--output", str(tmp_path / "x.json"), "--"]) == 2
    assert "needs a command" in capsys.readouterr().err


ENFORCED_PROGRAM = """
import ctypes, fcntl, os, socket, sys, threading
from jailer.policies import compiler, load_policy
from jailer.policies.loader import install_filter
program = compiler.compile_category(load_policy(sys.argv[1]), sys.argv[2])
libc = ctypes.CDLL(None)
def vcpu():
    libc.prctl(15, b"vcpu0", 0, 0, 0)
    install_filter(program, all_threads=False)
    read_end, write_end = os.pipe()
    try:
        fcntl.ioctl(read_end, 0x5401, bytes(60))
    except OSError:
        pass
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()
    os.write(write_end, b"x")
    assert os.read(read_end, 1) == b"x"
    os.close(read_end); os.close(write_end)
thread = threading.Thread(target=vcpu)
thread.start()
thread.join()
print("done", flush=True)
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_traced_policy_runs_the_traced_program_and_stops_anything_else(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "program.py"
    script.write_text(ENFORCED_PROGRAM)
    permissive = tmp_path / "permissive.json"
    permissive.write_text(json.dumps({"open": {"default_action": "allow", "filter_action": {"errno": 1}, "filter": []}}))
    traced = tmp_path / "traced.json"
    assert cli.main(["trace", "-o", str(traced), "--", sys.executable, str(script), str(permissive), "open"]) == 0

    enforced = subprocess.run([sys.executable, str(script), str(traced), "vcpu"], capture_output=True, text=True)
    assert enforced.returncode == 0 and enforced.stdout == "done\n", enforced.stderr

    # The same program doing one thing the trace never saw (getppid) is killed.
    script.write_text(ENFORCED_PROGRAM.replace("os.close(read_end); os.close(write_end)",
                                               "os.close(read_end); os.close(write_end); os.getppid()"))
    violating = subprocess.run([sys.executable, str(script), str(traced), "vcpu"], capture_output=True, text=True)
    assert violating.returncode == -31  # SIGSYS: the generated policy's default is kill_process
