"""The jail and `jailer.cgroups` together: membership seen from the host, fail-closed clean-up.

The cgroup behaviour itself (values, inheritance, v1/v2/hybrid) is tested in `test_cgroups*.py`;
these tests skip, naming the missing module, until `jailer.cgroups` exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.jail import Jail, error_text

pytestmark = pytest.mark.root

CPU_HIERARCHY = Path("/sys/fs/cgroup/cpu")


@pytest.fixture
def cgroups_module() -> None:
    try:
        from jailer import cgroups  # noqa: F401
    except ImportError as error:
        pytest.skip(f"jailer.cgroups is missing: {error}")
    if not (CPU_HIERARCHY / "cpu.shares").exists():
        pytest.skip("no cgroup v1 cpu hierarchy at /sys/fs/cgroup/cpu")


@pytest.fixture
def parent(jail: Jail, cgroups_module: None, unique_name: str) -> Iterator[str]:
    """A parent cgroup name no one else uses; whatever the run left of it is removed."""
    name = f"{unique_name}-parent"
    yield name
    for probe in jail.started:
        probe.kill()
    for directory in (CPU_HIERARCHY / name / jail.jail_id, CPU_HIERARCHY / name):
        if directory.exists():
            directory.rmdir()


def test_probe_runs_inside_its_cgroup(jail: Jail, parent: str) -> None:
    probe = jail.start("--cgroup", "cpu.shares=200", "--parent-cgroup", parent)
    memberships = Path(f"/proc/{probe.pid}/cgroup").read_text().splitlines()
    cpu_line = next(line for line in memberships if "cpu" in line.split(":")[1].split(","))
    assert cpu_line.split(":")[2] == f"/{parent}/{jail.jail_id}"
    assert (CPU_HIERARCHY / parent / jail.jail_id / "cpu.shares").read_text() == "200\n"


def test_unwritable_cgroup_value_removes_cgroups_and_jail(jail: Jail, parent: str) -> None:
    """A value the kernel refuses fails the run after the cgroup directories were created."""
    result = jail.run("--cgroup", "cpu.shares=not-a-number", "--parent-cgroup", parent)
    assert error_text(result) == (
        f"Failed to write to {CPU_HIERARCHY / parent / jail.jail_id / 'cpu.shares'}: "
        "Invalid argument (os error 22)\n"
    )
    assert not (CPU_HIERARCHY / parent).exists()
    assert list(jail.base.iterdir()) == []


def test_failure_after_attach_still_removes_cgroups(jail: Jail, parent: str) -> None:
    """mknod fails after the jailer joined its cgroup: the clean-up must leave and remove it."""
    (jail.chroot_dir / "dev").mkdir(parents=True)
    (jail.chroot_dir / "dev/kvm").write_text("")
    result = jail.run("--cgroup", "cpu.shares=200", "--parent-cgroup", parent)
    assert error_text(result) == "Failed to create /dev/kvm via mknod inside the jail: File exists (os error 17)\n"
    assert not (CPU_HIERARCHY / parent).exists()
