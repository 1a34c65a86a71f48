"""install_filter against the real kernel, in forked children (filters cannot be removed)."""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from pathlib import Path

import pytest

from jailer import policies
from jailer.policies import compiler
from jailer.policies.loader import FilterInstallError, install_filter
from support.policies import category, run_in_child, write_policy

SYS_GETPPID = 110


@pytest.fixture
def deny_getppid(tmp_path: Path) -> bytes:
    document = {"t": category([{"syscall": "getppid"}], default="allow", on_match={"errno": errno.EACCES})}
    return compiler.compile_category(policies.load_policy(write_policy(tmp_path, document)), "t")


def _getppid_errno() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.syscall(SYS_GETPPID)
    return ctypes.get_errno() if result < 0 else 0


def test_install_on_calling_thread_only(deny_getppid: bytes) -> None:
    def child() -> int:
        other_result: list[int] = []
        ready, installed = threading.Event(), threading.Event()

        def other() -> None:
            ready.set()
            installed.wait()
            other_result.append(_getppid_errno())

        thread = threading.Thread(target=other)
        thread.start()
        ready.wait()
        install_filter(deny_getppid, all_threads=False)
        mine = _getppid_errno()
        installed.set()
        thread.join()
        return 0 if (mine, other_result) == (errno.EACCES, [0]) else 3

    assert os.waitstatus_to_exitcode(run_in_child(child)) == 0


def test_install_all_threads_with_tsync(deny_getppid: bytes) -> None:
    def child() -> int:
        results: list[int] = []
        ready, installed = threading.Event(), threading.Event()

        def other() -> None:
            ready.set()
            installed.wait()
            results.append(_getppid_errno())

        thread = threading.Thread(target=other)
        thread.start()
        ready.wait()
        install_filter(deny_getppid, all_threads=True)
        installed.set()
        thread.join()
        return 0 if results == [errno.EACCES] and _getppid_errno() == errno.EACCES else 3

    assert os.waitstatus_to_exitcode(run_in_child(child)) == 0


def test_tsync_failure_names_the_diverging_thread(deny_getppid: bytes) -> None:
    def child() -> int:
        tids: list[int] = []
        done, release = threading.Event(), threading.Event()

        def other() -> None:
            install_filter(deny_getppid, all_threads=False)
            tids.append(threading.get_native_id())
            done.set()
            release.wait()

        thread = threading.Thread(target=other)
        thread.start()
        done.wait()
        try:
            install_filter(deny_getppid, all_threads=True)
            code = 3
        except FilterInstallError as error:
            code = 0 if f"thread {tids[0]} " in str(error) else 4
        release.set()
        thread.join()
        return code

    assert os.waitstatus_to_exitcode(run_in_child(child)) == 0


@pytest.mark.parametrize("program", [b"", b"\x00" * 7, b"\x06\x00\x00\x00\x00\x00\xff\x7f" * 4097])
def test_rejects_malformed_programs(program: bytes) -> None:
    with pytest.raises(FilterInstallError, match="not a seccomp program"):
        install_filter(program, all_threads=False)


def test_kernel_rejection_is_a_clear_error() -> None:
    invalid = b"\xff\xff\x00\x00\x00\x00\x00\x00"  # an opcode the seccomp checker refuses

    def child() -> int:
        try:
            install_filter(invalid, all_threads=False)
        except FilterInstallError as error:
            return 0 if "Invalid argument" in str(error) else 4
        return 3

    assert os.waitstatus_to_exitcode(run_in_child(child)) == 0
