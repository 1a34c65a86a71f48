"""`vmm`: the command line of the Python KVM microVM monitor.

Firecracker-compatible where it applies: `vmm --config-file FILE --no-api` boots from a
Firecracker-format JSON and accepts the options the Firecracker jailer passes on.
Errors are one line on stderr and Firecracker's exit codes (152 bad configuration, 153
bad arguments, 148 seccomp violation, 1 other failures).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

USAGE = """\
usage: vmm --config-file FILE --no-api [options]

Boot a microVM from a Firecracker-format JSON configuration.

  --config-file FILE        the VM configuration (boot-source, machine-config, ...)
  --no-api                  run without an API socket (required: there is no API server yet)
  --id ID                   instance id used in log lines (default anonymous-instance)
  --boot-timer              log Guest-boot-time when the guest writes 123 to 0xC0000000
  --log-path FILE           append log lines to FILE instead of stderr
  --level LEVEL             Error, Warning, Info (default), Debug, Trace or Off
  --show-level              put the level into log lines (default on)
  --show-log-origin         accepted for Firecracker compatibility
  --metrics-path FILE       append metrics as JSON lines to FILE (at exit)
  --seccomp-filter FILE     per-thread seccomp policy, a JSON policy in jailer/policies format
                            (NOT Firecracker's compiled BPF blob); default: the shipped vmm.json
  --no-seccomp              no per-thread filters (debugging only)
  --test-devices            FOR TESTS ONLY: the seccomp-violation device on port 0x4f0
  --start-time-us N, --start-time-cpu-us N, --parent-cpu-time-us N
                            process start times the jailer passes on
  --version, --help
"""

EXIT_GENERIC = 1
EXIT_BAD_CONFIGURATION = 152
EXIT_ARG_PARSING = 153

_VALUE_OPTIONS = {
    "--config-file": "config_file",
    "--id": "instance_id",
    "--log-path": "log_path",
    "--level": "level",
    "--metrics-path": "metrics_path",
    "--seccomp-filter": "seccomp_filter",
    "--start-time-us": "start_time_us",
    "--start-time-cpu-us": "start_time_cpu_us",
    "--parent-cpu-time-us": "parent_cpu_time_us",
    "--api-sock": "api_sock",
}
_FLAGS = {
    "--no-api": "no_api",
    "--boot-timer": "boot_timer",
    "--no-seccomp": "no_seccomp",
    "--test-devices": "test_devices",
    "--show-level": "show_level",
    "--show-log-origin": "show_log_origin",
}
_INT_OPTIONS = ("start_time_us", "start_time_cpu_us", "parent_cpu_time_us")


class ArgumentError(Exception):
    pass


@dataclass
class Arguments:
    config_file: str | None = None
    instance_id: str | None = None
    log_path: str | None = None
    level: str | None = None
    metrics_path: str | None = None
    seccomp_filter: str | None = None
    start_time_us: str | None = None
    start_time_cpu_us: str | None = None
    parent_cpu_time_us: str | None = None
    api_sock: str | None = None
    no_api: bool = False
    boot_timer: bool = False
    no_seccomp: bool = False
    test_devices: bool = False
    show_level: bool = False
    show_log_origin: bool = False
    help: bool = False
    version: bool = False


def parse_arguments(argv: list[str]) -> Arguments:
    arguments = Arguments()
    index = 0
    while index < len(argv):
        option = argv[index]
        name, has_value, inline = option.partition("=")
        if name in _VALUE_OPTIONS:
            if has_value:
                value = inline
            elif index + 1 < len(argv):
                index += 1
                value = argv[index]
            else:
                raise ArgumentError(f"{name} needs a value")
            if getattr(arguments, _VALUE_OPTIONS[name]) is not None:
                raise ArgumentError(f"{name} given twice")
            setattr(arguments, _VALUE_OPTIONS[name], value)
        elif option in _FLAGS:
            setattr(arguments, _FLAGS[option], True)
        elif option in ("-h", "--help"):
            arguments.help = True
        elif option in ("-V", "--version"):
            arguments.version = True
        else:
            raise ArgumentError(f"unknown argument {option!r} (see --help)")
        index += 1
    for name in _INT_OPTIONS:
        value = getattr(arguments, name)
        if value is not None and not (value.isascii() and value.isdigit()):
            raise ArgumentError(f"--{name.replace('_', '-')} must be a non-negative integer, got {value!r}")
    if arguments.help or arguments.version:
        return arguments
    if arguments.config_file is None:
        raise ArgumentError("--config-file is required (there is no API server to configure the VM)")
    if not arguments.no_api:
        raise ArgumentError("the API server is not supported yet: pass --no-api")
    if arguments.no_seccomp and arguments.seccomp_filter is not None:
        raise ArgumentError("--no-seccomp and --seccomp-filter contradict each other")
    if arguments.instance_id is not None and not _valid_id(arguments.instance_id):
        raise ArgumentError(f"--id {arguments.instance_id!r}: use 1 to 64 letters, digits and dashes")
    return arguments


def _valid_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c.isascii() and (c.isalnum() or c == "-") for c in value)


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"vmm: {message}\n")
    return status


def main(argv: list[str] | None = None) -> int:
    try:
        arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    except ArgumentError as error:
        return _fail(str(error), EXIT_ARG_PARSING)
    if arguments.help:
        sys.stdout.write(USAGE)
        return 0
    if arguments.version:
        from vmm import __version__

        sys.stdout.write(f"vmm {__version__}\n")
        return 0
    from vmm.errors import ConfigError, VmmError

    try:
        status = _run(arguments)
    except KeyboardInterrupt:
        return _fail("interrupted before the VM started", 130)
    except ConfigError as error:
        return _fail(str(error), EXIT_BAD_CONFIGURATION)
    except VmmError as error:
        return _fail(str(error), EXIT_GENERIC)
    # Interpreter shutdown would run under the main thread's seccomp filter; the VM is
    # over and every log and metric is flushed, so leave directly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _open_logger(arguments: Arguments, config_logger: object) -> object:
    from vmm.config import LOG_LEVELS
    from vmm.errors import ConfigError
    from vmm.logger import Logger

    level = arguments.level or getattr(config_logger, "level", None) or "Info"
    canonical = {name.lower(): name for name in LOG_LEVELS}.get(level.lower())
    if canonical is None:
        raise ConfigError(f"--level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    path = arguments.log_path or getattr(config_logger, "log_path", None)
    try:
        return Logger.open(arguments.instance_id or "anonymous-instance", canonical, None if path is None else str(path))
    except OSError as error:
        raise ConfigError(f"cannot open the log file {path}: {error.strerror}") from None


def _run(arguments: Arguments) -> int:
    from vmm import builder, seccomp
    from vmm.config import load_config
    from vmm.errors import ConfigError, VmmError
    from vmm.metrics import Metrics
    from vmm.threads import set_os_thread_name

    set_os_thread_name("vmm")
    config = load_config(Path(arguments.config_file or ""))
    logger = _open_logger(arguments, config.logger)
    metrics_path = arguments.metrics_path or (str(config.metrics.metrics_path) if config.metrics else None)
    try:
        metrics = Metrics.open(metrics_path)
    except OSError as error:
        raise ConfigError(f"cannot open the metrics file {metrics_path}: {error.strerror}") from None
    if arguments.start_time_us is not None:
        import time

        startup = time.monotonic_ns() // 1000 - int(arguments.start_time_us)
        metrics.increment("api_server.process_startup_time_us", max(startup, 0))

    filters = None
    if arguments.no_seccomp:
        sys.stderr.write("vmm: WARNING: --no-seccomp: per-thread seccomp filters are disabled (debugging only)\n")
    else:
        filters = seccomp.compile_filters(
            Path(arguments.seccomp_filter) if arguments.seccomp_filter else None, ["vmm", "vcpu"]
        )

        def report(line: str) -> None:
            logger.write_raw(logger.format("Error", line))
            if logger.fd != 2:
                logger.write_raw(f"vmm: {line}\n", fd=2)

        reporter = seccomp.ViolationReporter(
            seccomp.syscall_names(),
            seccomp.current_thread_name,
            report,
            metrics.flush,
            lambda: metrics.increment("seccomp.num_faults"),
        )
        reporter.install()

    options = builder.VmmOptions(
        instance_id=arguments.instance_id or "anonymous-instance",
        boot_timer=arguments.boot_timer,
        test_devices=arguments.test_devices,
        filters=filters,
    )
    try:
        machine = builder.build_machine(config, options, logger, metrics)
    except VmmError:
        raise
    except OSError as error:
        raise VmmError(f"cannot build the VM: {error.strerror or error}") from None
    return machine.run()
