"""The interface the jailer and the VMM use: load_policy, shipped_policy_path, compile_category."""

from __future__ import annotations

from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import PolicyError, bpf, compiler, model
from support.policies import category, write_policy


def test_shipped_policy_path_finds_baseline() -> None:
    path = policies.shipped_policy_path("baseline")
    assert path.name == "baseline.json" and path.is_file()


def test_shipped_policy_path_unknown_name_is_one_clear_error() -> None:
    with pytest.raises(PolicyError, match=r"no shipped policy named 'nope' \(shipped: .*baseline"):
        policies.shipped_policy_path("nope")
    with pytest.raises(PolicyError):
        policies.shipped_policy_path("../policies/baseline")


def test_load_policy_missing_file_is_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy"):
        policies.load_policy(tmp_path / "absent.json")


def test_policy_error_is_a_value_error() -> None:
    # The jailer guards the toolchain with generic ValueError handlers.
    assert issubclass(PolicyError, ValueError)


def test_compile_category_is_deterministic_and_sock_filter_sized(tmp_path: Path) -> None:
    path = write_policy(tmp_path, {"t": category([{"syscall": "read"}, {"syscall": "ioctl", "args": [
        {"index": 1, "type": "dword", "op": "eq", "val": 0xAE80}]}])})
    first = compiler.compile_category(policies.load_policy(path), "t")
    second = compiler.compile_category(policies.load_policy(path), "t")
    assert first == second
    assert len(first) % 8 == 0 and 4 < len(first) // 8 < 40


def test_compile_category_unknown_category(tmp_path: Path) -> None:
    policy = policies.load_policy(write_policy(tmp_path, {"t": category([{"syscall": "read"}])}))
    with pytest.raises(PolicyError, match=r"unknown category 'vcpu' \(categories: t\)"):
        compiler.compile_category(policy, "vcpu")


def test_compile_policy_and_split_output(tmp_path: Path) -> None:
    policy = policies.load_policy(
        write_policy(tmp_path, {"a": category([{"syscall": "read"}]), "b": category([{"syscall": "write"}])})
    )
    programs = compiler.compile_policy(policy)
    assert list(programs) == ["a", "b"]
    paths = compiler.write_split_output(programs, tmp_path / "out")
    assert sorted(Path(p).name for p in paths) == ["a.bpf", "b.bpf"]
    assert (tmp_path / "out" / "b.bpf").read_bytes() == programs["b"]


BASELINE_EPERM = [
    "unshare", "setns", "mount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr", "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "add_key",
    "request_key", "keyctl", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "open_by_handle_at",
    "name_to_handle_at", "iopl", "ioperm", "acct", "swapon", "swapoff", "reboot",
]


@pytest.fixture(scope="module")
def baseline() -> tuple[model.Category, bytes]:
    policy = policies.load_policy(policies.shipped_policy_path("baseline"))
    return policy.category("baseline"), compiler.compile_category(policy, "baseline")


def _verdict(program: bytes, name: str, *args: int) -> model.Action:
    from jailer.policies import syscalls

    return bpf.emulate(program, bpf.SeccompData(syscalls.number(name), args=args)).action


@pytest.mark.parametrize("name", BASELINE_EPERM)
def test_baseline_denies_with_eperm(baseline: tuple[model.Category, bytes], name: str) -> None:
    assert _verdict(baseline[1], name) == model.Action("errno", 1)


def test_baseline_clone3_gets_enosys(baseline: tuple[model.Category, bytes]) -> None:
    assert _verdict(baseline[1], "clone3") == model.Action("errno", 38)


@pytest.mark.parametrize("value", [0, 0xFFFFFFFF, 0xFFFFFFFF_00000000, 0xFFFFFFFF_FFFFFFFF])
def test_baseline_allows_personality_default_and_query(baseline: tuple[model.Category, bytes], value: int) -> None:
    assert _verdict(baseline[1], "personality", value) == model.Action("allow")


@pytest.mark.parametrize("value", [1, 0x0040000, 0x8000000, 0xFFFFFFFE, 0x7FFFFFFF, 0x80000000, 0x00100008])
def test_baseline_denies_other_personalities(baseline: tuple[model.Category, bytes], value: int) -> None:
    assert _verdict(baseline[1], "personality", value) == model.Action("errno", 1)


@pytest.mark.parametrize("flag", [0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000])
def test_baseline_denies_clone_with_namespace_flags(baseline: tuple[model.Category, bytes], flag: int) -> None:
    thread_flags = 0x3D0F00  # what glibc passes for pthread_create
    assert _verdict(baseline[1], "clone", thread_flags | flag) == model.Action("errno", 1)
    assert _verdict(baseline[1], "clone", thread_flags) == model.Action("allow")


@pytest.mark.parametrize("name", ["read", "write", "execve", "mmap", "ioctl", "openat"])
def test_baseline_allows_everything_else(baseline: tuple[model.Category, bytes], name: str) -> None:
    assert _verdict(baseline[1], name) == model.Action("allow")


@pytest.mark.parametrize("nr", [0x40000000, 0x40000000 | 1, 0x40000000 | 59, 0x40000000 | 512, 0x7FFFFFFF])
def test_x32_syscalls_are_killed(baseline: tuple[model.Category, bytes], nr: int) -> None:
    result = bpf.emulate(baseline[1], bpf.SeccompData(nr))
    assert result.action == model.Action("kill_process")


def test_foreign_architecture_is_killed(baseline: tuple[model.Category, bytes]) -> None:
    i386 = 0x40000003
    assert bpf.emulate(baseline[1], bpf.SeccompData(0, arch=i386)).action == model.Action("kill_process")
