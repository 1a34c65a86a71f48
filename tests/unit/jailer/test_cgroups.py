"""`jailer.cgroups` pure logic: validators, /proc/mounts discovery on pure v1, pure v2 and hybrid
hosts, planning, and the write sequences of `apply` on fake cgroup trees in tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jailer import cgroups
from jailer.cgroup_mounts import CgroupMounts, Hierarchy, unescape_mount_path
from jailer.errors import ErrorKind, JailerError
from support.cgroups import fake_mounts_text

PARENT_MESSAGE = "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'"
NO_HIERARCHY = "Hierarchy not found: No hierarchy found for this cgroup version."


def error_of(call, *args, **kwargs) -> JailerError:  # type: ignore[no-untyped-def]
    with pytest.raises(JailerError) as caught:
        call(*args, **kwargs)
    return caught.value


@pytest.fixture
def pure_v1(tmp_path: Path) -> CgroupMounts:
    return CgroupMounts.parse(fake_mounts_text({
        tmp_path / "cpu,cpuacct": "rw,nosuid,cpu,cpuacct",
        tmp_path / "cpuset": "rw,relatime,cpuset",
        tmp_path / "memory": "rw,memory",
        tmp_path / "systemd": "rw,xattr,name=systemd",
    }))


@pytest.fixture
def pure_v2(tmp_path: Path) -> CgroupMounts:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    return CgroupMounts.parse(fake_mounts_text(v2=root))


@pytest.fixture
def hybrid(tmp_path: Path) -> CgroupMounts:
    """This machine's layout: v1 controllers, plus a cgroup2 mount offering only hugetlb."""
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("hugetlb\n")
    return CgroupMounts.parse(fake_mounts_text(
        {tmp_path / "cpu": "rw,relatime,cpu", tmp_path / "cpuset": "rw,relatime,cpuset",
         tmp_path / "pids": "rw,relatime,pids"},
        v2=root,
    ))


# --- step 7: --cgroup-version ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "version"), [("1", 1), ("2", 2), ("+2", 2), ("0", 0), ("255", 255), ("002", 2)])
def test_cgroup_version_parses_like_rust_u8(text: str, version: int) -> None:
    assert cgroups.parse_cgroup_version(text) == version


@pytest.mark.parametrize("text", ["", "v2", "256", " 1", "1 ", "-1", "+", "++1", "\uff11", "1.0"])
def test_invalid_cgroup_version(text: str) -> None:
    error = error_of(cgroups.parse_cgroup_version, text)
    assert error.kind is ErrorKind.CGROUP_INVALID_VERSION
    assert str(error) == f"{text} is an invalid cgroup version specifier"


# --- step 6: --parent-cgroup -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("path", "normalised"),
    [("firecracker", "firecracker"), ("a/b", "a/b"), ("a/./b", "a/b"), ("a//b/", "a/b"), ("a/.", "a"),
     ("...", "..."), ("a/..b", "a/..b"), (".hidden", ".hidden")],
)
def test_parent_cgroup_accepted_like_rust_components(path: str, normalised: str) -> None:
    assert cgroups.validate_parent_cgroup(path) == normalised


@pytest.mark.parametrize("path", ["/abs", "//abs", ".", "./a", ".//a", "..", "a/..", "a/../b", "../a", "a/b/.."])
def test_parent_cgroup_rejected(path: str) -> None:
    error = error_of(cgroups.validate_parent_cgroup, path)
    assert error.kind is ErrorKind.CGROUP_INVALID_PARENT_PATH
    assert str(error) == PARENT_MESSAGE


# --- step 9: --cgroup values -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("argument", "parsed"),
    [("cpu.shares=2", ("cpu", "cpu.shares", "2")),
     ("memory.swap.high=max", ("memory", "memory.swap.high", "max")),
     ("cpuset.cpus=0-1", ("cpuset", "cpuset.cpus", "0-1"))],
)
def test_cgroup_value_parsed(argument: str, parsed: tuple[str, str, str]) -> None:
    assert cgroups.parse_cgroup_value(argument) == parsed


@pytest.mark.parametrize(
    ("argument", "message"),
    [("a=b=c", "Invalid format for cgroups: a=b=c"),
     ("cpu.shares=", "Invalid format for cgroups: cpu.shares="),
     ("cpu.shares", "Invalid format for cgroups: cpu.shares"),
     ("/cpu.shares=1", "Cgroup invalid file: /cpu.shares=1"),
     ("../cpu.shares=1", "Cgroup invalid file: ../cpu.shares=1"),
     ("./cpu.shares=1", "Cgroup invalid file: ./cpu.shares=1"),
     ("cpu/../x.y=1", "Cgroup invalid file: cpu/../x.y=1"),
     ("shares=1", "Cgroup invalid file: shares"),
     ("=1", "Cgroup invalid file: ")],
)
def test_cgroup_value_errors(argument: str, message: str) -> None:
    assert str(error_of(cgroups.parse_cgroup_value, argument)) == message


# --- discovery (§2.6.1) ------------------------------------------------------------------------

def test_pure_v1_discovery(pure_v1: CgroupMounts, tmp_path: Path) -> None:
    assert pure_v1.unified_root is None and not pure_v1.is_hybrid
    assert pure_v1.hierarchy_for("cpu", 1) == Hierarchy(1, str(tmp_path / "cpu,cpuacct"))
    assert pure_v1.hierarchy_for("cpuacct", 1) == Hierarchy(1, str(tmp_path / "cpu,cpuacct"))
    assert pure_v1.hierarchy_for("cpuset", 1) == Hierarchy(1, str(tmp_path / "cpuset"))
    assert str(error_of(pure_v1.hierarchy_for, "hugetlb", 1)) == "Controller hugetlb is unavailable"
    assert str(error_of(pure_v1.hierarchy_for, "cpu", 2)) == NO_HIERARCHY


def test_pure_v2_discovery(pure_v2: CgroupMounts, tmp_path: Path) -> None:
    assert pure_v2.v1_mounts == [] and not pure_v2.is_hybrid
    assert pure_v2.hierarchy_for("memory", 2) == Hierarchy(2, str(tmp_path / "unified"))
    assert str(error_of(pure_v2.hierarchy_for, "cgroup", 2)) == "Controller cgroup is unavailable"
    assert str(error_of(pure_v2.hierarchy_for, "rdma", 2)) == "Controller rdma is unavailable"
    assert str(error_of(pure_v2.hierarchy_for, "memory", 1)) == NO_HIERARCHY


def test_hybrid_serves_each_controller_from_the_hierarchy_that_has_it(hybrid: CgroupMounts, tmp_path: Path) -> None:
    unified = Hierarchy(2, str(tmp_path / "unified"))
    assert hybrid.is_hybrid
    for version in (1, 2):
        assert hybrid.hierarchy_for("cpu", version) == Hierarchy(1, str(tmp_path / "cpu"))
        assert hybrid.hierarchy_for("hugetlb", version) == unified
        assert str(error_of(hybrid.hierarchy_for, "memory", version)) == "Controller memory is unavailable"
        assert str(error_of(hybrid.hierarchy_for, "cgroup", version)) == "Controller cgroup is unavailable"
    assert str(error_of(hybrid.hierarchy_for, "cpu", 3)) == NO_HIERARCHY


def test_hybrid_prefers_the_requested_version(tmp_path: Path) -> None:
    """Were a controller offered by both (the kernel binds each to one hierarchy, so only a
    stale view could show it), the requested version's hierarchy wins."""
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu hugetlb\n")
    mounts = CgroupMounts.parse(fake_mounts_text({tmp_path / "cpu": "rw,cpu"}, v2=root))
    assert mounts.hierarchy_for("cpu", 1) == Hierarchy(1, str(tmp_path / "cpu"))
    assert mounts.hierarchy_for("cpu", 2) == Hierarchy(2, str(root))


def test_all_controllers_on_one_mount(tmp_path: Path) -> None:
    """Every v1 controller co-mounted on one hierarchy: one cgroup object serves them all, so
    the pid is attached with one write (the reference would write it once per controller)."""
    single = tmp_path / "all"
    mounts = CgroupMounts.parse(fake_mounts_text({single: "rw,cpu,cpuacct,cpuset,memory,pids"}))
    plan = cgroups.plan_cgroups(["cpu.shares=2", "memory.limit_in_bytes=1G", "cpuset.mems=0"], 1, "fc", "id", mounts)
    assert len(plan.objects) == 1
    assert plan.objects[0].location == str(single / "fc" / "id")
    assert [prop.file for prop in plan.objects[0].properties] == ["cpu.shares", "memory.limit_in_bytes", "cpuset.mems"]


def test_first_matching_mount_wins_and_odd_lines_are_skipped(tmp_path: Path) -> None:
    text = "\n".join([
        f"cgroup {tmp_path}/first cgroup rw,cpu 0 0",
        f"cgroup {tmp_path}/second cgroup rw,cpu,cpuacct 0 0",
        f"cgroup_root {tmp_path}/ignored cgroup rw,memory 0 0",  # device name outside [a-z2]*
        f"cgroup {tmp_path}/ignored2 cgroup rw,pids 1 0",
        f"cgroup2 {tmp_path}/u1 cgroup2 rw 0 0",
        f"cgroup2 {tmp_path}/u2 cgroup2 rw 0 0",
        f"none {tmp_path}/sp\\040ace cgroup rw,freezer 0 0",
    ])
    mounts = CgroupMounts.parse(text)
    assert mounts.v1_root("cpu") == f"{tmp_path}/first"
    assert mounts.v1_root("cpuacct") == f"{tmp_path}/second"
    assert mounts.v1_root("memory") is None and mounts.v1_root("pids") is None
    assert mounts.unified_root == f"{tmp_path}/u1"
    assert mounts.v1_root("freezer") == f"{tmp_path}/sp ace"


def test_unescape_mount_path() -> None:
    assert unescape_mount_path(r"/a\040b\011c\134d\012e") == "/a b\tc\\d\ne"
    assert unescape_mount_path(r"/a\04") == r"/a\04"


def test_no_mounts_at_all() -> None:
    mounts = CgroupMounts.parse(fake_mounts_text())
    for version in (1, 2):
        assert str(error_of(cgroups.plan_cgroups, ["cpu.shares=2"], version, "fc", "id", mounts)) == NO_HIERARCHY


# --- planning ----------------------------------------------------------------------------------

def test_hierarchy_is_checked_before_the_values(pure_v1: CgroupMounts) -> None:
    """The reference builds the cgroup builder first: a bad version beats a bad value."""
    assert str(error_of(cgroups.plan_cgroups, ["garbage"], 2, "fc", "id", pure_v1)) == NO_HIERARCHY
    assert str(error_of(cgroups.plan_cgroups, ["cpu.shares=1"], 3, "fc", "id", pure_v1)) == NO_HIERARCHY
    assert str(error_of(cgroups.plan_cgroups, ["garbage"], "1", "fc", "id", pure_v1)) == \
        "Invalid format for cgroups: garbage"


def test_values_are_checked_in_order(pure_v1: CgroupMounts) -> None:
    values = ["cpu.shares=1", "hugetlb.2MB.max=0", "garbage"]
    assert str(error_of(cgroups.plan_cgroups, values, 1, "fc", "id", pure_v1)) == "Controller hugetlb is unavailable"


def test_plan_touches_nothing(hybrid: CgroupMounts, tmp_path: Path) -> None:
    before = sorted(str(path) for path in tmp_path.rglob("*"))
    plan = cgroups.plan_cgroups(["cpu.shares=2", "hugetlb.2MB.max=0", "cpu.cfs_period_us=200000"], 1, "a/./b//",
                                "id", hybrid)
    assert sorted(str(path) for path in tmp_path.rglob("*")) == before
    assert [(obj.hierarchy.version, obj.location) for obj in plan.objects] == [
        (1, str(tmp_path / "cpu/a/b/id")), (2, str(tmp_path / "unified/a/b/id"))]
    assert [prop.file for prop in plan.objects[0].properties] == ["cpu.shares", "cpu.cfs_period_us"]


def test_unreadable_v2_controllers(tmp_path: Path) -> None:
    mounts = CgroupMounts.parse(fake_mounts_text(v2=tmp_path / "missing"))
    assert str(error_of(cgroups.plan_cgroups, ["memory.max=1"], 2, "fc", "id", mounts)) == (
        f"Failed to read file {tmp_path}/missing/cgroup.controllers into a string: "
        "No such file or directory (os error 2)")


# --- apply on fake trees -----------------------------------------------------------------------

def fake_v1_tree(root: Path, files: dict[str, str]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def test_v1_inherits_from_parents_recursively_then_writes_values(pure_v1: CgroupMounts, tmp_path: Path) -> None:
    cpuset = tmp_path / "cpuset"
    fake_v1_tree(cpuset, {"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n", "outer/cpuset.cpus": "",
                          "outer/group2/cpuset.cpus": "", "outer/cpuset.mems": "", "outer/group2/cpuset.mems": ""})
    plan = cgroups.plan_cgroups(["cpuset.cpus=1", "cpuset.mems=0"], 1, "outer/group2", "id", pure_v1)
    plan.apply(os.getpid())
    jail = cpuset / "outer/group2/id"
    assert plan.created_dirs == [str(jail)]
    assert (cpuset / "outer/cpuset.cpus").read_text() == "0-3\n"
    assert (cpuset / "outer/group2/cpuset.cpus").read_text() == "0-3\n"
    assert (cpuset / "outer/group2/cpuset.mems").read_text() == "0\n"
    assert (jail / "cpuset.cpus").read_text() == "1\n"
    assert (jail / "cpuset.mems").read_text() == "0\n"
    assert (jail / "tasks").read_text() == f"{os.getpid()}\n"


def test_v1_inherit_fails_when_every_ancestor_is_empty(pure_v1: CgroupMounts, tmp_path: Path) -> None:
    cpuset = tmp_path / "cpuset"
    fake_v1_tree(cpuset, {"cpuset.cpus": "\n", "fc/cpuset.cpus": "\n"})
    plan = cgroups.plan_cgroups(["cpuset.cpus=0"], 1, "fc", "id", pure_v1)
    error = error_of(plan.apply, os.getpid())
    assert str(error) == f"Failed to inherit cgroups configurations from file cpuset.cpus in path {cpuset}/fc/id"
    assert plan.created_dirs == [str(cpuset / "fc/id")]
    assert not (cpuset / "fc/id/tasks").exists()


def test_v1_missing_parent_file(pure_v1: CgroupMounts, tmp_path: Path) -> None:
    cpu = tmp_path / "cpu,cpuacct"
    cpu.mkdir()
    plan = cgroups.plan_cgroups(["cpu.weight=2"], 1, "fc", "id", pure_v1)
    assert str(error_of(plan.apply, os.getpid())) == (
        f"Failed to read file {cpu}/fc/cpu.weight into a string: No such file or directory (os error 2)")
    assert plan.created_dirs == [str(cpu / "fc"), str(cpu / "fc/id")]


def test_v1_all_values_before_any_attach(pure_v1: CgroupMounts, tmp_path: Path) -> None:
    """The second hierarchy's failing value stops the run before the first one's attach."""
    fake_v1_tree(tmp_path / "cpu,cpuacct", {"fc/cpu.shares": "1024\n"})
    fake_v1_tree(tmp_path / "memory", {"fc/x": ""})
    plan = cgroups.plan_cgroups(["cpu.shares=2", "memory.limit_in_bytes=1"], 1, "fc", "id", pure_v1)
    error_of(plan.apply, os.getpid())
    assert (tmp_path / "cpu,cpuacct/fc/id/cpu.shares").read_text() == "2\n"
    assert not (tmp_path / "cpu,cpuacct/fc/id/tasks").exists()
    assert plan.attachments == []


def test_v2_enables_controller_top_down_but_not_in_the_jail_cgroup(pure_v2: CgroupMounts, tmp_path: Path) -> None:
    root = tmp_path / "unified"
    (root / "cgroup.subtree_control").write_text("")
    plan = cgroups.plan_cgroups(["memory.max=1M", "memory.high=2M", "pids.max=10"], 2, "a/b", "id", pure_v2)
    enable_order: list[str] = []
    real_write = cgroups._write_file

    def spy(path: str, text: str) -> None:
        if path.endswith("cgroup.subtree_control"):
            enable_order.append(f"{os.path.relpath(path, root)}:{text.strip()}")
        real_write(path, text)

    cgroups._write_file = spy  # type: ignore[assignment]
    try:
        # cgroupfs would create subtree_control in each new directory; the fake tree needs help
        (root / "a/b").mkdir(parents=True)
        (root / "a/cgroup.subtree_control").write_text("")
        (root / "a/b/cgroup.subtree_control").write_text("")
        plan.apply(os.getpid())
    finally:
        cgroups._write_file = real_write  # type: ignore[assignment]
    assert enable_order == [
        "cgroup.subtree_control:+memory", "a/cgroup.subtree_control:+memory", "a/b/cgroup.subtree_control:+memory",
        "cgroup.subtree_control:+pids", "a/cgroup.subtree_control:+pids", "a/b/cgroup.subtree_control:+pids",
    ]
    jail = root / "a/b/id"
    assert not (jail / "cgroup.subtree_control").exists()
    assert (jail / "memory.max").read_text() == "1M\n" and (jail / "memory.high").read_text() == "2M\n"
    assert (jail / "cgroup.procs").read_text() == f"{os.getpid()}\n"
    assert plan.created_dirs == [str(jail)]


def test_v2_enabling_stops_where_subtree_control_is_missing(pure_v2: CgroupMounts, tmp_path: Path) -> None:
    """A parent without `cgroup.subtree_control` ends the upward walk (reference recursion)."""
    root = tmp_path / "unified"
    (root / "cgroup.subtree_control").write_text("")
    (root / "a/b").mkdir(parents=True)
    (root / "a/b/cgroup.subtree_control").write_text("")
    plan = cgroups.plan_cgroups(["memory.max=1"], 2, "a/b", "id", pure_v2)
    plan.apply(os.getpid())
    assert (root / "a/b/cgroup.subtree_control").read_text() == "+memory\n"
    assert (root / "cgroup.subtree_control").read_text() == ""


def test_move_to_parent_cgroup(pure_v2: CgroupMounts, tmp_path: Path) -> None:
    root = tmp_path / "unified"
    cgroups.move_to_parent_cgroup("absent", 1234, pure_v2)
    assert not (root / "absent").exists()
    (root / "present").mkdir()
    cgroups.move_to_parent_cgroup("present", 1234, pure_v2)
    assert (root / "present/cgroup.procs").read_text() == "1234"
    (root / "busy/cgroup.procs").mkdir(parents=True)
    error = error_of(cgroups.move_to_parent_cgroup, "busy", 1, pure_v2)
    assert error.kind is ErrorKind.CGROUP_MOVE
    assert str(error) == (
        f"Failed to move process to cgroup ({root}/busy): Is a directory (os error 21).\n"
        f"Hint: If you intended to create a child cgroup under {root}/busy, pass any --cgroup parameters.")


def test_move_to_parent_cgroup_without_cgroup2(pure_v1: CgroupMounts) -> None:
    assert str(error_of(cgroups.move_to_parent_cgroup, "fc", 1, pure_v1)) == NO_HIERARCHY


def test_undo_before_apply_and_twice_is_harmless(pure_v1: CgroupMounts, tmp_path: Path) -> None:
    plan = cgroups.plan_cgroups(["cpu.shares=2"], 1, "fc", "id", pure_v1)
    plan.undo()
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "cpu,cpuacct/cpu.shares").write_text("1024\n")
    plan.created_dirs.append(str(tmp_path / "cpu,cpuacct/made"))
    (tmp_path / "cpu,cpuacct/made").mkdir()
    plan.undo()
    plan.undo()
    assert not (tmp_path / "cpu,cpuacct/made").exists()
    assert (tmp_path / "cpu,cpuacct/cpu.shares").exists()


def test_undo_reports_what_it_could_not_remove(pure_v1: CgroupMounts, tmp_path: Path) -> None:
    busy = tmp_path / "cpu,cpuacct/busy"
    busy.mkdir(parents=True)
    (busy / "file").write_text("")
    plan = cgroups.plan_cgroups(["cpu.shares=2"], 1, "fc", "id", pure_v1)
    plan.created_dirs.append(str(busy))
    error = error_of(plan.undo)
    assert error.kind is ErrorKind.CGROUP_REMOVE
    assert str(error) == f"Failed to remove cgroup {busy}: Directory not empty (os error 39)"
    assert plan.created_dirs == [str(busy)]


# --- start-up cost -----------------------------------------------------------------------------

def test_importing_cgroups_stays_cheap() -> None:
    """The jailer imports `jailer.cgroups` on every run with --cgroup: it must not pull in
    cgroupspy (only `apply` of a v1 plan needs it), logging, dataclasses or typing."""
    import subprocess
    import sys

    code = ("import sys, jailer.cgroups; "
            "print(sorted(m for m in ('cgroupspy', 'logging', 'dataclasses', 'typing') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_v1_property_files_go_through_cgroupspy(pure_v1: CgroupMounts, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cgroupspy.controllers import Controller

    calls: list[tuple[str, str]] = []
    real_set = Controller.set_property

    def recording_set(self: Controller, filename: bytes, value: str) -> int:
        calls.append((os.fsdecode(self.filepath(filename)), value))
        return real_set(self, filename, value)

    monkeypatch.setattr(Controller, "set_property", recording_set)
    fake_v1_tree(tmp_path / "cpu,cpuacct", {"fc/cpu.shares": "1024\n"})
    cgroups.plan_cgroups(["cpu.shares=2"], 1, "fc", "id", pure_v1).apply(os.getpid())
    jail = tmp_path / "cpu,cpuacct/fc/id"
    assert calls == [(f"{jail}/cpu.shares", "1024\n"), (f"{jail}/cpu.shares", "2\n"),
                     (f"{jail}/tasks", f"{os.getpid()}\n")]


# --- properties --------------------------------------------------------------------------------

MOUNT_WORDS = st.sampled_from(["cgroup", "cgroup2", "none", "tmpfs", "/sys/fs/cgroup/x", "rw,cpu", "rw", "0", "1",
                               "\\040", "cpu,cpuacct", "name=systemd", ""])


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.lists(MOUNT_WORDS, max_size=7).map(" ".join), max_size=8),
       values=st.lists(st.text(alphabet="cpuseth.=/_0123456789 ", max_size=20), max_size=4),
       version=st.integers(min_value=0, max_value=3))
def test_planning_never_fails_without_a_jailer_error(lines: list[str], values: list[str], version: int) -> None:
    """Any /proc/mounts text and any --cgroup values: a plan or a clean JailerError, nothing else."""
    mounts = CgroupMounts.parse("\n".join(lines))
    try:
        plan = cgroups.plan_cgroups(values, version, "fc", "id", mounts)
    except JailerError:
        return
    assert sum(len(obj.properties) for obj in plan.objects) == len(values)
    for cgroup in plan.objects:
        assert cgroup.location == os.path.join(cgroup.hierarchy.root, "fc", "id")

