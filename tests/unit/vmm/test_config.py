"""Firecracker-format configuration: the reference file parses; every error is one line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmm.config import check_resources, load_config, parse_config
from vmm.errors import ConfigError


def minimal(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "boot-source": {"kernel_image_path": "vmlinux.bin"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 128},
    }
    document.update(changes)
    return document


def test_firecracker_reference_config_parses(firecracker_reference: Path) -> None:
    config = load_config(firecracker_reference / "vm_config.json")
    assert config.machine_config.vcpu_count == 2 and config.machine_config.mem_size_mib == 1024
    assert config.boot_source.boot_args == "console=ttyS0 reboot=k panic=1"
    assert [drive.drive_id for drive in config.drives] == ["rootfs"]
    assert config.drives[0].is_root_device and config.network_interfaces == []


def test_defaults() -> None:
    config = parse_config(minimal())
    assert config.boot_source.initrd_path is None and config.boot_source.boot_args is None
    assert config.logger is None and config.metrics is None and config.drives == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "expected a JSON object, got an array"),
        (minimal(gpu={}), "unknown section 'gpu'"),
        ({"machine-config": {"vcpu_count": 1, "mem_size_mib": 1}}, "missing required section 'boot-source'"),
        (minimal(**{"boot-source": {}}), "boot-source: missing required field 'kernel_image_path'"),
        (minimal(**{"boot-source": {"kernel_image_path": 3}}), "boot-source.kernel_image_path: expected a string, got an integer"),
        (minimal(**{"boot-source": {"kernel_image_path": "k", "x": 1}}), "boot-source: unknown field 'x'"),
        (minimal(**{"machine-config": {"mem_size_mib": 1}}), "missing required field 'vcpu_count'"),
        (minimal(**{"machine-config": {"vcpu_count": 0, "mem_size_mib": 1}}), "vcpu_count: must be at least 1, got 0"),
        (minimal(**{"machine-config": {"vcpu_count": 1, "mem_size_mib": 0}}), "mem_size_mib: must be at least 1, got 0"),
        (minimal(**{"machine-config": {"vcpu_count": True, "mem_size_mib": 1}}), "expected an integer, got a boolean"),
        (minimal(**{"machine-config": {"vcpu_count": "2", "mem_size_mib": 1}}), "expected an integer, got a string"),
        (minimal(**{"machine-config": {"vcpu_count": 1, "mem_size_mib": 1, "smt": True}}), "not supported yet"),
        (minimal(**{"machine-config": {"vcpu_count": 1, "mem_size_mib": 1, "huge_pages": "1G"}}), "is not one of None, 2M"),
        (minimal(drives={}), "drives: expected an array, got an object"),
        (minimal(drives=[{"drive_id": "a", "path_on_host": "x", "is_root_device": True}] * 2), "duplicate drive_id 'a'"),
        (minimal(drives=[{"drive_id": "a", "path_on_host": "x"}]), "drives[0]: missing required field 'is_root_device'"),
        (
            minimal(**{"network-interfaces": [{"iface_id": "n", "host_dev_name": "tap0", "guest_mac": "zz"}]}),
            "guest_mac: 'zz' is not a MAC address",
        ),
        (minimal(**{"network-interfaces": [{"iface_id": "n", "host_dev_name": "a/b"}]}), "is not a valid interface name"),
        (minimal(logger={"level": "Loud"}), "logger.level: 'Loud' is not one of"),
        (minimal(metrics={}), "metrics: missing required field 'metrics_path'"),
        (minimal(vsock={"guest_cid": 3}), "vsock: this VMM does not support it yet"),
        (minimal(entropy={}), "entropy: this VMM does not support it yet"),
        (minimal(pmem=[], balloon=None), None),
        (minimal(serial={"serial_out_path": "/tmp/c", "rate_limiter": {}}), "serial.rate_limiter: rate limiters are not supported yet"),
        (minimal(serial={"serial_out_path": 1}), "serial.serial_out_path: expected a string"),
    ],
)
def test_errors_name_the_field(document: Any, message: str | None) -> None:
    if message is None:
        parse_config(document)
        return
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_logger_level_is_case_insensitive_like_firecracker() -> None:
    config = parse_config(minimal(logger={"level": "debug", "log_path": "/tmp/x"}))
    assert config.logger is not None and config.logger.level == "Debug"


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"boot-source": ')
    with pytest.raises(ConfigError, match=r"invalid JSON at line 1 column"):
        load_config(broken)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError):
        load_config(deep)


def test_a_config_that_is_no_regular_file_is_refused_unread(tmp_path: Path) -> None:
    """A FIFO would block the open (O_NONBLOCK), a directory is no config: one line each."""
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(ConfigError) as raised:
            load_config(path)
        assert str(raised.value) == f"cannot read config file {path}: not a regular file"


def test_the_config_is_read_in_chunks_of_64_kib_at_most(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A larger read() buffer, shrunk to what came, costs an mremap the jail does not allow."""
    sizes: list[int] = []
    real_read = os.read

    def read(fd: int, size: int) -> bytes:
        sizes.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", read)
    config = tmp_path / "big.json"
    config.write_text(json.dumps(minimal()) + " " * 300_000)
    assert load_config(config).machine_config.vcpu_count == 1
    assert len(sizes) >= 5 and max(sizes) <= 1 << 16


def test_check_resources(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\0")
    document = minimal(**{"boot-source": {"kernel_image_path": str(kernel)}})
    check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)
    with pytest.raises(ConfigError, match="exceeds KVM's maximum of 4"):
        document["machine-config"]["vcpu_count"] = 5
        check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)
    document["machine-config"] = {"vcpu_count": 1, "mem_size_mib": 2048}
    with pytest.raises(ConfigError, match=r"2048 MiB exceeds host memory \(1024 MiB\)"):
        check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)
    document["machine-config"]["mem_size_mib"] = 16
    document["boot-source"]["initrd_path"] = str(tmp_path / "initrd")
    with pytest.raises(ConfigError, match="initrd not found"):
        check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)
    del document["boot-source"]["initrd_path"]
    document["boot-source"]["kernel_image_path"] = str(tmp_path)
    with pytest.raises(ConfigError, match="kernel image is not a regular file"):
        check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)


def test_devices_this_vmm_lacks_are_refused_not_ignored(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel"
    kernel.write_bytes(b"\0")
    drive = {"drive_id": "root", "path_on_host": str(kernel), "is_root_device": True}
    document = minimal(**{"boot-source": {"kernel_image_path": str(kernel)}}, drives=[drive])
    with pytest.raises(ConfigError, match="drives: virtio-blk devices are not supported yet"):
        check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)
    document["drives"] = [{**drive, "path_on_host": str(tmp_path / "nope")}]
    with pytest.raises(ConfigError, match="backing file not found"):
        check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)
    document["drives"] = []
    document["network-interfaces"] = [{"iface_id": "eth0", "host_dev_name": "tap0"}]
    with pytest.raises(ConfigError, match="virtio-net devices are not supported yet"):
        check_resources(parse_config(document), max_vcpus=4, host_memory_bytes=1 << 30)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
SECTION_NAMES = st.sampled_from(["boot-source", "machine-config", "drives", "network-interfaces", "logger", "metrics", "entropy"])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(SECTION_NAMES | st.text(max_size=6), JSON, max_size=5))
def test_random_documents_never_raise_anything_but_config_error(document: dict[str, Any]) -> None:
    try:
        parse_config(document)
    except ConfigError as error:
        assert "\n" not in str(error)


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "boot-source": st.fixed_dictionaries({"kernel_image_path": JSON}, optional={"boot_args": JSON, "initrd_path": JSON}),
            "machine-config": st.fixed_dictionaries({"vcpu_count": JSON, "mem_size_mib": JSON}, optional={"smt": JSON}),
        },
        optional={"drives": st.lists(st.dictionaries(st.sampled_from(["drive_id", "path_on_host", "is_root_device"]), JSON)), "logger": JSON},
    )
)
def test_near_valid_documents_never_raise_anything_but_config_error(document: dict[str, Any]) -> None:
    try:
        json.dumps(document)
        parse_config(document)
    except ConfigError as error:
        assert "\n" not in str(error)
