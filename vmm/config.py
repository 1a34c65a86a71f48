"""Firecracker-format VM configuration (the `--config-file` JSON) → plain value classes.

Two steps: `parse_config` checks structure and types (pure, so the reference
`vm_config.json` parses anywhere); `check_resources` checks the config against this host
(files exist, vCPU count within KVM's maximum, memory within host RAM). Every problem is
one `ConfigError` line naming the field.

This module is on the VMM's start-up path, and start-up time and private memory are product
targets: the sections are plain classes with ``__slots__`` (not dataclasses, whose import and
class generation cost ~10 ms here) and file paths are strings as `vmm.paths.path_text`
spells them (what ``str(pathlib.Path(...))`` gives), not `pathlib.Path` objects.
"""

from __future__ import annotations

import errno
import os
import stat

from vmm import jsontext
from vmm.errors import ConfigError
from vmm.paths import path_text

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from typing import Any

KNOWN_SECTIONS = (
    "boot-source",
    "drives",
    "machine-config",
    "cpu-config",
    "balloon",
    "network-interfaces",
    "vsock",
    "logger",
    "metrics",
    "mmds-config",
    "entropy",
    "pmem",
    "memory-hotplug",
    "serial",
)
# Sections Firecracker knows that this VMM does not implement: accepted only when null/empty.
UNSUPPORTED_SECTIONS = ("cpu-config", "balloon", "vsock", "mmds-config", "entropy", "pmem", "memory-hotplug")
LOG_LEVELS = ("Error", "Warning", "Info", "Debug", "Trace", "Off")
CACHE_TYPES = ("Unsafe", "Writeback")
IO_ENGINES = ("Sync", "Async")


class BootSource:
    __slots__ = ("kernel_image_path", "boot_args", "initrd_path")

    def __init__(self, kernel_image_path: str, boot_args: str | None = None, initrd_path: str | None = None) -> None:
        self.kernel_image_path = kernel_image_path
        self.boot_args = boot_args
        self.initrd_path = initrd_path


class MachineConfig:
    __slots__ = ("vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "huge_pages", "cpu_template")

    def __init__(
        self,
        vcpu_count: int,
        mem_size_mib: int,
        smt: bool = False,
        track_dirty_pages: bool = False,
        huge_pages: str = "None",
        cpu_template: str | None = None,
    ) -> None:
        self.vcpu_count = vcpu_count
        self.mem_size_mib = mem_size_mib
        self.smt = smt
        self.track_dirty_pages = track_dirty_pages
        self.huge_pages = huge_pages
        self.cpu_template = cpu_template


class Drive:
    __slots__ = ("drive_id", "path_on_host", "is_root_device", "is_read_only", "partuuid", "cache_type", "io_engine")

    def __init__(
        self,
        drive_id: str,
        path_on_host: str,
        is_root_device: bool,
        is_read_only: bool = False,
        partuuid: str | None = None,
        cache_type: str = "Unsafe",
        io_engine: str = "Sync",
    ) -> None:
        self.drive_id = drive_id
        self.path_on_host = path_on_host
        self.is_root_device = is_root_device
        self.is_read_only = is_read_only
        self.partuuid = partuuid
        self.cache_type = cache_type
        self.io_engine = io_engine


class NetworkInterface:
    __slots__ = ("iface_id", "host_dev_name", "guest_mac")

    def __init__(self, iface_id: str, host_dev_name: str, guest_mac: str | None = None) -> None:
        self.iface_id = iface_id
        self.host_dev_name = host_dev_name
        self.guest_mac = guest_mac


class LoggerConfig:
    __slots__ = ("log_path", "level", "show_level", "show_log_origin")

    def __init__(
        self, log_path: str | None = None, level: str = "Info", show_level: bool = False, show_log_origin: bool = False
    ) -> None:
        self.log_path = log_path
        self.level = level
        self.show_level = show_level
        self.show_log_origin = show_log_origin


class MetricsConfig:
    __slots__ = ("metrics_path",)

    def __init__(self, metrics_path: str) -> None:
        self.metrics_path = metrics_path


class SerialConfig:
    """Where the guest's COM1 output goes instead of stdout (a file or a named pipe)."""

    __slots__ = ("serial_out_path",)

    def __init__(self, serial_out_path: str | None = None) -> None:
        self.serial_out_path = serial_out_path


class VmConfig:
    __slots__ = ("boot_source", "machine_config", "drives", "network_interfaces", "logger", "metrics", "serial")

    def __init__(
        self,
        boot_source: BootSource,
        machine_config: MachineConfig,
        drives: list[Drive] | None = None,
        network_interfaces: list[NetworkInterface] | None = None,
        logger: LoggerConfig | None = None,
        metrics: MetricsConfig | None = None,
        serial: SerialConfig | None = None,
    ) -> None:
        self.boot_source = boot_source
        self.machine_config = machine_config
        self.drives = [] if drives is None else drives
        self.network_interfaces = [] if network_interfaces is None else network_interfaces
        self.logger = logger
        self.metrics = metrics
        self.serial = serial


_KIND = {bool: "a boolean", int: "an integer", str: "a string", dict: "an object", list: "an array"}


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    return _KIND.get(type(value), type(value).__name__)


class _Object:
    """Typed field access on one JSON object, with errors naming the field's path."""

    def __init__(self, body: Any, where: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: expected an object, got {_kind_of(body)}")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}")
        self.body = body
        self.where = where

    def get(self, name: str, kind: type, *, required: bool = False, default: Any = None) -> Any:
        if name not in self.body or (self.body[name] is None and not required):
            if required:
                raise ConfigError(f"{self.where}: missing required field {name!r}")
            return default
        value = self.body[name]
        # bool is an int subclass in Python; JSON true is never a count.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{self.where}.{name}: expected {_KIND[kind]}, got {_kind_of(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default=default)
        if value not in choices:
            raise ConfigError(f"{self.where}.{name}: {value!r} is not one of {', '.join(choices)}")
        return value

    def path(self, name: str, *, required: bool = False) -> str | None:
        value = self.get(name, str, required=required)
        if value is None:
            return None
        if not value or "\0" in value:
            raise ConfigError(f"{self.where}.{name}: expected a file path, got {value!r}")
        try:
            os.fsencode(value)
        except UnicodeEncodeError:  # JSON can spell lone surrogates no file name has
            raise ConfigError(f"{self.where}.{name}: {value!r} is not a valid file name") from None
        return path_text(value)


def _boot_source(body: Any) -> BootSource:
    section = _Object(body, "boot-source", ("kernel_image_path", "boot_args", "initrd_path"))
    kernel = section.path("kernel_image_path", required=True)
    assert kernel is not None
    return BootSource(kernel, section.get("boot_args", str), section.path("initrd_path"))


def _machine_config(body: Any) -> MachineConfig:
    section = _Object(
        body,
        "machine-config",
        ("vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", "huge_pages", "cpu_template"),
    )
    vcpu_count = section.get("vcpu_count", int, required=True)
    mem_size_mib = section.get("mem_size_mib", int, required=True)
    if vcpu_count < 1:
        raise ConfigError(f"machine-config.vcpu_count: must be at least 1, got {vcpu_count}")
    if mem_size_mib < 1:
        raise ConfigError(f"machine-config.mem_size_mib: must be at least 1, got {mem_size_mib}")
    smt = section.get("smt", bool, default=False)
    if smt:
        raise ConfigError("machine-config.smt: simultaneous multithreading is not supported yet")
    huge_pages = section.choice("huge_pages", ("None", "2M"), "None")
    if huge_pages != "None":
        raise ConfigError("machine-config.huge_pages: hugetlbfs-backed guest memory is not supported yet")
    cpu_template = section.get("cpu_template", str)
    if cpu_template not in (None, "None"):
        raise ConfigError(f"machine-config.cpu_template: CPU templates are not supported yet (got {cpu_template!r})")
    return MachineConfig(
        vcpu_count, mem_size_mib, smt, section.get("track_dirty_pages", bool, default=False), huge_pages, cpu_template
    )


def _array(body: Any, where: str) -> list[Any]:
    if body is None:
        return []
    if not isinstance(body, list):
        raise ConfigError(f"{where}: expected an array, got {_kind_of(body)}")
    return body


def _unique_ids(items: list[Any], key: str, where: str) -> None:
    seen: set[str] = set()
    for item in items:
        value = getattr(item, key)
        if value in seen:
            raise ConfigError(f"{where}: duplicate {key} {value!r}")
        seen.add(value)


def _drives(body: Any) -> list[Drive]:
    drives = []
    for index, item in enumerate(_array(body, "drives")):
        section = _Object(
            item,
            f"drives[{index}]",
            (
                "drive_id",
                "path_on_host",
                "is_root_device",
                "is_read_only",
                "partuuid",
                "cache_type",
                "io_engine",
                "rate_limiter",
                "socket",
            ),
        )
        if section.get("socket", str) is not None:
            raise ConfigError(f"drives[{index}].socket: vhost-user drives are not supported")
        if section.get("rate_limiter", dict) is not None:
            raise ConfigError(f"drives[{index}].rate_limiter: rate limiters are not supported yet")
        path = section.path("path_on_host", required=True)
        assert path is not None
        drives.append(
            Drive(
                section.get("drive_id", str, required=True),
                path,
                section.get("is_root_device", bool, required=True),
                section.get("is_read_only", bool, default=False),
                section.get("partuuid", str),
                section.choice("cache_type", CACHE_TYPES, "Unsafe"),
                section.choice("io_engine", IO_ENGINES, "Sync"),
            )
        )
    _unique_ids(drives, "drive_id", "drives")
    if sum(drive.is_root_device for drive in drives) > 1:
        raise ConfigError("drives: more than one root device")
    return drives


def _network_interfaces(body: Any) -> list[NetworkInterface]:
    interfaces = []
    for index, item in enumerate(_array(body, "network-interfaces")):
        where = f"network-interfaces[{index}]"
        section = _Object(
            item, where, ("iface_id", "host_dev_name", "guest_mac", "rx_rate_limiter", "tx_rate_limiter")
        )
        for limiter in ("rx_rate_limiter", "tx_rate_limiter"):
            if section.get(limiter, dict) is not None:
                raise ConfigError(f"{where}.{limiter}: rate limiters are not supported yet")
        name = section.get("host_dev_name", str, required=True)
        if not 0 < len(name) < 16 or "/" in name or name in (".", ".."):
            raise ConfigError(f"{where}.host_dev_name: {name!r} is not a valid interface name")
        mac = section.get("guest_mac", str)
        if mac is not None and not _is_mac(mac):
            raise ConfigError(f"{where}.guest_mac: {mac!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
        interfaces.append(NetworkInterface(section.get("iface_id", str, required=True), name, mac))
    _unique_ids(interfaces, "iface_id", "network-interfaces")
    _unique_ids(interfaces, "host_dev_name", "network-interfaces")
    return interfaces


def _is_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(len(part) == 2 and all(c in "0123456789abcdefABCDEF" for c in part) for part in parts)


def _logger(body: Any) -> LoggerConfig | None:
    if body is None:
        return None
    section = _Object(body, "logger", ("log_path", "level", "show_level", "show_log_origin", "module"))
    if section.get("module", str) is not None:
        raise ConfigError("logger.module: per-module log filtering is not supported")
    level = section.get("level", str, default="Info")
    canonical = {name.lower(): name for name in LOG_LEVELS}.get(level.lower())
    if canonical is None:
        raise ConfigError(f"logger.level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return LoggerConfig(
        section.path("log_path"),
        canonical,
        section.get("show_level", bool, default=False),
        section.get("show_log_origin", bool, default=False),
    )


def _metrics(body: Any) -> MetricsConfig | None:
    if body is None:
        return None
    path = _Object(body, "metrics", ("metrics_path",)).path("metrics_path", required=True)
    assert path is not None
    return MetricsConfig(path)


def _serial(body: Any) -> SerialConfig | None:
    if body is None:
        return None
    section = _Object(body, "serial", ("serial_out_path", "rate_limiter"))
    if section.get("rate_limiter", dict) is not None:
        raise ConfigError("serial.rate_limiter: rate limiters are not supported yet")
    return SerialConfig(section.path("serial_out_path"))


def parse_config(document: Any) -> VmConfig:
    """Structure and types of a Firecracker-format config document (already JSON-decoded)."""
    if not isinstance(document, dict):
        raise ConfigError(f"configuration: expected a JSON object, got {_kind_of(document)}")
    unknown = sorted(set(document) - set(KNOWN_SECTIONS))
    if unknown:
        raise ConfigError(f"configuration: unknown section {unknown[0]!r}")
    for name in UNSUPPORTED_SECTIONS:
        # An empty object still asks for the device (e.g. "entropy": {} is a default virtio-rng).
        if document.get(name) is not None and document.get(name) != []:
            raise ConfigError(f"{name}: this VMM does not support it yet")
    if "boot-source" not in document:
        raise ConfigError("configuration: missing required section 'boot-source'")
    if "machine-config" not in document:
        raise ConfigError("configuration: missing required section 'machine-config'")
    return VmConfig(
        _boot_source(document["boot-source"]),
        _machine_config(document["machine-config"]),
        _drives(document.get("drives")),
        _network_interfaces(document.get("network-interfaces")),
        _logger(document.get("logger")),
        _metrics(document.get("metrics")),
        _serial(document.get("serial")),
    )


def load_config(path: str | os.PathLike[str]) -> VmConfig:
    return parse_config(read_config_document(path))


def read_config_document(path: str | os.PathLike[str]) -> Any:
    """The JSON document of the config file at ``path``, read once (the API serves it as the
    VM's configuration; reading the file again could see another one)."""
    # The toolchain's reader (os-level calls, 64 KiB reads: see there). Imported here, not at
    # the top: the filters' set-up imports `jailer.policies` anyway, and only a config needs it.
    from jailer.policies import PolicyError, read_regular_file

    path = path_text(path)
    try:
        text = read_regular_file(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except PolicyError as error:  # a FIFO, directory or device: refused before it is read
        raise ConfigError(f"cannot read config file {path}: {error.reason}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        document = jsontext.loads(text, unique_keys=True)
    except jsontext.JsonError as error:
        raise ConfigError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid JSON: nested too deeply") from None
    except jsontext.DuplicateKey as duplicate:
        raise ConfigError(f"{path}: duplicate key {duplicate.key!r}") from None
    except ValueError as error:  # an integer beyond Python's 4300-digit conversion limit
        raise ConfigError(f"{path}: invalid JSON: {str(error).split(';')[0]}") from None
    return document


MAX_XAPIC_VCPUS = 255  # MADT processor-local-APIC entries carry 8-bit APIC ids

# stat() failures that mean "no such file" (as pathlib's exists() treats them; others raise).
_MISSING_ERRNOS = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _require_file(path: str, what: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno not in _MISSING_ERRNOS:
            raise ConfigError(f"{what} {path}: {error.strerror}") from None
        raise ConfigError(f"{what} not found: {path}") from None
    except ValueError:  # not encodable for the file system
        raise ConfigError(f"{what} not found: {path}") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{what} is not a regular file: {path}")


def check_resources(config: VmConfig, *, max_vcpus: int, host_memory_bytes: int) -> None:
    """Check the config against this host; devices this VMM lacks are refused here."""
    _require_file(config.boot_source.kernel_image_path, "kernel image")
    if config.boot_source.initrd_path is not None:
        _require_file(config.boot_source.initrd_path, "initrd")
    for drive in config.drives:
        _require_file(drive.path_on_host, f"drive {drive.drive_id!r} backing file")
    machine = config.machine_config
    if machine.vcpu_count > max_vcpus:
        raise ConfigError(f"machine-config.vcpu_count: {machine.vcpu_count} exceeds KVM's maximum of {max_vcpus}")
    if machine.vcpu_count > MAX_XAPIC_VCPUS:
        raise ConfigError(
            f"machine-config.vcpu_count: {machine.vcpu_count} exceeds {MAX_XAPIC_VCPUS}, the most vCPUs "
            "this VMM's xAPIC MADT entries can describe"
        )
    if machine.mem_size_mib * (1 << 20) > host_memory_bytes:
        raise ConfigError(
            f"machine-config.mem_size_mib: {machine.mem_size_mib} MiB exceeds host memory "
            f"({host_memory_bytes >> 20} MiB)"
        )
    if config.drives:
        raise ConfigError("drives: virtio-blk devices are not supported yet")
    if config.network_interfaces:
        raise ConfigError("network-interfaces: virtio-net devices are not supported yet")
