"""Firecracker's HTTP API on a Unix socket: configure and start a VM through it, errors as
`fault_message`, the running VM's state; the `api` thread under its own filter."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from support.vmm import (
    HANG,
    VMM_COMMAND,
    api_request,
    jailed_vmm_command,
    mov_byte_to_address,
    out_al,
    serial_text,
    write_config,
    write_guest,
)

from jailer.policies import shipped_policy_path

pytestmark = pytest.mark.kvm


def start_vmm(tmp_path: Path, *args: str, jailed: bool = False) -> tuple[subprocess.Popen[bytes], Path]:
    socket_path = tmp_path / "api.sock"
    prefix = jailed_vmm_command(shipped_policy_path("vmm"), "jail-api") if jailed else VMM_COMMAND
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    process = subprocess.Popen(
        [*prefix, "--api-sock", str(socket_path), *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    for _ in range(400):
        if socket_path.exists() or process.poll() is not None:
            break
        time.sleep(0.025)
    assert socket_path.exists(), process.communicate(timeout=10)
    return process, socket_path


def start_through_the_api(directory: Path, kernel: Path) -> tuple[int, bytes, bytes]:
    """A fresh VMM configured and started through its API (the 204 asserted), run to its end."""
    process, socket_path = start_vmm(directory)
    try:
        api_request(socket_path, "PUT", "/boot-source", {"kernel_image_path": str(kernel)})
        api_request(socket_path, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        assert api_request(socket_path, "PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
    finally:
        result = finish(process)
    return result


def finish(process: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, stdout, stderr


@pytest.mark.parametrize("jailed", [False, True], ids=["per-thread", "jail+per-thread"])
def test_configure_and_start_through_the_api(tmp_path: Path, jailed: bool) -> None:
    kernel = write_guest(tmp_path, serial_text("api boot\n") + mov_byte_to_address(0xC000_0000, 123) + out_al(0xF4, 3) + HANG)
    process, socket_path = start_vmm(tmp_path, "--boot-timer", jailed=jailed)
    try:
        status, info = api_request(socket_path, "GET", "/")
        assert status == 200 and info["state"] == "Not started"
        assert api_request(socket_path, "PUT", "/boot-source", {"kernel_image_path": str(kernel)}) == (204, None)
        assert api_request(socket_path, "PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64}) == (204, None)
        assert api_request(socket_path, "PATCH", "/machine-config", {"mem_size_mib": 32}) == (204, None)
        assert api_request(socket_path, "GET", "/machine-config") == (200, {"vcpu_count": 2, "mem_size_mib": 32})
        assert api_request(socket_path, "PUT", "/actions", {"action_type": "InstanceStart"}) == (204, None)
    finally:
        returncode, stdout, stderr = finish(process)
    assert (returncode, stdout) == (7, b"api boot\n"), stderr
    assert b"Guest-boot-time" in stderr and b"2 vCPU(s), 32 MiB" in stderr


def test_errors_are_fault_messages_and_a_failed_start_can_be_retried(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, serial_text("second try\n") + out_al(0xF4, 0) + HANG)
    process, socket_path = start_vmm(tmp_path)
    try:
        status, body = api_request(socket_path, "PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 64})
        assert status == 400 and body == {"fault_message": "machine-config.vcpu_count: must be at least 1, got 0"}
        status, body = api_request(socket_path, "PUT", "/boot-source", {"kernel_image_path": 7})
        assert status == 400 and "expected a string" in body["fault_message"]
        assert api_request(socket_path, "GET", "/nowhere")[0] == 404
        assert api_request(socket_path, "DELETE", "/")[0] == 405
        status, body = api_request(socket_path, "PUT", "/actions", {"action_type": "InstanceStart"})
        assert status == 400 and "missing required section 'boot-source'" in body["fault_message"]
        api_request(socket_path, "PUT", "/boot-source", {"kernel_image_path": str(tmp_path / "missing")})
        api_request(socket_path, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 64})
        status, body = api_request(socket_path, "PUT", "/actions", {"action_type": "InstanceStart"})
        assert status == 400 and "kernel image not found" in body["fault_message"]
        api_request(socket_path, "PUT", "/boot-source", {"kernel_image_path": str(kernel)})
        drive = {"path_on_host": str(kernel), "is_root_device": True}
        assert api_request(socket_path, "PUT", "/drives/rootfs", drive) == (204, None)
        status, body = api_request(socket_path, "PUT", "/actions", {"action_type": "InstanceStart"})
        assert status == 400 and "virtio-blk devices are not supported yet" in body["fault_message"]
        # Drop the drive by rebuilding the document through fresh PUTs is not possible (no
        # DELETE in Firecracker's API either); start a new VMM for the clean second try.
    finally:
        process.kill()
        finish(process)
    second = tmp_path / "second"
    second.mkdir()
    returncode, stdout, _ = start_through_the_api(second, kernel)
    assert (returncode, stdout) == (1, b"second try\n")


def test_config_file_with_the_api_serves_the_running_vm(tmp_path: Path) -> None:
    kernel = write_guest(tmp_path, serial_text("running\n") + HANG)
    config = write_config(tmp_path, kernel)
    metrics = tmp_path / "metrics"
    process, socket_path = start_vmm(tmp_path, "--config-file", str(config), "--metrics-path", str(metrics))
    try:
        assert process.stdout is not None and process.stdout.readline() == b"running\n"
        status, info = api_request(socket_path, "GET", "/")
        assert status == 200 and info["state"] == "Running"
        status, body = api_request(socket_path, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 8})
        assert status == 400 and "not supported after starting" in body["fault_message"]
        assert api_request(socket_path, "PUT", "/actions", {"action_type": "FlushMetrics"}) == (204, None)
        assert metrics.read_text().startswith("{")
        status, document = api_request(socket_path, "GET", "/vm/config")
        assert status == 200 and document["machine-config"]["mem_size_mib"] == 64
        task_names = {(task / "comm").read_text().strip(): task for task in Path(f"/proc/{process.pid}/task").iterdir()}
        status_text = (task_names["api"] / "status").read_text()
        assert "Seccomp_filters:\t1" in status_text
    finally:
        process.kill()
        finish(process)


def test_instance_start_is_answered_before_a_guest_that_exits_at_once_ends_the_vmm(tmp_path: Path) -> None:
    # The VM starts only once the 204 is on the wire: a guest whose first instruction ends
    # the process must never leave the client without an answer.
    kernel = write_guest(tmp_path, out_al(0xF4, 0) + HANG)
    for attempt in range(5):
        directory = tmp_path / f"attempt{attempt}"
        directory.mkdir()
        returncode, _, stderr = start_through_the_api(directory, kernel)
        assert returncode == 1, stderr
