"""A stock Debian cloud kernel (from rootfs-builder) booted by our VMM to the initramfs's
boot-timer write and a clean reboot, through both entries: the bzImage (64-bit boot
protocol) and the uncompressed vmlinux (ELF with the PVH note).

This needs hardware KVM: on PVM hosts a stock kernel runs emulated and stops with an
emulation failure long before user space (kvm-vmm-reference §8), so it skips there only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import is_pvm_host

pytestmark = [
    pytest.mark.kvm,
    pytest.mark.skipif(is_pvm_host(), reason="PVM host: stock kernels stop with emulation failures (see kvm-vmm-reference §8)"),
]

MARKER = "stockade-linux-boot: user space reached"
# reboot=k: `reboot -f` ends in the i8042 reset (0x64 <- 0xFE), which ends the VM with status 0.
CMDLINE = "console=ttyS0 reboot=k panic=1 pci=off nokaslr i8042.noaux i8042.nomux i8042.dumbkbd"
BOOT_TIME_LINE = re.compile(r"Guest-boot-time =\s+(\d+) us\s+(\d+) ms,\s+(\d+) CPU us\s+(\d+) CPU ms")


def tool(name: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    module = {"vmm": "vmm.cli", "rootfs-builder": "rootfs_builder.cli"}[name]
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def linux(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(kernel directory, initramfs): rootfs-builder caches the downloads between runs."""
    directory = tmp_path_factory.mktemp("linux")
    kernel_dir = directory / "kernel"
    initramfs = directory / "initramfs.img"
    for command in (
        [*tool("rootfs-builder"), "kernel", "--out", str(kernel_dir)],
        [*tool("rootfs-builder"), "initramfs", "--kernel", str(kernel_dir), "--out", str(initramfs),
         "--command", f"echo '{MARKER}'; reboot -f"],
    ):
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    return kernel_dir, initramfs


@pytest.mark.parametrize("image", ["vmlinuz", "vmlinux"])
def test_debian_kernel_boots_to_user_space(linux: tuple[Path, Path], tmp_path: Path, image: str) -> None:
    kernel_dir, initramfs = linux
    config = tmp_path / "vm.json"
    config.write_text(json.dumps({
        "boot-source": {"kernel_image_path": str(kernel_dir / image), "boot_args": CMDLINE, "initrd_path": str(initramfs)},
        "machine-config": {"vcpu_count": 2, "mem_size_mib": 512},
    }))
    log = tmp_path / "vmm.log"
    result = subprocess.run(
        [*tool("vmm"), "--config-file", str(config), "--no-api", "--boot-timer", "--log-path", str(log), "--level", "Info"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
    )
    log_text = (log.read_text() if log.exists() else "") + result.stderr
    serial = result.stdout
    release = (kernel_dir / "release").read_text().strip()
    assert f"Linux version {release}" in serial, serial[-4000:] + log_text[-2000:]
    assert "smpboot: Total of 2 processors activated" in serial or "Brought up 1 node, 2 CPUs" in serial
    assert "ACPI: RSDP 0x00000000000E0000" in serial
    assert MARKER in serial
    assert BOOT_TIME_LINE.search(log_text), log_text[-2000:]
    assert result.returncode == 0, log_text[-2000:]
