"""vCPU threads: KVM_RUN (without the GIL) and the dispatch of its exits.

PIO and MMIO exits go to the buses; everything that ends the VM (exit port, reset,
triple fault, system events, internal errors) becomes one `Stop` for the main thread.
"""

from __future__ import annotations

import mmap
import struct

from vmm.errors import VmmError
from vmm.events import EventQueue, Stop
from vmm.kvm import ioctls
from vmm.kvm import run as run_page
from vmm.threads import Thread

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from vmm.bus import Bus
    from vmm.kvm.system import Vcpu
    from vmm.memory import GuestMemory
    from vmm.metrics import Metrics

GENERIC_ERROR_STATUS = 1

_EXIT_REASON_OFFSET = run_page.EXIT_REASON_OFFSET
_EXIT_OFFSET = run_page.EXIT_OFFSET
_IO_FORMAT = run_page.IO_FORMAT
_MMIO_FORMAT = run_page.MMIO_FORMAT
_MMIO_DATA_OFFSET = run_page.MMIO_DATA_OFFSET
_IO_IN, _IO_OUT, _MMIO_READ, _MMIO_WRITE = range(4)
_COUNTER_NAMES = ("exit_io_in", "exit_io_out", "exit_mmio_read", "exit_mmio_write")

_SYSTEM_EVENTS = {
    ioctls.KVM_SYSTEM_EVENT_SHUTDOWN: "shutdown",
    ioctls.KVM_SYSTEM_EVENT_RESET: "reset",
    ioctls.KVM_SYSTEM_EVENT_CRASH: "crash",
}


class VcpuThread(Thread):
    def __init__(
        self,
        vcpu: Vcpu,
        *,
        pio: Bus,
        mmio: Bus,
        events: EventQueue,
        metrics: Metrics,
        memory: GuestMemory,
        filter_program: bytes | None,
    ) -> None:
        super().__init__(f"vcpu{vcpu.index}")
        self.vcpu = vcpu
        self.pio = pio
        self.mmio = mmio
        self.events = events
        self.metrics = metrics
        self.memory = memory
        self.filter_program = filter_program
        self.counts = [0] * len(_COUNTER_NAMES)

    def run(self) -> None:
        try:
            if self.filter_program is not None:
                from vmm import seccomp

                seccomp.install(self.filter_program)
            self._loop()
        except VmmError as error:
            self.events.post_stop(Stop(GENERIC_ERROR_STATUS, f"{self.name}: {error}", "Error"))
        except Exception as error:  # a bug must still end the VM with a report, not hang it
            self.events.post_stop(
                Stop(GENERIC_ERROR_STATUS, f"{self.name}: internal error: {type(error).__name__}: {error}", "Error")
            )

    def kick(self) -> None:
        """Make KVM_RUN return at once (the caller also signals the thread)."""
        run_page.request_immediate_exit(self.vcpu.run_map)

    def _loop(self) -> None:
        # The hot path: fields are read with struct from the shared kvm_run page (one call
        # per exit instead of a ctypes object per field); counters are plain ints.
        vcpu, events, page = self.vcpu, self.events, self.vcpu.run_map
        unpack_from, pio_read, pio_write = struct.unpack_from, self.pio.read, self.pio.write
        counts = self.counts
        kvm_run, fd, request = vcpu.kvm_run_function, vcpu.fd, ioctls.KVM_RUN
        while not events.stopping:
            if kvm_run(fd, request, 0) < 0 and vcpu.run_failed():
                continue  # EINTR/EAGAIN: a kick or a ptrace stop; the loop condition decides
            (reason,) = unpack_from("<I", page, _EXIT_REASON_OFFSET)
            if reason == ioctls.KVM_EXIT_IO:
                direction, size, port, count, offset = unpack_from(_IO_FORMAT, page, _EXIT_OFFSET)
                if direction == ioctls.KVM_EXIT_IO_OUT:
                    counts[_IO_OUT] += 1
                    if count == 1:
                        pio_write(port, page[offset : offset + size])
                    else:
                        for k in range(count):
                            pio_write(port, page[offset + k * size : offset + (k + 1) * size])
                else:
                    counts[_IO_IN] += 1
                    data = pio_read(port, size) if count == 1 else b"".join(pio_read(port, size) for _ in range(count))
                    page[offset : offset + len(data)] = data
            elif reason == ioctls.KVM_EXIT_MMIO:
                self._mmio(page)
            else:
                events.post_stop(self._final_exit(reason))
                return

    def _mmio(self, page: mmap.mmap) -> None:
        address, data, length, is_write = struct.unpack_from(_MMIO_FORMAT, page, _EXIT_OFFSET)
        length = min(length, 8)
        if is_write:
            self.counts[_MMIO_WRITE] += 1
            self.mmio.write(address, data[:length])
        else:
            self.counts[_MMIO_READ] += 1
            page[_MMIO_DATA_OFFSET : _MMIO_DATA_OFFSET + length] = self.mmio.read(address, length)

    def counters(self) -> dict[str, int]:
        """This thread's exit counts, for the metrics file (summed over vCPUs there)."""
        return {f"vcpu.{name}": self.counts[index] for index, name in enumerate(_COUNTER_NAMES)}

    def _where(self) -> str:
        try:
            regs = self.vcpu.get_regs()
        except VmmError:
            return "RIP unknown"
        text = f"RIP {regs.rip:#x}"
        code = None
        try:
            sregs = self.vcpu.get_sregs()
            # Without paging (or within the boot identity map) RIP+CS base is a guest-physical address.
            linear = sregs.cs.base + regs.rip
            if not sregs.cr0 & 0x8000_0000 or linear < (1 << 30):
                code = self.memory.read(linear, 16)
        except VmmError:
            code = None
        if code is not None:
            text += f", code at RIP: {code.hex(' ')}"
        return text

    def _final_exit(self, reason: int) -> Stop:
        page = self.vcpu.run_map
        name = self.name
        if reason == ioctls.KVM_EXIT_SHUTDOWN:
            return Stop(0, f"{name}: guest shut down (KVM_EXIT_SHUTDOWN: triple fault) at {self._where()}", "Warning")
        if reason == ioctls.KVM_EXIT_HLT:
            return Stop(0, f"{name}: guest halted (KVM_EXIT_HLT) at {self._where()}")
        if reason == ioctls.KVM_EXIT_SYSTEM_EVENT:
            kind = run_page.system_event_type(page)
            label = _SYSTEM_EVENTS.get(kind, f"type {kind}")
            if kind == ioctls.KVM_SYSTEM_EVENT_CRASH:
                return Stop(GENERIC_ERROR_STATUS, f"{name}: guest crashed (KVM_EXIT_SYSTEM_EVENT crash)", "Error")
            return Stop(0, f"{name}: guest requested {label} (KVM_EXIT_SYSTEM_EVENT)")
        if reason == ioctls.KVM_EXIT_INTERNAL_ERROR:
            suberror, data = run_page.internal_error(page)
            words = " ".join(f"{word:#x}" for word in data)
            return Stop(
                GENERIC_ERROR_STATUS,
                f"{name}: KVM internal error, suberror {suberror} at {self._where()}"
                + (f", data: {words}" if words else ""),
                "Error",
            )
        if reason == ioctls.KVM_EXIT_FAIL_ENTRY:
            return Stop(
                GENERIC_ERROR_STATUS,
                f"{name}: VM entry failed, hardware reason {run_page.fail_entry_reason(page):#x} "
                f"at {self._where()}",
                "Error",
            )
        label = ioctls.EXIT_REASON_NAMES.get(reason, str(reason))
        return Stop(GENERIC_ERROR_STATUS, f"{name}: unexpected exit KVM_EXIT_{label} at {self._where()}", "Error")
