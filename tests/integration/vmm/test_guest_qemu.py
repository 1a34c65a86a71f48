"""The test guests checked against an independent VMM, QEMU's microvm (PVH entry): what
they report must match what QEMU was asked for. This keeps the guests honest on their own,
so a failure in test_guest_boot.py points at our VMM, not at the guest."""

from __future__ import annotations

import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from support.guests import build_guest, parse_report, qemu_command

pytestmark = pytest.mark.kvm

MIB = 1 << 20


@pytest.fixture(scope="module", autouse=True)
def qemu() -> None:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")


def run_qemu(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("vcpus", [1, 2])
def test_report_guest_under_qemu(tmp_path: Path, vcpus: int) -> None:
    initrd = tmp_path / "initrd"
    initrd.write_bytes(os.urandom(16 * 1024 + 5))
    cmdline = "console=ttyS0 exit_code=9 key=value"
    result = run_qemu(qemu_command(build_guest("report", "pvh"), memory_mib=128, vcpus=vcpus, cmdline=cmdline, initrd=initrd))
    report = parse_report(result.stdout)
    assert report.done, result.stdout + result.stderr
    assert result.returncode == (9 << 1) | 1
    assert report.values["protocol"] == "pvh"
    assert report.values["cmdline"] == cmdline
    ram = [(start, end) for start, end, kind in report.memory_map if kind == "ram"]
    assert (0, 0x9FC00) in ram and (0x100000, 128 * MIB) in ram
    record = report.records["initrd"]
    assert int(record["size"]) == 16 * 1024 + 5
    assert int(record["crc32"], 16) == zlib.crc32(initrd.read_bytes())
    assert int(report.values["cpus"]) == vcpus
    assert report.cpus == [(index, index) for index in range(vcpus)]
    assert ("PNP0501", {"io": "0x3f8", "irq": "4"}) in report.devices
    assert report.records["acpi"]["checksum"] == "ok"


def test_reset_guest_under_qemu() -> None:
    result = run_qemu(qemu_command(build_guest("report", "pvh"), memory_mib=64, cmdline="finish=reset", with_i8042=True))
    assert parse_report(result.stdout).done
    assert result.returncode == 0


def test_minimal_and_pio_loop_guests_under_qemu() -> None:
    assert run_qemu(qemu_command(build_guest("minimal", "pvh"), memory_mib=64)).returncode == 1
    result = run_qemu(qemu_command(build_guest("pioloop", "pvh"), memory_mib=64, cmdline="count=2000"))
    assert "pio: writes=2000" in result.stdout and result.returncode == 1


def test_violation_guest_without_the_device_reports_survival() -> None:
    """QEMU has no violation device: the guest must notice it is still running (exit 3),
    which is what makes a surviving VMM visible in the VMM-core violation tests."""
    result = run_qemu(qemu_command(build_guest("violation", "pvh"), memory_mib=64, cmdline="violation=vcpu"))
    assert "violation: still running after the request" in result.stdout
    assert result.returncode == (3 << 1) | 1
