"""`vmm`: the command line of the Python KVM microVM monitor.

Firecracker-compatible where it applies: `vmm --config-file FILE --no-api` boots from a
Firecracker-format JSON and accepts the options the Firecracker jailer passes on.
Errors are one line on stderr and Firecracker's exit codes (152 bad configuration, 153
bad arguments, 148 seccomp violation, 1 other failures).
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    import socket

    from vmm.builder import Machine, VmmOptions, VmSetup
    from vmm.config import LoggerConfig, VmConfig
    from vmm.logger import Logger
    from vmm.metrics import Metrics

USAGE = """\
usage: vmm [--api-sock PATH] [--config-file FILE] [options]
       vmm --config-file FILE --no-api [options]

Boot a microVM from a Firecracker-format JSON configuration, or one built through
Firecracker's HTTP API on a Unix socket.

  --api-sock PATH           the API socket (default /run/firecracker.socket)
  --config-file FILE        the VM configuration (boot-source, machine-config, ...); with the
                            API on, the VM starts at once and the API serves the running VM
  --no-api                  run without an API socket (then --config-file is required)
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
START_ANSWER_TIMEOUT_SECONDS = 5.0  # how long a VM started through the API waits for its 204 to be sent
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


class Arguments:
    """The parsed command line: every value option (a string or None) and flag (a bool)."""

    __slots__ = (*_VALUE_OPTIONS.values(), *_FLAGS.values(), "help", "version")

    def __init__(
        self,
        config_file: str | None = None,
        instance_id: str | None = None,
        log_path: str | None = None,
        level: str | None = None,
        metrics_path: str | None = None,
        seccomp_filter: str | None = None,
        start_time_us: str | None = None,
        start_time_cpu_us: str | None = None,
        parent_cpu_time_us: str | None = None,
        api_sock: str | None = None,
        no_api: bool = False,
        boot_timer: bool = False,
        no_seccomp: bool = False,
        test_devices: bool = False,
        show_level: bool = False,
        show_log_origin: bool = False,
        help: bool = False,
        version: bool = False,
    ) -> None:
        self.config_file = config_file
        self.instance_id = instance_id
        self.log_path = log_path
        self.level = level
        self.metrics_path = metrics_path
        self.seccomp_filter = seccomp_filter
        self.start_time_us = start_time_us
        self.start_time_cpu_us = start_time_cpu_us
        self.parent_cpu_time_us = parent_cpu_time_us
        self.api_sock = api_sock
        self.no_api = no_api
        self.boot_timer = boot_timer
        self.no_seccomp = no_seccomp
        self.test_devices = test_devices
        self.show_level = show_level
        self.show_log_origin = show_log_origin
        self.help = help
        self.version = version


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
            if not value:
                raise ArgumentError(f"{name} needs a value, got an empty one")
            setattr(arguments, _VALUE_OPTIONS[name], value)
        elif option in _FLAGS:
            if getattr(arguments, _FLAGS[option]):
                raise ArgumentError(f"{option} given twice")
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
        if value is None:
            continue
        significant = value.lstrip("0") or "0"  # compared as text: int() refuses over 4300 digits
        if not (value.isascii() and value.isdigit()) or len(significant) > 20 or int(significant) >= 1 << 64:
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise ArgumentError(f"--{name.replace('_', '-')} must be an integer from 0 to 2^64-1, got {shown!r}")
        setattr(arguments, name, significant)
    if arguments.help or arguments.version:
        return arguments
    if arguments.config_file is None and arguments.no_api:
        raise ArgumentError("--no-api needs --config-file (nothing else can configure the VM)")
    if arguments.api_sock is not None and arguments.no_api:
        raise ArgumentError("--api-sock and --no-api contradict each other")
    if arguments.no_seccomp and arguments.seccomp_filter is not None:
        raise ArgumentError("--no-seccomp and --seccomp-filter contradict each other")
    if arguments.instance_id is not None and not _valid_id(arguments.instance_id):
        raise ArgumentError(f"--id {arguments.instance_id!r}: use 1 to 64 letters, digits and dashes")
    return arguments


def _valid_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(c.isascii() and (c.isalnum() or c == "-") for c in value)


def _startup_over() -> None:
    """Turn the cyclic garbage collector back on, which `main` turned off. Start-up makes
    objects that live as long as the VMM (modules, the configuration, the VM's objects) and
    next to no garbage, yet the collector traverses all of them again and again as they grow:
    ~2.5 ms of a ~33 ms start on our hosts. They are frozen first (`gc.freeze`: left out of
    every later collection, so turning it on costs no long pause), and what the running VMM
    makes is collected as usual."""
    gc.freeze()
    gc.enable()


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"vmm: {message}\n")
    return status


def main(argv: list[str] | None = None) -> int:
    collecting = gc.isenabled()
    gc.disable()  # until the start-up is over: see `_startup_over`
    try:
        return _main(argv)
    finally:  # reached only by a run that did not start a VM (that one leaves with os._exit)
        # API mode turns it on (`_startup_over`) before its build, which may still fail.
        (gc.enable if collecting else gc.disable)()


def _main(argv: list[str] | None) -> int:
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
        _remove_created()
        return _fail("interrupted before the VM started", 130)
    except ConfigError as error:
        _remove_created()
        return _fail(str(error), EXIT_BAD_CONFIGURATION)
    except VmmError as error:
        _remove_created()
        return _fail(str(error), EXIT_GENERIC)
    # Interpreter shutdown would run under the main thread's seccomp filter; the VM is
    # over and every log and metric is flushed, so leave directly.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


DEFAULT_API_SOCK = "/run/firecracker.socket"


class Outputs:
    """The log and metrics sinks; replaced once the configuration is known (it may name
    them), which is why the violation reporter reads them through this holder."""

    __slots__ = ("logger", "metrics")

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self.logger = logger
        self.metrics = metrics


# Files this run created for its outputs (log, metrics, API socket): removed again when the
# run fails before the VM starts, so a bad configuration leaves nothing behind.
_created: list[str] = []


class _CreationNote:
    """Adds ``path`` to `_created` if it did not exist before the block and does after it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.existed = path is None or os.path.lexists(path)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exception: object) -> None:
        if not self.existed and self.path is not None and os.path.lexists(self.path):
            _created.append(self.path)


def _remove_created() -> None:
    while _created:
        try:
            os.unlink(_created.pop())
        except OSError:
            pass


def _open_logger(arguments: Arguments, config_logger: LoggerConfig | None) -> Logger:
    from vmm.config import LOG_LEVELS
    from vmm.errors import ConfigError
    from vmm.logger import Logger

    level = arguments.level or (config_logger.level if config_logger else None) or "Info"
    canonical = {name.lower(): name for name in LOG_LEVELS}.get(level.lower())
    if canonical is None:
        raise ConfigError(f"--level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    path = arguments.log_path or (config_logger.log_path if config_logger else None)
    try:
        with _CreationNote(path):
            return Logger.open(arguments.instance_id or "anonymous-instance", canonical, None if path is None else str(path))
    except OSError as error:
        raise ConfigError(f"cannot open the log file {path}: {error.strerror}") from None


def _open_metrics(arguments: Arguments, config: VmConfig | None) -> Metrics:
    from vmm.errors import ConfigError
    from vmm.metrics import Metrics

    path = arguments.metrics_path or (str(config.metrics.metrics_path) if config and config.metrics else None)
    try:
        with _CreationNote(path):
            metrics = Metrics.open(path)
    except OSError as error:
        raise ConfigError(f"cannot open the metrics file {path}: {error.strerror}") from None
    if arguments.start_time_us is not None:
        import time

        startup = time.monotonic_ns() // 1000 - int(arguments.start_time_us)
        metrics.increment("api_server.process_startup_time_us", max(startup, 0))
    return metrics


def _install_reporter(outputs: Outputs) -> None:
    from vmm import seccomp
    from vmm.threads import current_name

    def report(line: str) -> None:
        logger = outputs.logger
        logger.write_raw(logger.format("Error", line))
        if logger.fd != 2:
            logger.write_raw(f"vmm: {line}\n", fd=2)

    seccomp.ViolationReporter(
        seccomp.syscall_names(),
        current_name,
        report,
        lambda: outputs.metrics.flush(),
        lambda: outputs.metrics.increment("seccomp.num_faults"),
    ).install()


def _run(arguments: Arguments) -> int:
    from vmm import bundle

    bundle.install()  # the rest of the start path comes from one file (see `vmm.bundle`)
    from vmm import builder
    from vmm.config import parse_config, read_config_document
    from vmm.threads import set_os_thread_name

    set_os_thread_name("vmm")
    document = read_config_document(arguments.config_file) if arguments.config_file else None
    config = parse_config(document) if arguments.config_file else None
    outputs = Outputs(_open_logger(arguments, config.logger if config else None), _open_metrics(arguments, config))
    api_socket = None
    if not arguments.no_api:
        from vmm import api

        socket_path = arguments.api_sock or DEFAULT_API_SOCK
        with _CreationNote(socket_path):
            api_socket = api.bind_socket(socket_path)

    if arguments.no_seccomp:
        sys.stderr.write("vmm: WARNING: --no-seccomp: per-thread seccomp filters are disabled (debugging only)\n")
    # The VM and its irqchip first: the PIT, made at the end of the build, should come ~7 ms
    # after the irqchip (see `vmm.builder`), and the reporter, the filters and the guest fill
    # that time. The reporter is still in place before any thread or filter of ours exists.
    setup = _start_vm(config) if config is not None else None
    try:
        if not arguments.no_seccomp:
            _install_reporter(outputs)
        options = builder.VmmOptions(
            instance_id=arguments.instance_id or "anonymous-instance",
            boot_timer=arguments.boot_timer,
            test_devices=arguments.test_devices,
            filters=None if arguments.no_seccomp else _compile_filters(arguments, api_socket is not None),
        )
    except BaseException:
        if setup is not None:
            setup.discard()
        raise
    if api_socket is None:
        assert config is not None
        machine = _build(config, options, outputs, setup)
        _startup_over()
        return machine.run()
    return _run_with_api(arguments, api_socket, config, document, options, outputs, setup)


def _compile_filters(arguments: Arguments, with_api: bool) -> dict[str, bytes]:
    from vmm import seccomp

    policy_path = None
    if arguments.seccomp_filter:
        from pathlib import Path

        policy_path = Path(arguments.seccomp_filter)
    return seccomp.compile_filters(policy_path, ["vmm", "vcpu"] + (["api"] if with_api else []))


def _start_vm(config: VmConfig) -> VmSetup:
    from vmm import builder
    from vmm.errors import VmmError

    try:
        return builder.start_vm(config)
    except VmmError:
        raise
    except OSError as error:
        raise VmmError(f"cannot build the VM: {error.strerror or error}") from None


def _build(config: VmConfig, options: VmmOptions, outputs: Outputs, setup: VmSetup | None = None) -> Machine:
    from vmm import builder
    from vmm.errors import VmmError

    try:
        return builder.build_machine(config, options, outputs.logger, outputs.metrics, setup)
    except VmmError:
        raise
    except OSError as error:
        raise VmmError(f"cannot build the VM: {error.strerror or error}") from None


def _run_with_api(
    arguments: Arguments,
    api_socket: socket.socket,
    config: VmConfig | None,
    document: object,
    options: VmmOptions,
    outputs: Outputs,
    setup: VmSetup | None,
) -> int:
    """The API thread collects the configuration (unless a file gave it: ``document``, the
    file's JSON as read once); the main thread builds the VM when `InstanceStart` arrives,
    answering the API with the outcome."""
    import queue

    from vmm import __version__, api
    from vmm.config import parse_config
    from vmm.errors import VmmError

    requests: queue.SimpleQueue[tuple[dict[str, object], queue.SimpleQueue[str | None]]] = queue.SimpleQueue()

    def start_instance(document: dict[str, object]) -> str | None:
        answer: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        requests.put((document, answer))
        return answer.get()

    try:
        state = api.ApiState(options.instance_id, __version__, document if config is not None else None)
        server = api.ApiServer(
            api_socket,
            state,
            start_instance=start_instance,
            flush_metrics=lambda: outputs.metrics.flush(),
            filter_program=options.filters["api"] if options.filters is not None else None,
        )
    except BaseException as error:
        if setup is not None:
            setup.discard()
        if isinstance(error, OSError):
            raise VmmError(f"cannot start the API server: {error.strerror or error}") from None
        raise
    _startup_over()  # before the API thread serves: a client's requests are no start-up
    server.start()
    machine = _build(config, options, outputs, setup) if config is not None else None
    while machine is None:
        try:
            pending, answer = requests.get(timeout=0.5)  # wakes for signal handlers too
        except queue.Empty:
            continue
        try:
            config = parse_config(pending)
            outputs.logger = _open_logger(arguments, config.logger)
            outputs.metrics = _open_metrics(arguments, config)
            machine = _build(config, options, outputs)
        except VmmError as error:
            answer.put(str(error))
            continue
        answer.put(None)
        server.wait_start_answered(START_ANSWER_TIMEOUT_SECONDS)
    return machine.run()
