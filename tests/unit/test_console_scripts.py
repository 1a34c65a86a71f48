"""Every console script the distribution declares is installed and answers --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = ["jailer", "jailer-policy", "vmm", "rootfs-builder"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_script_help(script: str) -> None:
    executable = Path(sys.executable).parent / script
    assert executable.exists(), f"{script} is not installed in {executable.parent}"
    result = subprocess.run([str(executable), "--help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), f"{script} --help printed nothing"
    assert "Traceback" not in result.stderr
