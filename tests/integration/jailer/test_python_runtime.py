"""`--python-runtime`: the jail gets exactly what our Python VMM needs to run, read-only.

Skips, naming the missing module, until `jailer.runtime` exists.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from support.jail import Jail

pytestmark = pytest.mark.root

SCRIPT = """\
#!{interpreter}
import ctypes, json, sys
import jailer.cli, prctl
libseccomp = ctypes.CDLL("libseccomp.so.2")  # what the VMM's filters are compiled with
print(json.dumps({{"argv": sys.argv[1:], "prefix": sys.prefix, "jailer": jailer.cli.__file__,
                  "seccomp_api": libseccomp.seccomp_api_get()}}))
"""


@pytest.fixture
def runtime_binds() -> list[tuple[Path, Path]]:
    try:
        from jailer.runtime import python_runtime_binds
    except ImportError as error:
        pytest.skip(f"jailer.runtime is missing: {error}")
    return python_runtime_binds()


def test_python_program_runs_in_the_jail(jail: Jail, tmp_path: Path, runtime_binds: list[tuple[Path, Path]]) -> None:
    script = tmp_path / "vmm-like.py"
    script.write_text(SCRIPT.format(interpreter=sys.executable))
    script.chmod(0o755)
    result = jail.run("--python-runtime", exec_file=str(script))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["argv"][:2] == ["--id", jail.jail_id]
    assert report["seccomp_api"] >= 1


def test_runtime_binds_are_read_only_nosuid_nodev(jail: Jail, runtime_binds: list[tuple[Path, Path]]) -> None:
    probe = jail.start("--python-runtime")
    mounts = {}
    for line in Path(f"/proc/{probe.pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        mounts[fields[4]] = set(fields[5].split(","))
    for _, target in runtime_binds:
        assert {"ro", "nosuid", "nodev"} <= mounts[str(target)], target
