"""Build a microVM from a validated config and run it to its end.

Order: VM with TSS and guest RAM slots, then the in-kernel irqchip (as Firecracker); ACPI
tables, then the kernel; devices on the buses; vCPUs configured for the entry protocol; the
in-kernel PIT last (as QEMU, which creates it after its vCPUs). `start_vm` begins as soon as
the configuration is checked: it maps guest RAM and creates the VM, its memory slots and its
irqchip. The PIT waits for the end of the build because of the kernel: each of these ioctls
waits for SRCU grace periods, and one that follows a burst of them (KVM_CREATE_IRQCHIP
registers four devices) returns only ~7 ms after that burst on our PVM hosts, whatever it
does. Memory slots made before the irqchip take ~0.2 ms; KVM_CREATE_PIT2 made after the
reporter, the filters, the guest, the ACPI tables and the vCPUs finds that time passed and
takes ~0.1 ms. (A helper thread that waited for it instead cost more in GIL hand-offs
between CPUs than it saved.)
`Machine.run` then compiles nothing (filters are compiled before the build finishes),
starts the vCPU threads, installs the main thread's filter and serves events until a
`Stop` arrives.
"""

from __future__ import annotations

import _signal
import os
import select

from vmm.bus import Bus
from vmm.config import VmConfig, check_resources
from vmm.devices.boot_timer import Timestamp
from vmm.errors import VmmError
from vmm.events import EventQueue, Stop
from vmm.logger import Logger
from vmm.memory import BOOT_TIMER_ADDRESS, BOOT_TIMER_SIZE, GuestMemory
from vmm.metrics import Metrics

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Callable

    from vmm.devices.serial import Serial
    from vmm.kvm.system import Kvm, Vm
    from vmm.vcpu import VcpuThread

TSS_ADDRESS = 0xFFFB_D000
COM1_PORT, COM1_SIZE, COM1_GSI = 0x3F8, 8, 4
I8042_PORT, I8042_SIZE, I8042_GSI = 0x60, 5, 1
DEFAULT_CMDLINE = "console=ttyS0 reboot=k panic=1 pci=off"
KICK_SIGNAL = _signal.SIGUSR1
# `_signal`, not `signal`: the latter's enums import `enum` (start-up path: see `vmm`).
STOP_SIGNAL_NAMES = {_signal.SIGTERM: "SIGTERM", _signal.SIGINT: "SIGINT", _signal.SIGHUP: "SIGHUP"}
METRICS_FLUSH_INTERVAL_MS = 60_000  # Firecracker's periodic metrics flush
STDIN_FD = 0
SERIAL_OUT_FD = 1


class VmmOptions:
    __slots__ = ("instance_id", "boot_timer", "test_devices", "filters", "serial_input")

    def __init__(
        self,
        instance_id: str = "anonymous-instance",
        boot_timer: bool = False,
        test_devices: bool = False,
        filters: dict[str, bytes] | None = None,
        serial_input: bool = True,
    ) -> None:
        self.instance_id = instance_id
        self.boot_timer = boot_timer
        self.test_devices = test_devices
        self.filters = filters
        self.serial_input = serial_input


class Machine:
    __slots__ = (
        "memory",
        "vcpus",
        "events",
        "logger",
        "metrics",
        "serial",
        "pio",
        "filters",
        "serial_input",
        "description",
        "_stdin_open",
    )

    def __init__(
        self,
        memory: GuestMemory,
        vcpus: list[VcpuThread],
        events: EventQueue,
        logger: Logger,
        metrics: Metrics,
        serial: Serial,
        pio: Bus,
        filters: dict[str, bytes] | None,
        serial_input: bool = True,
        description: str = "",
    ) -> None:
        self.memory = memory
        self.vcpus = vcpus
        self.events = events
        self.logger = logger
        self.metrics = metrics
        self.serial = serial
        self.pio = pio
        self.filters = filters
        self.serial_input = serial_input
        self.description = description
        self._stdin_open = True

    def run(self) -> int:
        """Start the vCPUs, serve the event loop until the VM stops; return the exit status."""
        from vmm.threads import set_os_thread_name

        set_os_thread_name("vmm")
        _signal.signal(KICK_SIGNAL, lambda _signum, _frame: None)
        for stop_signal in STOP_SIGNAL_NAMES:
            _signal.signal(stop_signal, self._on_stop_signal)
        if self.description:
            self.logger.info(self.description)
        saved_terminal = self._raw_terminal()
        from vmm import bundle

        bundle.release()
        _release_free_heap()
        for thread in self.vcpus:
            thread.start()
        if self.filters is not None:
            from vmm import seccomp

            seccomp.install(self.filters["vmm"])
        stop = self._event_loop()
        self._stop_vcpus()
        if saved_terminal is not None:
            import termios

            termios.tcsetattr(STDIN_FD, termios.TCSANOW, saved_terminal)
        self.logger.log(stop.level, stop.message)
        self.metrics.flush()
        return stop.status

    def _raw_terminal(self) -> list | None:
        """A terminal on stdin goes raw (keys, Ctrl-C included, go to the guest, as with
        Firecracker); returns the mode to restore, or None when stdin is no terminal."""
        if not self.serial_input or not os.isatty(STDIN_FD):
            return None
        import termios

        saved = termios.tcgetattr(STDIN_FD)
        mode = termios.tcgetattr(STDIN_FD)
        mode[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP | termios.IXON)
        mode[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(STDIN_FD, termios.TCSANOW, mode)
        return saved

    def _on_stop_signal(self, signum: int, _frame: object) -> None:
        """SIGTERM/SIGINT/SIGHUP stop the VM like a guest exit would: threads stopped, logs and
        metrics flushed, status 128 + signal number."""
        name = STOP_SIGNAL_NAMES[signum]
        self.events.post_stop(Stop(128 + signum, f"received {name}: stopping the VM", "Warning"))

    def _event_loop(self) -> Stop:
        poller = select.poll()
        poller.register(self.events.read_fd, select.POLLIN)
        stdin_registered = False
        while True:
            want_stdin = self.serial_input and self._stdin_open and self.serial.input_room > 0
            if want_stdin != stdin_registered:
                if want_stdin:
                    poller.register(STDIN_FD, select.POLLIN)
                else:
                    poller.unregister(STDIN_FD)
                stdin_registered = want_stdin
            # With a full receive FIFO, look again shortly: the guest drains it on its own.
            timeout = METRICS_FLUSH_INTERVAL_MS if want_stdin or not self._stdin_open else 50
            ready = poller.poll(timeout)
            if not ready and timeout == METRICS_FLUSH_INTERVAL_MS:
                self.metrics.flush()
            for fd, mask in ready:
                if fd == STDIN_FD:
                    self._serial_input(mask)
            for call in self.events.drain():
                call()
            if self.events.stop is not None:
                return self.events.stop

    def _serial_input(self, mask: int) -> None:
        data = b""
        if mask & select.POLLIN:
            try:
                data = os.read(STDIN_FD, self.serial.input_room)
            except OSError:
                data = b""
        if not data:
            self._stdin_open = False
            return
        with self.pio.lock_for(COM1_PORT):
            self.serial.enqueue_input(data)

    def _stop_vcpus(self) -> None:
        for thread in self.vcpus:
            thread.kick()
        for thread in self.vcpus:
            if thread.is_alive() and thread.ident is not None:
                try:
                    _signal.pthread_kill(thread.ident, KICK_SIGNAL)
                except ProcessLookupError:
                    pass
        for thread in self.vcpus:
            thread.join(timeout=5)


def _release_free_heap() -> None:
    """Hand the heap pages malloc keeps free after the build (the config text, the kernel
    image, CPUID tables: ~150 KiB with the test guests) back to the kernel, before the VM
    runs: the VMM's private memory is a product target. glibc's malloc_trim; a no-op
    where the C library has none."""
    from jailer.native import c_size_t
    from vmm.libc import libc

    try:
        trim = libc.malloc_trim
    except AttributeError:
        return
    trim.argtypes = [c_size_t]
    trim(0)


def host_memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _serial_writer(fd: int):
    def write(data: bytes) -> None:
        try:
            os.write(fd, data)
        except OSError:
            pass  # a closed console or a full pipe must not stop the guest

    return write


def _open_serial_output(config: VmConfig) -> int:
    path = config.serial.serial_out_path if config.serial is not None else None
    if path is None:
        return SERIAL_OUT_FD
    from vmm.errors import ConfigError

    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as error:
        raise ConfigError(f"serial.serial_out_path: cannot open {path}: {error.strerror}") from None


class VmSetup:
    """What `start_vm` made: the VM with its TSS, guest RAM slots and in-kernel irqchip, and
    the guest RAM. `add_pit` completes it once the rest of the build is done (see above)."""

    __slots__ = ("start_time", "kvm", "memory", "vm", "_pit_added")

    def __init__(self, kvm: Kvm, memory: GuestMemory, start_time: Timestamp) -> None:
        self.start_time = start_time  # the start of the build, for the boot timer
        self.kvm = kvm
        self.memory = memory
        self._pit_added = False
        self.vm: Vm | None = None
        try:
            self.vm = kvm.create_vm()
            self.vm.set_tss_address(TSS_ADDRESS)
            for index, (guest_address, length) in enumerate(memory.regions):
                self.vm.add_memory(guest_address, length, memory.host_address(index))
            self.vm.create_irqchip()
        except BaseException:
            self.discard()
            raise

    def add_pit(self) -> None:
        """KVM_CREATE_PIT2, once."""
        assert self.vm is not None
        if not self._pit_added:
            self.vm.create_pit2()
            self._pit_added = True

    def discard(self) -> None:
        """Close what was made (after a failed build)."""
        if self.vm is not None:
            self.vm.close()
            self.vm = None
        self.memory.close()
        self.kvm.close()


def start_vm(config: VmConfig) -> VmSetup:
    """Check the configuration against this host, map guest RAM, create the VM with its memory
    slots and irqchip."""
    from vmm.kvm.system import Kvm

    start_time = Timestamp.now()
    kvm = Kvm()
    try:
        check_resources(config, max_vcpus=kvm.max_vcpus(), host_memory_bytes=host_memory_bytes())
        memory = GuestMemory(config.machine_config.mem_size_mib << 20)
    except BaseException:
        kvm.close()
        raise
    return VmSetup(kvm, memory, start_time)


def build_machine(
    config: VmConfig, options: VmmOptions, logger: Logger, metrics: Metrics, setup: VmSetup | None = None
) -> Machine:
    """Everything up to (not including) the first KVM_RUN, continuing ``setup`` when given
    (`start_vm` for ``config``), else starting it. Raises VmmError subclasses."""
    if setup is None:
        setup = start_vm(config)
    opened: list[Callable[[], None]] = []
    try:
        return _build_on(setup, config, options, logger, metrics, opened)
    except BaseException:
        # A failed build (the API lets the client try again) keeps nothing it made.
        for close in reversed(opened):
            try:
                close()
            except OSError:
                pass
        setup.discard()
        raise


def _build_on(
    setup: VmSetup,
    config: VmConfig,
    options: VmmOptions,
    logger: Logger,
    metrics: Metrics,
    opened: list[Callable[[], None]],
) -> Machine:
    """The build itself; what it opens is added to ``opened`` (to be closed if it fails)."""
    from vmm import cpu
    from vmm.devices.debug_exit import PORT as DEBUG_EXIT_PORT
    from vmm.devices.debug_exit import DebugExit
    from vmm.devices.i8042 import I8042
    from vmm.devices.serial import Serial
    from vmm.vcpu import VcpuThread

    start, kvm, memory = setup.start_time, setup.kvm, setup.memory
    machine_config = config.machine_config
    entry = _load_guest(config, memory, machine_config.vcpu_count)

    events = EventQueue()
    opened.append(events.close)
    serial_fd = _open_serial_output(config)
    if serial_fd != SERIAL_OUT_FD:
        opened.append(lambda: os.close(serial_fd))

    def pulse(gsi: int):
        def raise_interrupt() -> None:
            vm.irq_line(gsi, 1)
            vm.irq_line(gsi, 0)

        return raise_interrupt

    def clean_reset() -> None:
        events.post_stop(Stop(0, "guest requested a reset through the i8042 controller (0xFE on port 0x64)"))

    def exit_port(status: int) -> None:
        events.post_stop(Stop(status, f"guest wrote to the exit port {DEBUG_EXIT_PORT:#x}: exit status {status}"))

    pio = Bus("PIO")
    mmio = Bus("MMIO")
    serial = Serial(_serial_writer(serial_fd), pulse(COM1_GSI))
    pio.insert(serial, COM1_PORT, COM1_SIZE)
    pio.insert(I8042(clean_reset, pulse(I8042_GSI)), I8042_PORT, I8042_SIZE)
    pio.insert(DebugExit(exit_port), DEBUG_EXIT_PORT, 1)
    if options.test_devices:
        from vmm.devices.violation import PORT as VIOLATION_PORT
        from vmm.devices.violation import ViolationDevice

        pio.insert(ViolationDevice(events.post_call, logger.warning), VIOLATION_PORT, 1)
    if options.boot_timer:
        from vmm.devices.boot_timer import BootTimer

        mmio.insert(BootTimer(start, logger.info), BOOT_TIMER_ADDRESS, BOOT_TIMER_SIZE)

    supported = kvm.supported_cpuid()
    vm = setup.vm
    assert vm is not None
    threads = []
    for index in range(machine_config.vcpu_count):
        vcpu = vm.create_vcpu(index)
        cpu.configure_vcpu(vcpu, memory, supported, machine_config.vcpu_count, entry if index == 0 else None)
        program = options.filters["vcpu"] if options.filters is not None else None
        thread = VcpuThread(vcpu, pio=pio, mmio=mmio, events=events, metrics=metrics, memory=memory, filter_program=program)
        metrics.add_source(thread.counters)
        threads.append(thread)
    setup.add_pit()
    description = (
        f"starting the VM: {machine_config.vcpu_count} vCPU(s), {machine_config.mem_size_mib} MiB, "
        f"{entry.protocol} entry at {entry.entry_address:#x}, "
        f"seccomp {'per-thread filters' if options.filters is not None else 'DISABLED'}"
    )
    return Machine(
        memory, threads, events, logger, metrics, serial, pio, options.filters, options.serial_input, description
    )


def _load_guest(config: VmConfig, memory: GuestMemory, vcpu_count: int):
    from vmm.acpi import AcpiError, build_acpi_tables
    from vmm.loader import LoaderError, load_kernel

    boot = config.boot_source
    try:
        rsdp = build_acpi_tables(memory, vcpu_count=vcpu_count, mmio_devices=[])
        return load_kernel(
            memory,
            boot.kernel_image_path,
            cmdline=boot.boot_args if boot.boot_args is not None else DEFAULT_CMDLINE,
            initrd_path=boot.initrd_path,
            rsdp_address=rsdp,
        )
    except (LoaderError, AcpiError) as error:
        raise VmmError(str(error)) from None
