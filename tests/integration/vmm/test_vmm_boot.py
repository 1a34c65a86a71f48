"""The real VMM (subprocess, real KVM_RUN) running inline machine-code guests through both
entry protocols: serial, exit port, i8042 reset, boot timer, triple fault, internal errors."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest
from support.vmm import HANG, TRIPLE_FAULT, mov_byte_to_address, out_al, run_vmm, serial_text, write_config, write_guest

pytestmark = pytest.mark.kvm

BOOT_TIME = re.compile(r"Guest-boot-time =\s+(\d+) us\s+(\d+) ms,\s+(\d+) CPU us\s+(\d+) CPU ms")
ECHO_LINE = bytes.fromhex("66bafd03 ec a801 74f7 66baf803 ec ee 3c0a 75ed".replace(" ", ""))
LIDT_ZERO = b"\x0f\x01\x1d" + struct.pack("<I", 0x7F0)


@pytest.mark.parametrize("pvh", [True, False], ids=["pvh", "linux64"])
def test_serial_output_and_exit_port_status(tmp_path: Path, pvh: bool) -> None:
    kernel = write_guest(tmp_path, serial_text("hello from the guest\n") + out_al(0xF4, 0x21) + HANG, pvh=pvh)
    result = run_vmm(write_config(tmp_path, kernel), log_path=tmp_path / "log")
    assert result.stdout == "hello from the guest\n"
    assert result.returncode == (0x21 << 1) | 1
    assert "guest wrote to the exit port 0xf4: exit status 67" in result.log
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("pvh", [True, False], ids=["pvh", "linux64"])
def test_i8042_reset_ends_the_vm_cleanly(tmp_path: Path, pvh: bool) -> None:
    kernel = write_guest(tmp_path, serial_text("bye\n") + out_al(0x64, 0xFE) + HANG, pvh=pvh)
    result = run_vmm(write_config(tmp_path, kernel), log_path=tmp_path / "log")
    assert (result.returncode, result.stdout) == (0, "bye\n")
    assert "guest requested a reset through the i8042 controller" in result.log


def test_boot_timer_line_only_with_the_flag(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, mov_byte_to_address(0xC000_0000, 123) + out_al(0xF4, 0) + HANG)
    config = write_config(tmp_path, kernel)
    result = run_vmm(config, "--boot-timer", log_path=tmp_path / "log")
    assert result.returncode == 1
    (match,) = BOOT_TIME.findall(result.log)
    us, ms, cpu_us, cpu_ms = map(int, match)
    assert us // 1000 == ms and cpu_us // 1000 == cpu_ms and us > 0
    without = run_vmm(config, log_path=tmp_path / "log2")
    assert without.returncode == 1 and "Guest-boot-time" not in without.log + without.stderr


def test_boot_timer_line_in_firecracker_log_format(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, mov_byte_to_address(0xC000_0000, 123) + out_al(0xF4, 0) + HANG)
    result = run_vmm(write_config(tmp_path, kernel), "--boot-timer", "--id", "vm-7", log_path=tmp_path / "log")
    line = next(line for line in result.log.splitlines() if "Guest-boot-time" in line)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9} \[vm-7:vcpu0:INFO\] Guest-boot-time = ", line)


@pytest.mark.parametrize("pvh", [True, False], ids=["pvh", "linux64"])
def test_triple_fault_is_reported_as_shutdown(tmp_path: Path, pvh: bool) -> None:
    kernel = write_guest(tmp_path, LIDT_ZERO + b"\x0f\x0b" + HANG, pvh=pvh)
    result = run_vmm(write_config(tmp_path, kernel), log_path=tmp_path / "log")
    assert result.returncode == 0
    assert re.search(r"vcpu0: guest shut down \(KVM_EXIT_SHUTDOWN: triple fault\) at RIP 0x100007, code at RIP: 0f 0b eb fe", result.log)


def test_unhandled_instruction_is_reported_with_rip_and_bytes(tmp_path: Path) -> None:
    """int 0x80 with an empty IDT: a triple fault on hardware KVM; PVM cannot emulate the
    delivery and reports a KVM internal error. Either way the report locates it."""
    kernel = write_guest(tmp_path, LIDT_ZERO + b"\xcd\x80" + HANG)
    result = run_vmm(write_config(tmp_path, kernel), log_path=tmp_path / "log")
    if "internal error" in result.log:
        assert result.returncode == 1
        assert re.search(r"KVM internal error, suberror \d+ at RIP 0x100007, code at RIP: cd 80 eb fe", result.log)
        assert "Traceback" not in result.stderr
    else:
        assert result.returncode == 0 and "triple fault" in result.log


def test_serial_input_reaches_the_guest(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, ECHO_LINE + out_al(0xF4, 0) + HANG)
    command_config = write_config(tmp_path, kernel)
    reader, writer = os.pipe()
    os.write(writer, b"typed on the host\n")
    os.close(writer)
    try:
        result = run_vmm(command_config, stdin=reader)
    finally:
        os.close(reader)
    assert result.stdout == "typed on the host\n" and result.returncode == 1


def test_two_vcpus_and_metrics(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, serial_text("ok\n") + mov_byte_to_address(0xC000_0000, 123) + out_al(0xF4, 2) + HANG)
    metrics = tmp_path / "metrics.json"
    result = run_vmm(write_config(tmp_path, kernel, vcpu_count=2), "--boot-timer", "--metrics-path", str(metrics))
    assert (result.returncode, result.stdout) == (5, "ok\n")
    (line,) = metrics.read_text().splitlines()
    document = json.loads(line)
    assert document["vcpu"]["exit_io_out"] == 4 and document["vcpu"]["exit_mmio_write"] == 1


def test_logger_and_metrics_sections_of_the_config(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, out_al(0xF4, 0) + HANG)
    log, metrics = tmp_path / "fc.log", tmp_path / "fc.metrics"
    extra = {"logger": {"log_path": str(log), "level": "Info"}, "metrics": {"metrics_path": str(metrics)}}
    result = run_vmm(write_config(tmp_path, kernel, extra=extra))
    assert result.returncode == 1
    assert "exit status 1" in log.read_text() and metrics.read_text().startswith("{")


def test_level_error_hides_info_lines(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, out_al(0xF4, 0) + HANG)
    result = run_vmm(write_config(tmp_path, kernel), "--level", "Error", log_path=tmp_path / "log")
    assert result.returncode == 1 and result.log == ""


def test_hung_guest_is_stopped_by_the_caller(tmp_path: Path) -> None:
    """A guest spinning forever keeps the VMM alive; nothing in it times out on its own."""
    kernel = write_guest(tmp_path, HANG)
    with pytest.raises(subprocess.TimeoutExpired):
        run_vmm(write_config(tmp_path, kernel), timeout=3)


@pytest.mark.parametrize("jailed", [False, True], ids=["per-thread", "jail+per-thread"])
def test_vcpus_survive_a_ptrace_attach(tmp_path: Path, jailed: bool) -> None:
    """A debugger or `jailer-policy inspect` attaching interrupts KVM_RUN (EINTR); the
    vCPU must resume, not die: after strace detaches, the guest still echoes input."""
    import shutil
    import signal
    import time

    from support.vmm import VMM_COMMAND, jailed_vmm_command

    from jailer.policies import shipped_policy_path

    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    config = write_config(tmp_path, write_guest(tmp_path, serial_text("up\n") + ECHO_LINE + out_al(0xF4, 0) + HANG), vcpu_count=2)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    prefix = jailed_vmm_command(shipped_policy_path("vmm")) if jailed else VMM_COMMAND
    vmm = subprocess.Popen(
        [*prefix, "--config-file", str(config), "--no-api"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        assert vmm.stdout is not None and vmm.stdin is not None
        assert vmm.stdout.readline() == b"up\n"
        tracer = subprocess.Popen(["strace", "-f", "-qq", "-o", str(tmp_path / "trace"), "-p", str(vmm.pid)])
        time.sleep(1.0)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=10)
        assert "KVM_RUN" in (tmp_path / "trace").read_text()
        vmm.stdin.write(b"still alive\n")
        vmm.stdin.close()
        assert vmm.stdout.readline() == b"still alive\n", vmm.stderr.read() if vmm.stderr else ""
        assert vmm.wait(timeout=30) == 1
    finally:
        if vmm.poll() is None:
            vmm.kill()
        vmm.wait()
        for stream in (vmm.stdin, vmm.stdout, vmm.stderr):
            if stream is not None and not stream.closed:
                stream.close()


def test_serial_output_to_a_file_from_the_config(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, serial_text("to the file\n") + out_al(0xF4, 0) + HANG)
    console = tmp_path / "console.log"
    result = run_vmm(write_config(tmp_path, kernel, extra={"serial": {"serial_out_path": str(console)}}))
    assert (result.returncode, result.stdout) == (1, "")
    assert console.read_text() == "to the file\n"


@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGINT"])
def test_stop_signals_end_the_vm_cleanly(tmp_path: Path, stop_signal: str) -> None:
    import signal

    from support.vmm import VMM_COMMAND

    config = write_config(tmp_path, write_guest(tmp_path, serial_text("up\n") + HANG), vcpu_count=2)
    metrics = tmp_path / "metrics"
    vmm = subprocess.Popen(
        [*VMM_COMMAND, "--config-file", str(config), "--no-api", "--metrics-path", str(metrics)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    try:
        assert vmm.stdout is not None and vmm.stdout.readline() == b"up\n"
        number = getattr(signal, stop_signal)
        vmm.send_signal(number)
        _, stderr = vmm.communicate(timeout=30)
    finally:
        if vmm.poll() is None:
            vmm.kill()
            vmm.communicate()
    assert vmm.returncode == 128 + number
    assert f"received {stop_signal}: stopping the VM" in stderr.decode() and b"Traceback" not in stderr
    assert metrics.read_text().startswith("{")


def test_python_dash_m_vmm(tmp_path: Path) -> None:
    import sys

    config = write_config(tmp_path, write_guest(tmp_path, serial_text("m\n") + out_al(0xF4, 0) + HANG))
    result = subprocess.run(
        [sys.executable, "-m", "vmm", "--config-file", str(config), "--no-api"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (1, "m\n")


def test_string_io_rep_outsb(tmp_path: Path) -> None:
    """`rep outsb` arrives as one exit with count > 1; every byte must reach the device."""
    message = b"rep outsb works\n"
    message_address = 0x10_0000 + 0x40
    code = (
        b"\xbe" + struct.pack("<I", message_address)  # mov esi, message
        + b"\xb9" + struct.pack("<I", len(message))  # mov ecx, len
        + b"\x66\xba\xf8\x03"  # mov dx, 0x3f8
        + b"\xf3\x6e"  # rep outsb
        + out_al(0xF4, 0)
        + HANG
    )
    code = code.ljust(0x40, b"\x90") + message
    result = run_vmm(write_config(tmp_path, write_guest(tmp_path, code)))
    assert (result.returncode, result.stdout) == (1, message.decode())


def test_mmio_reads_are_filled_in(tmp_path: Path) -> None:
    """A read of unclaimed MMIO returns zeros; the boot timer reads as zeros too."""
    code = (
        b"\xa0" + struct.pack("<I", 0xD000_0000)  # mov al, [0xd0000000]
        + b"\x8a\x1d" + struct.pack("<I", 0xC000_0000)  # mov bl, [0xc0000000]
        + b"\x00\xd8"  # add al, bl
        + b"\x04\x05"  # add al, 5
        + b"\xe6\xf4"  # out 0xf4, al
        + HANG
    )
    metrics = tmp_path / "metrics"
    result = run_vmm(write_config(tmp_path, write_guest(tmp_path, code)), "--boot-timer", "--metrics-path", str(metrics))
    assert result.returncode == (5 << 1) | 1
    assert json.loads(metrics.read_text())["vcpu"]["exit_mmio_read"] == 2


def test_terminal_on_stdin_runs_raw_and_is_restored(tmp_path: Path) -> None:
    """Typed keys go to the guest unechoed and uncooked; the host terminal comes back as it was."""
    import termios

    from support.vmm import VMM_COMMAND

    config = write_config(tmp_path, write_guest(tmp_path, serial_text("up\n") + ECHO_LINE + out_al(0xF4, 0) + HANG))
    controller, terminal = os.openpty()
    try:
        before = termios.tcgetattr(terminal)
        vmm = subprocess.Popen(
            [*VMM_COMMAND, "--config-file", str(config), "--no-api"], stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert vmm.stdout is not None and vmm.stdout.readline() == b"up\n"
        during = termios.tcgetattr(terminal)
        assert not during[3] & (termios.ECHO | termios.ICANON | termios.ISIG)
        os.write(controller, b"raw\n")
        stdout, stderr = vmm.communicate(timeout=30)
        assert (vmm.returncode, stdout) == (1, b"raw\n"), stderr
        assert termios.tcgetattr(terminal) == before
    finally:
        os.close(controller)
        os.close(terminal)
