"""Every assertion of Firecracker's `test_jail.py` (reference §3.1) that needs no Firecracker.

The cgroup assertions live with the cgroup tests (`test_cgroups*.py`); the boot-dependent ones
are replaced by what they check about the jail, observed through the jail probe.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from support.jail import JAIL_GID, JAIL_UID, Jail, error_text, namespace_inode, proc_status, process_alive, wait_until

pytestmark = pytest.mark.root

DIR_MODE = stat.S_IFDIR | 0o700
CHAR_MODE = stat.S_IFCHR | 0o600
PROBE_MODE = stat.S_IFREG | 0o755
SOCKET_MODE = stat.S_IFSOCK | 0o755


def check_stats(path: Path, mode: int, uid: int = JAIL_UID, gid: int = JAIL_GID) -> None:
    info = path.lstat()
    assert (info.st_mode, info.st_uid, info.st_gid) == (mode, uid, gid), path


def test_empty_jailer_id(jail: Jail) -> None:
    result = jail.run(jail_id="")
    assert error_text(result) == "Invalid instance ID: Invalid len (0);  the length must be between 1 and 64\n"
    assert list(jail.base.iterdir()) == []


def test_exec_file_not_exist(jail: Jail, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist"
    result = jail.run(exec_file=str(missing))
    assert error_text(result) == f"Failed to canonicalize path {missing}: No such file or directory (os error 2)\n"

    result = jail.run(exec_file=str(tmp_path))
    assert error_text(result) == f"{tmp_path} is not a file\n"
    assert list(jail.base.iterdir()) == []


def test_exec_destination_path_is_symlink(jail: Jail, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("host file")
    jail.chroot_dir.mkdir(parents=True)
    destination = jail.chroot_dir / jail.probe.name
    destination.symlink_to(target)

    result = jail.run()

    assert error_text(result) == f"Failed to open {destination}: Too many levels of symbolic links (os error 40)\n"
    assert target.read_text() == "host file"
    assert destination.is_symlink()


def test_exec_destination_path_is_hardlink(jail: Jail, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("host file")
    before = target.stat()
    jail.chroot_dir.mkdir(parents=True)
    destination = jail.chroot_dir / jail.probe.name
    os.link(target, destination)

    result = jail.run()

    assert error_text(result) == f"Detected hard link at: {destination}\n"
    after = target.stat()
    assert target.read_text() == "host file"
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)


def test_default_chroot_hierarchy(jail: Jail) -> None:
    jail.run_probe()
    root = jail.chroot_dir
    for folder in ("", "dev", "dev/net", "run"):
        check_stats(root / folder, DIR_MODE)
    for device in ("dev/net/tun", "dev/kvm"):
        check_stats(root / device, CHAR_MODE)
    check_stats(root / jail.probe.name, PROBE_MODE)
    assert (root / "dev/kvm").lstat().st_rdev == os.makedev(10, 232)
    assert (root / "dev/net/tun").lstat().st_rdev == os.makedev(10, 200)
    assert (root / "dev/urandom").lstat().st_rdev == os.makedev(1, 9)


def test_userfaultfd_node_uses_proc_misc_minor(jail: Jail) -> None:
    from jailer.validation import read_userfaultfd_minor

    minor = read_userfaultfd_minor()
    if minor is None:
        pytest.skip("this kernel has no userfaultfd misc device")
    jail.run_probe()
    node = jail.chroot_dir / "dev/userfaultfd"
    check_stats(node, CHAR_MODE)
    assert node.lstat().st_rdev == os.makedev(10, minor)


def test_arbitrary_usocket_location(jail: Jail) -> None:
    report = jail.run_probe(extra=["--api-sock", "api.socket"])
    assert report["api_sock_errno"] == 0
    check_stats(jail.chroot_dir / "api.socket", SOCKET_MODE)


def test_jailer_bind_mount_propagation(jail: Jail, tmp_path: Path) -> None:
    """A bind mount placed in the jail before the jailer runs is visible inside (#1089)."""
    source = tmp_path / "resources"
    source.mkdir()
    (source / "rootfs.ext4").write_bytes(b"\0" * 16)
    mount_point = jail.chroot_dir / "resources"
    mount_point.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(source), str(mount_point)], check=True)
    try:
        report = jail.run_probe()
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    assert "/resources/rootfs.ext4" in report["tree"]


def test_args_default_resource_limits(jail: Jail) -> None:
    report = jail.run_probe()
    assert report["RLIMIT_NOFILE"] == [2048, 2048]
    assert report["RLIMIT_FSIZE"] == [-1, -1]


def test_args_resource_limits(jail: Jail) -> None:
    report = jail.run_probe("--resource-limit", "no-file=1024", "--resource-limit", "fsize=2097151")
    assert report["RLIMIT_NOFILE"] == [1024, 1024]
    assert report["RLIMIT_FSIZE"] == [2097151, 2097151]


def test_positive_file_size_limit(jail: Jail) -> None:
    report = jail.run_probe("--resource-limit", f"fsize={(2 << 20) + 1}", extra=["--write-bytes", str(2 << 20)])
    assert report["write_errno"] == 0


def test_negative_file_size_limit(jail: Jail) -> None:
    """Exceeding fsize kills the jailed process with SIGXFSZ (signal 25), as it kills a VMM."""
    result = jail.run("--resource-limit", f"fsize={1 << 20}", extra=["--write-bytes", str(2 << 20)])
    assert result.returncode == -25


def test_negative_no_file_limit(jail: Jail) -> None:
    result = jail.run("--resource-limit", "no-file=3", "--daemonize")
    assert error_text(result) == "Failed to open /dev/null: No file descriptors available (os error 24)\n"
    assert list(jail.base.iterdir()) == []


def test_new_pid_ns_resource_limits(jail: Jail) -> None:
    probe = jail.start("--new-pid-ns", "--resource-limit", "no-file=1024", "--resource-limit", "fsize=2097151")
    assert probe.report["RLIMIT_NOFILE"] == [1024, 1024]
    assert probe.report["RLIMIT_FSIZE"] == [2097151, 2097151]
    limits = Path(f"/proc/{probe.pid}/limits").read_text()
    assert "Max open files            1024                 1024" in limits


def test_new_pid_namespace(jail: Jail) -> None:
    probe = jail.start("--new-pid-ns")
    assert probe.report["pid"] == 1
    assert proc_status(probe.pid)["NStgid"].split() == [str(probe.pid), "1"]
    assert os.readlink(f"/proc/{probe.pid}/exe") == f"/{jail.probe.name}"
    assert namespace_inode(probe.pid, "pid") != namespace_inode("self", "pid")
    assert jail.pid_file.read_text() == str(probe.pid)


def test_pid_file_without_new_pid_ns(jail: Jail) -> None:
    probe = jail.start()
    assert probe.report["pid"] == probe.pid
    assert probe.pid == probe.jailer.pid
    assert len(proc_status(probe.pid)["NStgid"].split()) == 1
    info = jail.pid_file.lstat()
    assert (info.st_uid, info.st_gid) == (0, 0)


@pytest.mark.parametrize("daemonize", [False, True], ids=["foreground", "daemonize"])
@pytest.mark.parametrize("new_pid_ns", [False, True], ids=["same-pid-ns", "new-pid-ns"])
def test_kill_by_pid(jail: Jail, daemonize: bool, new_pid_ns: bool) -> None:
    flags = [*(["--daemonize"] if daemonize else []), *(["--new-pid-ns"] if new_pid_ns else [])]
    probe = jail.start(*flags)
    if daemonize or new_pid_ns:
        # The jailer's own process exits 0 after forking; the probe carries on.
        assert probe.jailer.wait(timeout=30) == 0
        assert probe.pid != probe.jailer.pid
    if daemonize and not new_pid_ns:
        # Double fork: a new session whose leader (the middle process) has exited, so the
        # daemon is not a session leader and can never regain a controlling terminal.
        assert probe.report["sid"] not in (os.getsid(0), probe.report["pid"])
        assert probe.report["fds"][:3] == [0, 1, 2]
        assert os.readlink(f"/proc/{probe.pid}/fd/1") == "/dev/null"
    os.kill(probe.pid, 9)
    wait_until(lambda: not process_alive(probe.pid), what="the probe to die")


def test_netns_join(jail: Jail, unique_name: str) -> None:
    subprocess.run(["ip", "netns", "add", unique_name], check=True)
    try:
        probe = jail.start("--netns", f"/var/run/netns/{unique_name}")
        assert namespace_inode(probe.pid, "net") == os.stat(f"/var/run/netns/{unique_name}").st_ino
        probe.kill()
    finally:
        subprocess.run(["ip", "netns", "delete", unique_name], check=True)


def test_netns_not_a_namespace(jail: Jail, tmp_path: Path) -> None:
    not_netns = tmp_path / "plain-file"
    not_netns.write_text("")
    result = jail.run("--netns", str(not_netns))
    assert error_text(result) == "Failed to join network namespace: netns: Invalid argument (os error 22)\n"
    assert list(jail.base.iterdir()) == []
