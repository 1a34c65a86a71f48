"""The cgroup tests of Firecracker's `test_jail.py` (reference §3.1), through the real `jailer`
CLI around the jail probe, adapted to this hybrid host.

Adaptation: Firecracker's harness runs each test on a pure v1 or a pure v2 host. Here the v1
controllers (cpu, cpuset, ...) are v1 mounts and the cgroup2 mount offers only `hugetlb`, so
every test runs with `--cgroup-version 1` and `2`: the cpu/cpuset values are served by the v1
hierarchies either way (Stockade's hybrid rule), and `hugetlb.*` values stand in for
Firecracker's v2 `cpu.weight*` checks on the unified mount (controller listed in the
`cgroup.controllers` of root, parent and jail and in the `cgroup.subtree_control` of root and
parent; jailed pid in `cgroup.procs`).

The probe is copied under a unique file name, so the default parent cgroup (the exec file name)
is this test's alone; every cgroup name starts with the test's unique prefix and
`cgroup_prefix` fails the test if one is left behind.

Membership is checked as "the jailed pid is in the cgroup", not "only it": the jailer's janitor
(forked after the cgroups are joined, see `jailer.janitor`) can still be a member for a moment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cgroups import (
    CGROUP_ROOT,
    UNIFIED_ROOT,
    cgroup_of,
    cgroup_prefix,  # noqa: F401 - fixture
    member_pids,
    node0_cpus,
    remove_cgroup_trees,
    require_v1_controllers,
    unified_controller_enabled,
    unified_controllers,
)
from support.jail import Jail, RunningProbe, error_text

pytestmark = pytest.mark.root

V1_CPU_VALUES = ["cpu.shares=2", "cpu.cfs_period_us=200000"]
V2_HUGETLB_VALUES = ["hugetlb.2MB.max=0", "hugetlb.1GB.max=0"]


@pytest.fixture
def own_jail(tmp_path: Path, cgroup_prefix: str, jail_probe: Path) -> Iterator[Jail]:
    """A jail whose exec file (hence default parent cgroup) is named `<prefix>-vmm`."""
    exec_file = tmp_path / f"{cgroup_prefix}-vmm"
    shutil.copy2(jail_probe, exec_file)
    base = tmp_path / "jails"
    base.mkdir()
    handle = Jail(probe=exec_file, base=base, jail_id=f"{cgroup_prefix}-id")
    try:
        yield handle
    finally:
        handle.cleanup()


def finish(jail: Jail, parent: str) -> None:
    """Kill the jail's probes, then remove the cgroups the run made (successful runs keep them,
    as Firecracker's jailer does): `<parent>` and below, in every hierarchy."""
    jail.cleanup()
    top = parent.split("/")[0]
    remove_cgroup_trees([path / top for path in CGROUP_ROOT.iterdir() if path.is_dir() and not path.is_symlink()])


def node_values() -> list[str]:
    return ["cpuset.mems=0", f"cpuset.cpus={node0_cpus()}"]


def check_v1(probe: RunningProbe, parent: str, jail_id: str, values: list[str]) -> None:
    """Each file holds its value, `tasks` is numeric and holds the jailed pid."""
    for value in values:
        file, setting = value.split("=")
        controller = file.split(".")[0]
        cgroup_dir = require_v1_controllers(controller)[controller] / parent / jail_id
        assert (cgroup_dir / file).read_text() == f"{setting}\n"
        tasks = (cgroup_dir / "tasks").read_text().split()
        assert tasks and all(task.isdigit() for task in tasks)
        assert probe.pid in member_pids(cgroup_dir, "tasks")
        assert cgroup_of(probe.pid, controller) == f"/{parent}/{jail_id}"


def check_v2(probe: RunningProbe, parent: str, jail_id: str, values: list[str]) -> None:
    jail_dir = UNIFIED_ROOT / parent / jail_id
    for value in values:
        file, setting = value.split("=")
        assert (jail_dir / file).read_text() == f"{setting}\n"
    assert probe.pid in member_pids(jail_dir, "cgroup.procs")
    assert cgroup_of(probe.pid, "") == f"/{parent}/{jail_id}"
    ancestors = [UNIFIED_ROOT, *(UNIFIED_ROOT / "/".join(parent.split("/")[:depth])
                                 for depth in range(1, parent.count("/") + 2))]
    for level in [*ancestors, jail_dir]:
        assert "hugetlb" in (level / "cgroup.controllers").read_text().split(), level
    for level in ancestors:
        assert "hugetlb" in (level / "cgroup.subtree_control").read_text().split(), level
    assert "hugetlb" not in (jail_dir / "cgroup.subtree_control").read_text().split()


def run_cgroup_test(jail: Jail, version: int, parent: str | None, v1_values: list[str]) -> None:
    """Start the probe with these values (+ hugetlb via cgroup2 where offered), check, kill."""
    require_v1_controllers(*{value.split(".")[0] for value in v1_values})
    expected_parent = parent or jail.probe.name
    flags = ["--cgroup-version", str(version), *(["--parent-cgroup", parent] if parent else [])]
    if "hugetlb" not in unified_controllers():
        try:
            probe = jail.start(*flags, *(arg for value in v1_values for arg in ("--cgroup", value)))
            check_v1(probe, expected_parent, jail.jail_id, v1_values)
        finally:
            finish(jail, expected_parent)
        return
    with unified_controller_enabled("hugetlb"):
        values = [*v1_values, *V2_HUGETLB_VALUES]
        try:
            probe = jail.start(*flags, *(arg for value in values for arg in ("--cgroup", value)))
            check_v1(probe, expected_parent, jail.jail_id, v1_values)
            check_v2(probe, expected_parent, jail.jail_id, V2_HUGETLB_VALUES)
        finally:
            finish(jail, expected_parent)


@pytest.mark.parametrize("version", [1, 2])
def test_cgroups(own_jail: Jail, version: int) -> None:
    run_cgroup_test(own_jail, version, None, [*V1_CPU_VALUES, *node_values()])


@pytest.mark.parametrize("version", [1, 2])
def test_cgroups_custom_parent(own_jail: Jail, cgroup_prefix: str, version: int) -> None:
    run_cgroup_test(own_jail, version, f"{cgroup_prefix}/group2", [*V1_CPU_VALUES, *node_values()])


@pytest.mark.parametrize("version", [1, 2])
def test_node_cgroups(own_jail: Jail, version: int) -> None:
    run_cgroup_test(own_jail, version, None, node_values())


@pytest.mark.parametrize("version", [1, 2])
def test_cgroups_without_numa(own_jail: Jail, version: int) -> None:
    run_cgroup_test(own_jail, version, None, V1_CPU_VALUES)


def test_v1_default_cgroups(own_jail: Jail) -> None:
    """No --cgroup-version: v1, and the parent cgroup is the exec file name."""
    cpu = require_v1_controllers("cpu")["cpu"]
    try:
        probe = own_jail.start("--cgroup", "cpu.shares=2")
        jail_dir = cpu / own_jail.probe.name / own_jail.jail_id
        assert (jail_dir / "cpu.shares").read_text() == "2\n"
        assert probe.pid in member_pids(jail_dir, "tasks")
    finally:
        finish(own_jail, own_jail.probe.name)


@pytest.mark.parametrize("parent_state", ["exists", "busy", "absent"])
def test_cgroups_parent_cgroup_but_no_cgroup(own_jail: Jail, cgroup_prefix: str, parent_state: str) -> None:
    """cgroup v2, no --cgroup: the jailer joins an existing parent and creates nothing.

    "busy" enables a domain controller (hugetlb here; Firecracker's test uses memory) in the
    parent's subtree_control, so cgroup2's no-internal-process rule refuses the move."""
    parent = UNIFIED_ROOT / cgroup_prefix
    flags = ("--cgroup-version", "2", "--parent-cgroup", cgroup_prefix)
    if parent_state == "absent":
        own_jail.run_probe(*flags)
        assert not parent.exists()
        return
    if parent_state == "exists":
        parent.mkdir()
        try:
            probe = own_jail.start(*flags)
            assert probe.pid in member_pids(parent, "cgroup.procs")
            assert cgroup_of(probe.pid, "") == f"/{cgroup_prefix}"
        finally:
            finish(own_jail, cgroup_prefix)
        return
    with unified_controller_enabled("hugetlb"):
        parent.mkdir()
        try:
            (parent / "cgroup.subtree_control").write_text("+hugetlb\n")
            result = own_jail.run(*flags)
            assert re.fullmatch(
                rf"Failed to move process to cgroup \({parent}\): Resource busy \(os error 16\)\.\n"
                rf"Hint: If you intended to create a child cgroup under {parent}, pass any --cgroup parameters\.\n",
                error_text(result),
            )
            assert list(own_jail.base.iterdir()) == []
        finally:
            parent.rmdir()


def strace_jailer(jail: Jail, tmp_path: Path, *flags: str) -> list[str]:
    """Run the jailer to completion under strace; return the traced write/mkdir lines."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    log = tmp_path / "strace.log"
    command = ["strace", "-f", "-y", "-qq", "-s", "64", "-e", "trace=write,mkdir,mkdirat", "-o", str(log),
               *jail.argv(*flags)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return log.read_text().splitlines()


def calls_on(lines: list[str], syscall: str, path: Path) -> list[str]:
    """Successful `syscall` lines naming `path` (the fd path strace -y prints, or the argument)."""
    pattern = re.compile(rf"^\d+\s+{syscall}\((?:AT_FDCWD, |\d+<)?\"?{re.escape(str(path))}[>\"]")
    return [line for line in lines if pattern.match(line) and not re.search(r"= -1 ", line)]


def test_cgroupsv2_written_only_once(own_jail: Jail, cgroup_prefix: str, tmp_path: Path) -> None:
    """Firecracker #2856: with 4 properties, exactly one mkdir of `<parent>/<id>` and one write of
    the pid to `<id>/cgroup.procs`. Adapted: the 4 properties are the hugetlb limits the cgroup2
    mount offers here, and the same is checked for the v1 hierarchies (one write to `tasks`)."""
    jail_id = own_jail.jail_id
    with unified_controller_enabled("hugetlb"):
        values = ["hugetlb.2MB.max=0", "hugetlb.1GB.max=0", "hugetlb.2MB.rsvd.max=0", "hugetlb.1GB.rsvd.max=0"]
        v1_values = [*V1_CPU_VALUES, *node_values()]
        hierarchies = require_v1_controllers("cpu", "cpuset")
        try:
            lines = strace_jailer(own_jail, tmp_path, "--cgroup-version", "2", "--parent-cgroup", cgroup_prefix,
                                  *(arg for value in [*values, *v1_values] for arg in ("--cgroup", value)))
            v2_jail = UNIFIED_ROOT / cgroup_prefix / jail_id
            assert len(calls_on(lines, "mkdir", v2_jail)) == 1, lines
            assert len(calls_on(lines, "write", v2_jail / "cgroup.procs")) == 1, lines
            for hierarchy in hierarchies.values():
                assert len(calls_on(lines, "mkdir", hierarchy / cgroup_prefix / jail_id)) == 1, lines
                assert len(calls_on(lines, "write", hierarchy / cgroup_prefix / jail_id / "tasks")) == 1, lines
        finally:
            finish(own_jail, cgroup_prefix)


def test_a_failed_v2_run_disables_the_controllers_it_enabled(own_jail: Jail, cgroup_prefix: str, tmp_path: Path) -> None:
    """The run enables `hugetlb` in the cgroup2 ancestors (root included) as the reference
    does; when it then fails, it disables it again where it had not been enabled before."""
    if "hugetlb" not in unified_controllers():
        pytest.skip(f"the cgroup2 mount at {UNIFIED_ROOT} does not offer hugetlb")
    root_control = UNIFIED_ROOT / "cgroup.subtree_control"
    if "hugetlb" in root_control.read_text().split():
        pytest.skip("hugetlb is already enabled at the cgroup2 root (not this test's to change)")
    not_executable = tmp_path / "data.bin"
    not_executable.write_bytes(b"\x7fELF not really")
    not_executable.chmod(0o644)
    result = own_jail.run("--cgroup-version", "2", "--parent-cgroup", cgroup_prefix, "--cgroup", "hugetlb.2MB.max=0",
                          exec_file=str(not_executable))
    assert error_text(result) == "Failed to exec into Firecracker: Permission denied (os error 13)\n"
    assert "hugetlb" not in root_control.read_text().split()
    assert not (UNIFIED_ROOT / cgroup_prefix).exists()
