"""Helpers shared by every test package: privilege and KVM probes, C builds, reference paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
REFERENCE_DIR = PROJECT_ROOT.parent / "shared" / "reference"
FIRECRACKER_REFERENCE_DIR = REFERENCE_DIR / "firecracker"


def is_root() -> bool:
    return os.geteuid() == 0


def kvm_unusable_reason() -> str | None:
    """Why /dev/kvm cannot be used here, or None when it can."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as error:
        return f"/dev/kvm is not usable: {error.strerror}"
    os.close(fd)
    return None


def is_pvm_host() -> bool:
    """PVM (software virtualization) runs small freestanding guests but not stock kernels."""
    return Path("/sys/module/kvm_pvm").exists()


def compile_c(
    sources: Sequence[Path],
    output: Path,
    *,
    flags: Sequence[str] = ("-static", "-O2", "-Wall", "-Werror"),
) -> Path:
    """Build a C program with the system gcc; raise with gcc's own message on failure."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    command = ["gcc", *flags, "-o", str(output), *map(str, sources)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"gcc failed: {' '.join(command)}\n{result.stderr}")
    return output
