"""Fail closed: a validation failure creates nothing; a later failure removes what the run made."""

from __future__ import annotations

import os
import shutil
import subprocess
import stat
from pathlib import Path

import pytest

from support.jail import Jail, error_text, tree_snapshot

pytestmark = pytest.mark.root


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--uid", "x"], "Failed to parse arguments: The argument 'uid' was provided more than once.\n"),
        (["--resource-limit", "no-file=abc"],
         "Invalid limit value for resource: abc: invalid digit found in string\n"),
        (["--resource-limit", "stack=10"], "Invalid resource argument: stack\n"),
        (["--parent-cgroup", "../escape"],
         "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'\n"),
        (["--cgroup-version", "v2"], "v2 is an invalid cgroup version specifier\n"),
        (["--ro-bind", "/nonexistent-source"],
         "Invalid bind mount /nonexistent-source: source /nonexistent-source: "
         "No such file or directory (os error 2)\n"),
        (["--bind", "/tmp:relative"], "Invalid bind mount /tmp:relative: destination relative is not an absolute path\n"),
        (["--bind", "/tmp:/a/../b"], "Invalid bind mount /tmp:/a/../b: destination /a/../b contains '..'\n"),
        (["--bind", "/tmp:/dev"], "Invalid bind mount /tmp:/dev: destination /dev is managed by the jailer\n"),
        (["--seccomp-policy", "/nonexistent.json"], None),
    ],
)
def test_validation_failure_leaves_nothing(jail: Jail, flags: list[str], message: str | None) -> None:
    before = tree_snapshot(jail.base)
    result = jail.run(*flags)
    text = error_text(result)
    if message is not None:
        assert text == message
    assert text.count("\n") == 1
    assert tree_snapshot(jail.base) == before == {}


def test_mknod_onto_existing_node_removes_what_the_run_created(jail: Jail) -> None:
    """A pre-existing /dev/kvm in the jail makes mknod fail: everything this run made goes."""
    (jail.chroot_dir / "dev").mkdir(parents=True)
    (jail.chroot_dir / "dev/kvm").write_text("not a device")
    before = tree_snapshot(jail.base)

    result = jail.run()

    assert error_text(result) == "Failed to create /dev/kvm via mknod inside the jail: File exists (os error 17)\n"
    # Pre-existing entries remain, with their modes and owners restored.
    assert tree_snapshot(jail.base) == before
    assert (jail.chroot_dir / "dev/kvm").read_text() == "not a device"


def test_failure_after_creation_removes_the_whole_new_tree(jail: Jail, tmp_path: Path) -> None:
    """A non-executable exec file is caught before the privilege drop and everything is removed."""
    not_executable = tmp_path / "data.bin"
    not_executable.write_bytes(b"\x7fELF not really")
    not_executable.chmod(0o644)

    result = jail.run(exec_file=str(not_executable))

    assert error_text(result) == "Failed to exec into Firecracker: Permission denied (os error 13)\n"
    assert list(jail.base.iterdir()) == []


def test_foreign_architecture_elf_is_caught_and_undone(jail: Jail, tmp_path: Path) -> None:
    """An aarch64 binary on x86-64 would fail execve with ENOEXEC after the privilege drop."""
    foreign = tmp_path / "firecracker-aarch64"
    header = bytearray(jail.probe.read_bytes()[:4096])
    header[0x12:0x14] = (183).to_bytes(2, "little")  # EM_AARCH64
    foreign.write_bytes(bytes(header))
    foreign.chmod(0o755)

    result = jail.run(exec_file=str(foreign))

    assert error_text(result) == (
        "Failed to exec into Firecracker: Exec format error (os error 8): ELF machine 183 is not x86-64 (62)\n"
    )
    assert list(jail.base.iterdir()) == []


def test_file_neither_elf_nor_script_is_caught_and_undone(jail: Jail, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"garbage")
    garbage.chmod(0o755)
    result = jail.run(exec_file=str(garbage))
    assert error_text(result) == (
        "Failed to exec into Firecracker: Exec format error (os error 8): neither an ELF file nor a #! script\n"
    )
    assert list(jail.base.iterdir()) == []


def test_missing_elf_interpreter_in_the_jail_is_caught_and_undone(jail: Jail, tmp_path: Path) -> None:
    dynamic = tmp_path / "dynamic-true"
    shutil.copy(shutil.which("true") or "/bin/true", dynamic)
    from jailer.preflight import interpreter_of

    interpreter = interpreter_of(str(dynamic))
    if interpreter is None:
        pytest.skip("the system's true(1) is statically linked")

    result = jail.run(exec_file=str(dynamic))

    assert error_text(result) == (
        f"Failed to exec into Firecracker: No such file or directory (os error 2): "
        f"interpreter {interpreter} is not inside the jail\n"
    )
    assert list(jail.base.iterdir()) == []


def test_existing_pid_file_is_an_error_and_run_is_undone(jail: Jail) -> None:
    jail.chroot_dir.mkdir(parents=True)
    jail.pid_file.write_text("4242")
    result = jail.run("--new-pid-ns")
    assert error_text(result) == f"Failed to open file /{jail.probe.name}.pid: File exists (os error 17)\n"
    assert sorted(path.name for path in jail.chroot_dir.iterdir()) == [f"{jail.probe.name}.pid"]
    assert jail.pid_file.read_text() == "4242"


def test_bind_mount_points_are_removed_on_failure(jail: Jail, tmp_path: Path) -> None:
    source_dir = tmp_path / "kernel-dir"
    source_dir.mkdir()
    source_file = tmp_path / "rootfs.img"
    source_file.write_bytes(b"x")
    (jail.chroot_dir / "dev").mkdir(parents=True)
    os.mknod(jail.chroot_dir / "dev/kvm", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    before = tree_snapshot(jail.base)

    result = jail.run("--ro-bind", f"{source_dir}:/boot/kernel", "--bind", f"{source_file}:/images/rootfs.img")

    assert "via mknod inside the jail: File exists" in error_text(result)
    assert tree_snapshot(jail.base) == before
    assert source_file.read_bytes() == b"x"


@pytest.mark.parametrize("new_pid_ns", [False, True], ids=["same-pid-ns", "new-pid-ns"])
def test_exec_failure_after_privilege_drop_is_undone_by_the_janitor(jail: Jail, new_pid_ns: bool) -> None:
    """ETXTBSY cannot be foreseen: the exec fails after the uid switch, when only the janitor
    (root, host mount namespace) can still remove what the run created."""
    jail.chroot_dir.mkdir(parents=True)
    destination = jail.chroot_dir / jail.probe.name
    destination.write_bytes(b"")
    destination.chmod(0o755)
    before = {path: entry for path, entry in tree_snapshot(jail.base).items()}
    writer = os.open(destination, os.O_WRONLY)  # keeps the copied binary busy for execve
    try:
        result = jail.run(*(["--new-pid-ns"] if new_pid_ns else []))
    finally:
        os.close(writer)
    if new_pid_ns:
        # The reference's parent exits 0 once the pid file is written; the failure is the child's.
        assert result.returncode == 0
        from support.jail import wait_until

        wait_until(lambda: set(tree_snapshot(jail.base)) == set(before), what="the janitor's clean-up")
    else:
        assert error_text(result) == "Failed to exec into Firecracker: Text file busy (os error 26)\n"
    after = tree_snapshot(jail.base)
    assert set(after) == set(before)
    root = str(jail.chroot_dir.relative_to(jail.base))
    assert after[root] == before[root]


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_stop_signal_mid_run_cleans_up(jail: Jail, tmp_path: Path, signal_name: str) -> None:
    """Blocked opening --netns (a FIFO nobody writes), after the jail tree and the copy exist."""
    import signal
    import subprocess

    from support.jail import wait_until

    fifo = tmp_path / "netns-fifo"
    os.mkfifo(fifo)
    popen = subprocess.Popen(jail.argv("--netns", str(fifo)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    jail.popens.append(popen)
    wait_until(lambda: (jail.chroot_dir / jail.probe.name).exists(), what="the exec file copy")
    wait_until(lambda: Path(f"/proc/{popen.pid}/wchan").read_text() in ("wait_for_partner", "fifo_open"),
               what="the jailer to block opening the FIFO")
    popen.send_signal(getattr(signal, signal_name))
    _, stderr = popen.communicate(timeout=30)
    assert popen.returncode == 1
    assert stderr.splitlines()[-1] == f"Interrupted by {signal_name} while building the jail"
    assert "Traceback" not in stderr
    assert list(jail.base.iterdir()) == []


def test_inputs_that_could_hang_or_crash_it_fail_in_one_line_and_leave_nothing(jail: Jail, tmp_path: Path) -> None:
    """A FIFO as the policy (its reader would block for ever; a FIFO as --netns blocks as the
    reference's does, until a signal: see above), bytes that are not UTF-8 in a cgroup value
    (argv keeps them as surrogates) and a mount point over NAME_MAX."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [
        (["--seccomp-policy", str(fifo)], f"Invalid seccomp policy {fifo}: not a regular file"),
        (["--cgroup", "pids.max=\udcff"], "is not valid UTF-8"),
        (["--ro-bind", f"{tmp_path}:/{'x' * 300}"], "too long (os error 36)"),
    ]
    for flags, fragment in cases:
        result = jail.run(*flags, timeout=30)
        text = error_text(result)
        assert result.returncode == 1 and text.count("\n") == 1 and fragment in text, (flags, text)
        assert "Internal jailer error" not in text
        assert list(jail.base.iterdir()) == [], flags


def test_an_empty_chroot_base_dir_is_refused_as_rust_refuses_it(jail: Jail, tmp_path: Path) -> None:
    """Rust's canonicalize("") fails; Python's realpath("") would be the working directory."""
    argv = jail.argv()
    argv[argv.index("--chroot-base-dir") + 1] = ""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert error_text(result) == "Failed to canonicalize path : No such file or directory (os error 2)\n"
    assert list(tmp_path.iterdir()) == [jail.base]
