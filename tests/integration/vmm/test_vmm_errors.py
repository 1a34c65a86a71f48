"""Bad configurations and environments through the real `vmm` command: one line on stderr,
a nonzero status (152 for configuration, 153 for arguments), never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from support.vmm import HANG, out_al, run_vmm, write_config, write_guest

EXIT_BAD_CONFIGURATION = 152


def assert_one_line(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmm: ") and fragment in lines[0], stderr


def config_with(tmp_path: Path, **changes: Any) -> Path:
    kernel = write_guest(tmp_path, out_al(0xF4, 0) + HANG)
    path = write_config(tmp_path, kernel)
    document = json.loads(path.read_text())
    for section, body in changes.items():
        if body is None:
            document.pop(section, None)
        elif isinstance(body, dict) and isinstance(document.get(section), dict):
            document[section].update(body)
        else:
            document[section] = body
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}}, "kernel image not found: /nonexistent/vmlinux"),
        ({"machine-config": {"vcpu_count": 0}}, "vcpu_count: must be at least 1, got 0"),
        ({"machine-config": {"mem_size_mib": 0}}, "mem_size_mib: must be at least 1, got 0"),
        ({"machine-config": {"vcpu_count": "two"}}, "expected an integer, got a string"),
        ({"boot-source": None}, "missing required section 'boot-source'"),
        ({"balloon-config": {}}, "unknown section 'balloon-config'"),
        ({"network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0"}]}, "virtio-net devices are not supported yet"),
        ({"machine-config": {"vcpu_count": 256}}, "256 exceeds 255, the most vCPUs this VMM's xAPIC MADT entries"),
        ({"boot-source": {"kernel_image_path": "/tmp/" + "k" * 300}}, "kernel image /tmp/kkk"),  # ENAMETOOLONG
        ({"logger": {"log_path": "/tmp/\ud800.log"}}, "logger.log_path: '/tmp/\\ud800.log' is not a valid file name"),
        ({"metrics": {"metrics_path": "/tmp/\udfff"}}, "metrics.metrics_path: '/tmp/\\udfff' is not a valid file name"),
    ],
)
@pytest.mark.kvm
def test_configuration_errors(tmp_path: Path, changes: dict[str, Any], fragment: str) -> None:
    result = run_vmm(config_with(tmp_path, **changes))
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, fragment)


@pytest.mark.kvm
def test_bad_configurations_leave_no_log_metrics_or_socket_files(tmp_path: Path) -> None:
    log, metrics = tmp_path / "vmm.log", tmp_path / "vmm.metrics"
    config = config_with(tmp_path, **{"boot-source": {"kernel_image_path": str(tmp_path / "missing")},
                                      "logger": {"log_path": str(log)}, "metrics": {"metrics_path": str(metrics)}})
    result = run_vmm(config)
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, "kernel image not found")
    assert not log.exists() and not metrics.exists()
    kept = tmp_path / "kept.log"
    kept.write_text("earlier lines\n")  # a log that existed before stays, with what it had
    result = run_vmm(config, "--log-path", str(kept))
    assert result.returncode == EXIT_BAD_CONFIGURATION and kept.read_text().startswith("earlier lines\n")


def test_config_files_that_are_fifos_duplicated_keys_or_empty_arguments(tmp_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    result = run_vmm(fifo, timeout=20)  # must not block on the FIFO
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, f"cannot read config file {fifo}: not a regular file")
    duplicated = tmp_path / "dup.json"
    duplicated.write_text('{"machine-config": {"vcpu_count": 1, "vcpu_count": 2, "mem_size_mib": 64}}')
    result = run_vmm(duplicated)
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, f"{duplicated}: duplicate key 'vcpu_count'")
    result = run_vmm(config_with(tmp_path), "--seccomp-filter", str(fifo), timeout=20)  # nor on a FIFO policy
    assert result.returncode == 1
    assert_one_line(result.stderr, f"seccomp policy {fifo}: not a regular file")
    result = run_vmm(duplicated, "--log-path", "")
    assert result.returncode == 153
    assert_one_line(result.stderr, "--log-path needs a value, got an empty one")


@pytest.mark.kvm
def test_limits_come_from_kvm_and_the_host(tmp_path: Path) -> None:
    from vmm.kvm.system import Kvm

    kvm = Kvm()
    maximum = kvm.max_vcpus()
    kvm.close()
    result = run_vmm(config_with(tmp_path, **{"machine-config": {"vcpu_count": maximum + 1}}))
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, f"{maximum + 1} exceeds KVM's maximum of {maximum}")
    result = run_vmm(config_with(tmp_path, **{"machine-config": {"mem_size_mib": 1 << 30}}))
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, "exceeds host memory")


@pytest.mark.kvm
def test_unknown_image_format(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel.bin"
    kernel.write_bytes(b"not a kernel" * 100)
    result = run_vmm(config_with(tmp_path, **{"boot-source": {"kernel_image_path": str(kernel)}}))
    assert result.returncode == 1
    assert_one_line(result.stderr, "unknown kernel image format")


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = run_vmm(broken)
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, "invalid JSON at line 1")
    result = run_vmm(tmp_path / "missing.json")
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, "config file not found")
    huge = tmp_path / "huge.json"  # an integer Python will not convert (over 4300 digits)
    huge.write_text('{"machine-config": {"vcpu_count": ' + "9" * 5000 + "}}")
    result = run_vmm(huge)
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, "invalid JSON: Exceeds the limit (4300 digits)")


@pytest.mark.kvm
def test_bad_policy_file_and_unwritable_log(tmp_path: Path) -> None:
    config = config_with(tmp_path)
    result = run_vmm(config, "--seccomp-filter", str(tmp_path / "none.json"))
    assert result.returncode == 1
    assert_one_line(result.stderr, "seccomp policy")
    result = run_vmm(config, log_path=tmp_path / "no" / "such" / "dir.log")
    assert result.returncode == EXIT_BAD_CONFIGURATION
    assert_one_line(result.stderr, "cannot open the log file")


def test_unknown_argument_exit_code(tmp_path: Path) -> None:
    result = run_vmm(tmp_path / "c.json", "--frobnicate")
    assert result.returncode == 153
    assert_one_line(result.stderr, "unknown argument '--frobnicate'")
