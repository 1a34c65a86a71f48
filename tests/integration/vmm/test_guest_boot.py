"""The freestanding test guests booted by our VMM (`vmm --config-file F --no-api`) with real
KVM_RUN: what each guest reports of its boot (e820, command line, initrd, ACPI CPUs and
devices) must match what the VMM was configured with, and its ways of ending (exit port,
i8042 reset) and the boot timer must behave as specified."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.guests import GuestReport, build_guest, parse_report

pytestmark = pytest.mark.kvm

MIB = 1 << 20
BOOT_TIME_LINE = re.compile(r"Guest-boot-time =\s+(\d+) us\s+(\d+) ms,\s+(\d+) CPU us\s+(\d+) CPU ms")
ENTRY_PROTOCOL = {"pvh": "pvh", "bzimage": "linux64", "elf64": "linux64"}


def vmm_command() -> list[str]:
    script = Path(sys.executable).with_name("vmm")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from vmm.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def vmm() -> list[str]:
    """Skip (with the VMM's own words) only while the VMM-core CLI cannot run at all."""
    command = vmm_command()
    probe = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"the vmm CLI cannot run yet: `vmm --version` -> {(probe.stderr or probe.stdout).strip()}")
    return command


@dataclass
class VmmRun:
    returncode: int
    report: GuestReport
    log: str


def boot(
    vmm: list[str],
    tmp_path: Path,
    kernel: Path,
    *,
    cmdline: str,
    memory_mib: int = 128,
    vcpus: int = 1,
    initrd: Path | None = None,
    flags: tuple[str, ...] = ("--boot-timer",),
) -> VmmRun:
    boot_source: dict[str, str] = {"kernel_image_path": str(kernel), "boot_args": cmdline}
    if initrd is not None:
        boot_source["initrd_path"] = str(initrd)
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({"boot-source": boot_source, "machine-config": {"vcpu_count": vcpus, "mem_size_mib": memory_mib}}))
    log = tmp_path / "vmm.log"
    result = subprocess.run(
        [*vmm, "--config-file", str(config), "--no-api", "--log-path", str(log), "--level", "Info", *flags],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log_text = log.read_text() if log.exists() else ""
    return VmmRun(result.returncode, parse_report(result.stdout), log_text + result.stderr)


@pytest.fixture
def initrd(tmp_path: Path) -> Path:
    path = tmp_path / "initrd.img"
    path.write_bytes(os.urandom(24 * 1024 + 123))  # small: guest code is slow under PVM
    return path


@pytest.mark.parametrize("image", ["pvh", "bzimage", "elf64"])
def test_guest_reads_its_boot_information(vmm: list[str], tmp_path: Path, initrd: Path, image: str) -> None:
    cmdline = "console=ttyS0 stockade.test=a,b=c exit_code=7 " + "x" * 300
    run = boot(vmm, tmp_path, build_guest("report", image), cmdline=cmdline, memory_mib=256, initrd=initrd)
    report = run.report
    assert report.done, report.serial
    assert run.returncode == (7 << 1) | 1
    assert report.values["protocol"] == ENTRY_PROTOCOL[image]
    assert report.values["boot_info"] == ("0x6000" if image == "pvh" else "0x7000")
    assert report.values["cmdline"] == cmdline
    assert report.memory_map == [(0, 0x9FC00, "ram"), (0x9FC00, 0x100000, "reserved"), (0x100000, 256 * MIB, "ram")]
    assert int(report.values["ram_total"]) == 256 * MIB - (0x100000 - 0x9FC00)
    data = initrd.read_bytes()
    record = report.records["initrd"]
    address = int(record["address"], 16)
    assert int(record["size"]) == len(data)
    assert int(record["crc32"], 16) == zlib.crc32(data)
    assert address % 4096 == 0 and address + len(data) <= 256 * MIB
    assert address == (256 * MIB - len(data)) // 4096 * 4096, "as high as possible in RAM"
    if image == "bzimage":
        assert report.records["setup"] == {"version": "0x20f", "loadflags": "0x81", "type_of_loader": "0xff"}
    if image == "elf64":
        assert report.records["setup"]["type_of_loader"] == "0xff"


@pytest.mark.parametrize("vcpus", [1, 2])
@pytest.mark.parametrize("image", ["pvh", "bzimage"])
def test_guest_finds_cpus_and_devices_through_acpi(vmm: list[str], tmp_path: Path, vcpus: int, image: str) -> None:
    run = boot(vmm, tmp_path, build_guest("report", image), cmdline="", vcpus=vcpus)
    report = run.report
    assert report.done, report.serial
    assert report.values["rsdp"].split() == ["0xe0000", "revision=2", "checksum=ok"]
    assert report.records["acpi"] == {"root": "XSDT", "checksum": "ok"}
    for signature in ("FACP", "APIC", "DSDT"):
        assert report.records[f"acpi {signature}"]["checksum"] == "ok"
    assert report.records["fadt"] == {"hw_reduced": "1"}
    assert int(report.values["cpus"]) == vcpus
    assert report.cpus == [(index, index) for index in range(vcpus)]
    assert report.records["ioapic"] == {"id": "0", "address": "0xfec00000", "gsi_base": "0"}
    assert report.values["lapic_address"] == "0xfee00000"
    hids = [hid for hid, _ in report.devices]
    assert ("PNP0501", {"io": "0x3f8", "irq": "4"}) in report.devices
    assert ("PNP0303", {"io": "0x60,0x64", "irq": "1"}) in report.devices
    for hid, resources in report.devices:
        if hid == "LNRO0005":  # virtio-mmio windows the VMM registered, if any
            base = int(resources["base"], 16)
            assert 0xC0001000 <= base < 0xFEC00000 and int(resources["size"], 16) == 0x1000
            assert 5 <= int(resources["gsi"]) <= 23
    assert int(report.values["acpi_devices"]) == len(hids)


def test_boot_timer_write_is_logged(vmm: list[str], tmp_path: Path) -> None:
    run = boot(vmm, tmp_path, build_guest("minimal", "pvh"), cmdline="")
    assert run.returncode == 1
    match = BOOT_TIME_LINE.search(run.log)
    assert match, run.log
    us, ms, cpu_us, cpu_ms = map(int, match.groups())
    assert ms == us // 1000 and cpu_ms == cpu_us // 1000 and us > 0


def test_no_boot_timer_line_without_the_flag(vmm: list[str], tmp_path: Path) -> None:
    run = boot(vmm, tmp_path, build_guest("minimal", "pvh"), cmdline="", flags=())
    assert run.returncode == 1
    assert not BOOT_TIME_LINE.search(run.log), run.log


@pytest.mark.parametrize("image", ["pvh", "bzimage"])
def test_i8042_reset_ends_the_vm_cleanly(vmm: list[str], tmp_path: Path, image: str) -> None:
    run = boot(vmm, tmp_path, build_guest("report", image), cmdline="finish=reset")
    assert run.report.done, run.report.serial
    assert run.returncode == 0, run.log


@pytest.mark.parametrize(("code", "status"), [(0, 1), (21, 43), (127, 255)])
def test_exit_port_status(vmm: list[str], tmp_path: Path, code: int, status: int) -> None:
    run = boot(vmm, tmp_path, build_guest("report", "elf64"), cmdline=f"exit_code={code}")
    assert run.report.done
    assert run.returncode == status


def test_pio_loop_guest_runs_to_its_count(vmm: list[str], tmp_path: Path) -> None:
    run = boot(vmm, tmp_path, build_guest("pioloop", "pvh"), cmdline="count=5000")
    assert "pio: writes=5000" in run.report.serial and run.report.done
    assert run.returncode == 1


@pytest.mark.parametrize(("image", "initrd_ceiling"), [("pvh", 0xC000_0000), ("bzimage", 0x8000_0000)])
def test_memory_above_the_mmio_hole(vmm: list[str], tmp_path: Path, initrd: Path, image: str, initrd_ceiling: int) -> None:
    """3.25 GiB: RAM to 3 GiB, the 32-bit MMIO hole, the last 256 MiB from 4 GiB. The initrd
    stays below the hole and below the kernel's initrd_addr_max (2 GiB for this bzImage)."""
    run = boot(vmm, tmp_path, build_guest("report", image), cmdline="", memory_mib=3328, initrd=initrd)
    report = run.report
    assert report.done, report.serial + run.log
    assert report.memory_map == [
        (0, 0x9FC00, "ram"),
        (0x9FC00, 0x100000, "reserved"),
        (0x100000, 0xC000_0000, "ram"),
        (1 << 32, (1 << 32) + 256 * MIB, "ram"),
    ]
    size = initrd.stat().st_size
    record = report.records["initrd"]
    assert int(record["address"], 16) == (initrd_ceiling - size) // 4096 * 4096
    assert int(record["crc32"], 16) == zlib.crc32(initrd.read_bytes())
