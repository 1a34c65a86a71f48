"""`inspect` against a live process whose threads installed different categories."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jailer.policies import cli, inspect
from support.policies import category, write_policy

pytestmark = pytest.mark.root

HELPER = Path(__file__).resolve().parents[2] / "support" / "filtered_threads.py"


@pytest.fixture
def policy_path(tmp_path: Path) -> Path:
    def deny(syscall: str) -> dict[str, object]:
        return category([{"syscall": syscall}], default="allow", on_match={"errno": 1})

    return write_policy(tmp_path, {"jail": deny("getppid"), "vcpu": deny("getpgrp"), "api": deny("getsid")})


@contextmanager
def filtered_process(policy: Path, *specs: str) -> Iterator[int]:
    process = subprocess.Popen([sys.executable, str(HELPER), str(policy), *specs], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield process.pid
    finally:
        process.communicate("", timeout=30)


def _by_name(threads: list[inspect.ThreadFilters]) -> dict[str, list[str | None]]:
    return {thread.name: [f.match for f in thread.filters] for thread in threads}


def test_each_thread_shows_its_own_categories(policy_path: Path) -> None:
    with filtered_process(policy_path, "vcpu0=vcpu", "api_thread=api", "both=jail,vcpu") as pid:
        threads = inspect.inspect_process(pid, policies=[str(policy_path)])
    names = _by_name(threads)
    assert names["vcpu0"] == ["vcpu"] and names["api_thread"] == ["api"] and names["both"] == ["jail", "vcpu"]
    main = next(thread for thread in threads if thread.tid == pid)
    assert main.seccomp_mode == "disabled" and main.filters == []
    both = next(thread for thread in threads if thread.name == "both")
    assert both.summary() == "both: 2 filters: jail, vcpu" and both.no_new_privs


def test_tsync_filter_then_per_thread_filters(policy_path: Path) -> None:
    with filtered_process(policy_path, "*=jail", "vcpu0=vcpu", "vcpu1=vcpu", "api=api") as pid:
        threads = inspect.inspect_process(pid, policies=[str(policy_path)])
    names = _by_name(threads)
    assert names["vcpu0"] == names["vcpu1"] == ["jail", "vcpu"]
    assert names["api"] == ["jail", "api"]
    main = next(thread for thread in threads if thread.tid == pid)
    assert [f.match for f in main.filters] == ["jail"]


def test_unknown_filter_is_reported_as_unknown(policy_path: Path, tmp_path: Path) -> None:
    other = write_policy(tmp_path, {"x": category([{"syscall": "read"}], default="allow", on_match={"errno": 2})}, "other.json")
    with filtered_process(policy_path, "vcpu0=vcpu") as pid:
        threads = inspect.inspect_process(pid, policies=[str(other)])
    vcpu = next(thread for thread in threads if thread.name == "vcpu0")
    assert vcpu.filters[0].match is None and "unknown (" in vcpu.summary()


def test_cli_json(policy_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with filtered_process(policy_path, "vcpu0=jail,vcpu") as pid:
        assert cli.main(["inspect", str(pid), "--policy", str(policy_path), "--json"]) == 0
    threads = json.loads(capsys.readouterr().out)
    vcpu = next(thread for thread in threads if thread["name"] == "vcpu0")
    assert [f["match"] for f in vcpu["filters"]] == ["jail", "vcpu"]
    assert all(len(bytes.fromhex(f["bpf_hex"])) == 8 * f["instructions"] for f in vcpu["filters"])


def test_no_such_process_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", "999999999"]) == 2
    assert "no process 999999999" in capsys.readouterr().err
