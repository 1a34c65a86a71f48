"""Stockade's hardening beyond the reference, observed from inside (probe) and outside (/proc)."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import termios
from pathlib import Path

import pytest

from jailer.privileges import LOCKED_SECUREBITS
from support.jail import JAIL_GID, JAIL_UID, Jail, namespace_inode

pytestmark = pytest.mark.root


def expected_tree(jail: Jail) -> set[str]:
    from jailer.validation import read_userfaultfd_minor

    paths = {"/dev", "/dev/net", "/dev/net/tun", "/dev/kvm", "/dev/urandom", "/run",
             f"/{jail.probe.name}", f"/{jail.probe.name}.pid"}
    if read_userfaultfd_minor() is not None:
        paths.add("/dev/userfaultfd")
    return paths


def test_capabilities_dropped_and_locked(jail: Jail) -> None:
    report = jail.run_probe()
    assert (report["uid"], report["euid"], report["gid"], report["egid"]) == (JAIL_UID, JAIL_UID, JAIL_GID, JAIL_GID)
    assert report["groups"] == []
    for capability_set in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert report[capability_set] == 0, capability_set
    assert report["NoNewPrivs"] == 1
    assert report["securebits"] == LOCKED_SECUREBITS == 0xEF


def test_uid_zero_gets_no_capabilities(jail: Jail) -> None:
    """Locked SECBIT_NOROOT: even a jail run as uid 0 execs with every capability set empty."""
    jail.uid = jail.gid = 0
    report = jail.run_probe()
    assert (report["uid"], report["gid"]) == (0, 0)
    for capability_set in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert report[capability_set] == 0, capability_set


def test_host_side_view_of_capabilities(jail: Jail) -> None:
    probe = jail.start()
    status = probe.status()
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[field], 16) == 0, field
    assert status["NoNewPrivs"] == "1"
    assert status["Uid"].split() == [str(JAIL_UID)] * 4
    assert status["Gid"].split() == [str(JAIL_GID)] * 4
    assert status["Groups"] == ""


def test_new_mount_ipc_uts_namespaces(jail: Jail) -> None:
    probe = jail.start()
    for kind in ("mnt", "ipc", "uts"):
        assert namespace_inode(probe.pid, kind) != namespace_inode("self", kind), kind
    for kind in ("net", "pid", "user", "cgroup"):
        assert namespace_inode(probe.pid, kind) == namespace_inode("self", kind), kind
    assert probe.report["hostname"] == jail.jail_id
    assert socket.gethostname() != jail.jail_id


def test_root_is_the_jail_and_only_the_jail(jail: Jail) -> None:
    probe = jail.start()
    assert os.readlink(f"/proc/{probe.pid}/root") == "/"
    assert os.stat(f"/proc/{probe.pid}/root").st_ino == jail.chroot_dir.stat().st_ino
    assert probe.report["cwd"] == "/"
    report_files = {"/run/probe.json"}
    assert set(probe.report["tree"]) - report_files == expected_tree(jail)
    mounts = Path(f"/proc/{probe.pid}/mountinfo").read_text().splitlines()
    assert len(mounts) == 1, mounts
    assert mounts[0].split()[4] == "/"


def test_empty_environment_exact_argv_and_no_inherited_fds(jail: Jail) -> None:
    read_end, write_end = os.pipe()
    try:
        result = jail.run(extra=["--api-sock", "/run/s"], pass_fds=(read_end, write_end))
    finally:
        os.close(read_end)
        os.close(write_end)
    import json

    report = json.loads(result.stdout)
    assert report["env"] == []
    argv = report["argv"]
    assert argv[:3] == [f"/{jail.probe.name}", "--id", jail.jail_id]
    assert argv[3] == "--start-time-us" and argv[5] == "--start-time-cpu-us" and argv[7] == "--parent-cpu-time-us"
    assert all(int(argv[index]) > 0 for index in (4, 6, 8))
    assert argv[9:] == ["--api-sock", "/run/s"]
    # fds 0-2 plus the probe's own socket: the pipe the test passed in was closed by close_range.
    assert report["fds"] == [0, 1, 2, 3]


def test_signal_dispositions_reset(jail: Jail) -> None:
    report = jail.run_probe()
    assert report["sigpipe_default"] == 1
    assert report["sigxfsz_default"] == 1
    assert report["sigmask_empty"] == 1


def test_start_time_is_monotonic_microseconds(jail: Jail) -> None:
    import time

    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    report = jail.run_probe()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before <= int(report["argv"][4]) <= after


# A helper that owns a session whose controlling terminal is its stdin (a pty), and runs the
# jailer as an ordinary member of that session (not its leader).
SESSION_HELPER = """
import fcntl, os, subprocess, sys, termios
os.setsid()
fcntl.ioctl(0, termios.TIOCSCTTY, 0)
sys.exit(subprocess.call(sys.argv[1:]))
"""


def _make_pty_controlling() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def tty_nr(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[4])


@pytest.mark.parametrize("jailer_role", ["session-leader", "session-member"])
def test_jailed_process_has_no_controlling_terminal(jail: Jail, jailer_role: str) -> None:
    """TIOCSTI hardening: the operator's terminal must not be the VMM's controlling tty."""
    master, slave = os.openpty()
    try:
        if jailer_role == "session-leader":
            probe = jail.start(stdin=slave, preexec_fn=_make_pty_controlling)
        else:
            probe = jail.start(stdin=slave, prefix=[sys.executable, "-c", SESSION_HELPER])
            assert probe.report["sid"] != probe.pid  # really not the leader
        assert tty_nr(probe.pid) == 0
        assert os.readlink(f"/proc/{probe.pid}/fd/0").startswith("/dev/pts/")  # stdio still the pty
    finally:
        for probe_ in jail.started:
            probe_.kill()
        os.close(master)
        os.close(slave)


def test_no_userfaultfd_flag_leaves_the_node_out(jail: Jail) -> None:
    report = jail.run_probe("--no-userfaultfd")
    assert set(report["tree"]) == expected_tree(jail) - {"/dev/userfaultfd"}
    assert not (jail.chroot_dir / "dev/userfaultfd").exists()
