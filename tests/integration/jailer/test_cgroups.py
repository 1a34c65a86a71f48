"""`jailer.cgroups` on this real hybrid host: plans applied to a forked child (the test runner
itself is never moved), checked from the host side, and undone.

Every cgroup is named after the test's unique prefix; `cgroup_prefix` fails the test if any
is left under /sys/fs/cgroup afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jailer import cgroups
from jailer.errors import ErrorKind, JailerError
from support.cgroups import (
    CGROUP_ROOT,
    UNIFIED_ROOT,
    blocked_child,
    cgroup_of,
    cgroup_prefix,  # noqa: F401 - fixture
    hugetlb_files,
    member_pids,
    remove_cgroup_trees,
    require_v1_controllers,
    unified_controller_enabled,
)

pytestmark = pytest.mark.root

JAIL_ID = "jail"


def test_v1_values_and_inheritance_down_a_custom_parent(cgroup_prefix: str) -> None:
    hierarchies = require_v1_controllers("cpu", "cpuset", "memory", "pids")
    root_cpus = (hierarchies["cpuset"] / "cpuset.cpus").read_text().strip()
    values = ["cpu.shares=2", "cpu.cfs_period_us=200000", "cpuset.mems=0", f"cpuset.cpus={root_cpus}",
              "memory.limit_in_bytes=268435456", "pids.max=64"]
    plan = cgroups.plan_cgroups(values, 1, f"{cgroup_prefix}/group2", JAIL_ID)
    with blocked_child() as child:
        plan.apply(child.pid)
        jail = {name: path / cgroup_prefix / "group2" / JAIL_ID for name, path in hierarchies.items()}
        assert (jail["cpu"] / "cpu.shares").read_text() == "2\n"
        assert (jail["cpu"] / "cpu.cfs_period_us").read_text() == "200000\n"
        assert (jail["cpuset"] / "cpuset.mems").read_text() == "0\n"
        assert (jail["cpuset"] / "cpuset.cpus").read_text() == f"{root_cpus}\n"
        assert (jail["memory"] / "memory.limit_in_bytes").read_text() == "268435456\n"
        assert (jail["pids"] / "pids.max").read_text() == "64\n"
        # cpuset values reached every new level: the kernel refuses tasks in a cpuset without them
        for level in (hierarchies["cpuset"] / cgroup_prefix, hierarchies["cpuset"] / cgroup_prefix / "group2"):
            assert (level / "cpuset.cpus").read_text() == f"{root_cpus}\n"
            assert (level / "cpuset.mems").read_text() == "0\n"
        for name, directory in jail.items():
            assert member_pids(directory, "tasks") == {child.pid}
            assert cgroup_of(child.pid, name) == f"/{cgroup_prefix}/group2/{JAIL_ID}"
        assert len(plan.created_dirs) == 3 * len(hierarchies)
        plan.undo()
        assert cgroup_of(child.pid, "cpu") == "/"
    assert not any((path / cgroup_prefix).exists() for path in hierarchies.values())


def test_undo_moves_the_process_back_where_it_was(cgroup_prefix: str) -> None:
    """The child starts in a cgroup of its own (not the root): undo returns it exactly there."""
    cpu = require_v1_controllers("cpu")["cpu"]
    home = cpu / f"{cgroup_prefix}-home"
    home.mkdir()
    try:
        with blocked_child() as child:
            (home / "tasks").write_text(f"{child.pid}\n")
            plan = cgroups.plan_cgroups(["cpu.shares=3"], 1, cgroup_prefix, JAIL_ID)
            plan.apply(child.pid)
            assert cgroup_of(child.pid, "cpu") == f"/{cgroup_prefix}/{JAIL_ID}"
            plan.undo()
            assert cgroup_of(child.pid, "cpu") == f"/{cgroup_prefix}-home"
            assert member_pids(home, "tasks") == {child.pid}
    finally:
        home.rmdir()


def test_pre_existing_parent_is_left_alone(cgroup_prefix: str) -> None:
    cpu = require_v1_controllers("cpu")["cpu"]
    parent = cpu / cgroup_prefix
    parent.mkdir()
    try:
        (parent / "cpu.shares").write_text("512\n")
        plan = cgroups.plan_cgroups(["cpu.shares=2"], 1, cgroup_prefix, JAIL_ID)
        with blocked_child() as child:
            plan.apply(child.pid)
            assert plan.created_dirs == [str(parent / JAIL_ID)]
            assert (parent / JAIL_ID / "cpu.shares").read_text() == "2\n"
            plan.undo()
            plan.undo()
        assert not (parent / JAIL_ID).exists()
        assert (parent / "cpu.shares").read_text() == "512\n"
    finally:
        parent.rmdir()


def test_a_refused_value_leaves_nothing_after_undo(cgroup_prefix: str) -> None:
    cpu = require_v1_controllers("cpu")["cpu"]
    plan = cgroups.plan_cgroups(["cpu.shares=2", "cpu.cfs_quota_us=nonsense"], 1, f"{cgroup_prefix}/a", JAIL_ID)
    with blocked_child() as child:
        with pytest.raises(JailerError) as caught:
            plan.apply(child.pid)
        assert str(caught.value) == (
            f"Failed to write to {cpu}/{cgroup_prefix}/a/{JAIL_ID}/cpu.cfs_quota_us: Invalid argument (os error 22)")
        assert cgroup_of(child.pid, "cpu") == "/"
        plan.undo()
    assert not (cpu / cgroup_prefix).exists()


def test_cpuset_without_cpus_cannot_take_a_task(cgroup_prefix: str) -> None:
    """Only the files given are inherited (reference behaviour): `cpuset.mems` alone leaves
    `cpuset.cpus` empty and the kernel refuses the attach; undo still removes everything."""
    cpuset = require_v1_controllers("cpuset")["cpuset"]
    plan = cgroups.plan_cgroups(["cpuset.mems=0"], 1, cgroup_prefix, JAIL_ID)
    with blocked_child() as child:
        with pytest.raises(JailerError) as caught:
            plan.apply(child.pid)
        assert str(caught.value) == (
            f"Failed to write to {cpuset}/{cgroup_prefix}/{JAIL_ID}/tasks: No space left on device (os error 28)")
        plan.undo()
    assert not (cpuset / cgroup_prefix).exists()


def test_undo_cannot_remove_a_cgroup_another_process_joined(cgroup_prefix: str) -> None:
    """Undo moves only this run's processes: a stranger inside keeps the cgroup (reported)."""
    cpu = require_v1_controllers("cpu")["cpu"]
    plan = cgroups.plan_cgroups(["cpu.shares=2"], 1, cgroup_prefix, JAIL_ID)
    jail = cpu / cgroup_prefix / JAIL_ID
    with blocked_child() as ours, blocked_child() as stranger:
        plan.apply(ours.pid)
        (jail / "tasks").write_text(f"{stranger.pid}\n")
        with pytest.raises(JailerError) as caught:
            plan.undo()
        assert caught.value.kind is ErrorKind.CGROUP_REMOVE
        assert str(caught.value) == f"Failed to remove cgroup {jail}: Resource busy (os error 16)"
        assert cgroup_of(ours.pid, "cpu") == "/"
        assert member_pids(jail, "tasks") == {stranger.pid}
        (cpu / "tasks").write_text(f"{stranger.pid}\n")
        plan.undo()
    assert not (cpu / cgroup_prefix).exists()


def test_v2_hugetlb_values_on_the_unified_mount(cgroup_prefix: str) -> None:
    with unified_controller_enabled("hugetlb") as root:
        page_limits = ["hugetlb.2MB.max=0", "hugetlb.1GB.max=0"]
        plan = cgroups.plan_cgroups(page_limits, 2, f"{cgroup_prefix}/group2", JAIL_ID)
        jail = root / cgroup_prefix / "group2" / JAIL_ID
        try:
            with blocked_child() as child:
                plan.apply(child.pid)
                assert {"hugetlb.2MB.max", "hugetlb.1GB.max"} <= set(hugetlb_files(jail))
                assert (jail / "hugetlb.2MB.max").read_text() == "0\n"
                assert member_pids(jail, "cgroup.procs") == {child.pid}
                assert cgroup_of(child.pid, "") == f"/{cgroup_prefix}/group2/{JAIL_ID}"
                for level in (root, root / cgroup_prefix, root / cgroup_prefix / "group2"):
                    assert "hugetlb" in (level / "cgroup.subtree_control").read_text().split()
                for level in (root / cgroup_prefix, root / cgroup_prefix / "group2", jail):
                    assert "hugetlb" in (level / "cgroup.controllers").read_text().split()
                assert (jail / "cgroup.subtree_control").read_text().split() == []
                plan.undo()
                assert cgroup_of(child.pid, "") == "/"
        finally:
            remove_cgroup_trees([root / cgroup_prefix])
        assert not (root / cgroup_prefix).exists()


def test_hybrid_one_run_serves_v1_and_v2_controllers(cgroup_prefix: str) -> None:
    """On this host `cpu` is a v1 controller and `hugetlb` a cgroup2 one: with either
    --cgroup-version, one plan puts the process into both, each by its own version's rules."""
    cpu = require_v1_controllers("cpu")["cpu"]
    with unified_controller_enabled("hugetlb") as root:
        for version in (1, 2):
            plan = cgroups.plan_cgroups(["hugetlb.2MB.max=0", "cpu.shares=7"], version, cgroup_prefix, JAIL_ID)
            assert [obj.hierarchy.version for obj in plan.objects] == [2, 1]
            try:
                with blocked_child() as child:
                    plan.apply(child.pid)
                    assert (cpu / cgroup_prefix / JAIL_ID / "cpu.shares").read_text() == "7\n"
                    assert (root / cgroup_prefix / JAIL_ID / "hugetlb.2MB.max").read_text() == "0\n"
                    assert cgroup_of(child.pid, "cpu") == f"/{cgroup_prefix}/{JAIL_ID}"
                    assert cgroup_of(child.pid, "") == f"/{cgroup_prefix}/{JAIL_ID}"
                    plan.undo()
            finally:
                remove_cgroup_trees([root / cgroup_prefix, cpu / cgroup_prefix])
            assert not (cpu / cgroup_prefix).exists() and not (root / cgroup_prefix).exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [("rdma.max=max", "Controller rdma is unavailable"),
     ("cgroup.max.descendants=1", "Controller cgroup is unavailable"),
     ("misc.max=1", "Controller misc is unavailable")],
)
@pytest.mark.parametrize("version", [1, 2])
def test_controller_no_hierarchy_has(value: str, message: str, version: int) -> None:
    controller = value.split(".")[0]
    if controller in (UNIFIED_ROOT / "cgroup.controllers").read_text().split() or (CGROUP_ROOT / controller).exists():
        pytest.skip(f"{controller} is available on this host")
    with pytest.raises(JailerError) as caught:
        cgroups.plan_cgroups([value], version, "fc", JAIL_ID)
    assert str(caught.value) == message


def test_move_to_parent_cgroup_on_the_unified_mount(cgroup_prefix: str) -> None:
    parent = UNIFIED_ROOT / cgroup_prefix
    with blocked_child() as child:
        cgroups.move_to_parent_cgroup(cgroup_prefix, child.pid)
        assert not parent.exists()
        assert cgroup_of(child.pid, "") == "/"
        parent.mkdir()
        try:
            cgroups.move_to_parent_cgroup(cgroup_prefix, child.pid)
            assert member_pids(parent, "cgroup.procs") == {child.pid}
            (UNIFIED_ROOT / "cgroup.procs").write_text(f"{child.pid}\n")
        finally:
            parent.rmdir()


def test_move_to_a_parent_with_a_domain_controller_enabled_is_busy(cgroup_prefix: str) -> None:
    """cgroup2's "no internal processes" rule: a parent that delegates hugetlb to children
    cannot take a process itself."""
    with unified_controller_enabled("hugetlb") as root:
        parent = root / cgroup_prefix
        parent.mkdir()
        try:
            (parent / "cgroup.subtree_control").write_text("+hugetlb\n")
            with blocked_child() as child, pytest.raises(JailerError) as caught:
                cgroups.move_to_parent_cgroup(cgroup_prefix, child.pid)
            assert str(caught.value) == (
                f"Failed to move process to cgroup ({parent}): Resource busy (os error 16).\n"
                f"Hint: If you intended to create a child cgroup under {parent}, pass any --cgroup parameters.")
        finally:
            parent.rmdir()


def test_runner_itself_never_moved(cgroup_prefix: str) -> None:
    """The tests above attach children only: this process is still where it started."""
    before = Path("/proc/self/cgroup").read_text()
    plan = cgroups.plan_cgroups(["cpu.shares=2"], 1, cgroup_prefix, JAIL_ID)
    with blocked_child() as child:
        plan.apply(child.pid)
        assert Path("/proc/self/cgroup").read_text() == before
        assert os.getpid() not in member_pids(CGROUP_ROOT / "cpu" / cgroup_prefix / JAIL_ID, "tasks")
        plan.undo()
