"""Thin wrappers over /dev/kvm, a VM fd and a vCPU fd.

ioctls go through libc via ctypes (`jailer.native`; `argtypes=[c_int, c_ulong, c_void_p]`), which takes
64-bit integer arguments, any buffer size, returns the ioctl's own return value and
releases the GIL (so a vCPU thread blocked in KVM_RUN never stalls the others).
"""

from __future__ import annotations

import errno as errno_module
import mmap
import os

from vmm.errors import KvmError
from jailer.native import CFUNCTYPE, Array, Structure, byref, c_int, c_uint64, c_ulong, c_void_p, get_errno
from vmm.kvm import ioctls, structs
from vmm.libc import libc

_ioctl_ptr = libc.ioctl
_ioctl_ptr.argtypes = [c_int, c_ulong, c_void_p]
_ioctl_ptr.restype = c_int
_ioctl_int = CFUNCTYPE(c_int, c_int, c_ulong, c_ulong, use_errno=True)(("ioctl", libc))


def ioctl(fd: int, request: int, arg: Structure | Array | int = 0, *, what: str = "") -> int:
    """ioctl(fd, request, arg): a ctypes object is passed by reference, an int by value.

    Raises OSError with errno set (the caller decides which errnos are expected)."""
    if isinstance(arg, int):
        result = _ioctl_int(fd, request, arg)
    else:
        result = _ioctl_ptr(fd, request, byref(arg))
    if result < 0:
        number = get_errno()
        raise OSError(number, f"{what or hex(request)}: {os.strerror(number)}")
    return result


def checked(fd: int, request: int, arg: Structure | Array | int, what: str) -> int:
    """ioctl that turns failure into a one-line KvmError naming the operation."""
    try:
        return ioctl(fd, request, arg, what=what)
    except OSError as error:
        raise KvmError(f"{what} failed: {os.strerror(error.errno)}") from None


class Kvm:
    """The /dev/kvm system fd."""

    def __init__(self, path: str = "/dev/kvm") -> None:
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            raise KvmError(f"cannot open {path}: {error.strerror}") from None
        version = checked(self.fd, ioctls.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION")
        if version != ioctls.KVM_API_VERSION:
            os.close(self.fd)
            raise KvmError(f"unsupported KVM API version {version} (need {ioctls.KVM_API_VERSION})")

    def check_extension(self, capability: int) -> int:
        return checked(self.fd, ioctls.KVM_CHECK_EXTENSION, capability, "KVM_CHECK_EXTENSION")

    def max_vcpus(self) -> int:
        return self.check_extension(ioctls.KVM_CAP_MAX_VCPUS) or self.check_extension(ioctls.KVM_CAP_NR_VCPUS) or 4

    def vcpu_mmap_size(self) -> int:
        return checked(self.fd, ioctls.KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE")

    def supported_cpuid(self) -> list[structs.CpuidEntry2]:
        count = 80
        while True:
            buffer = structs.cpuid2_type(count)()
            buffer.nent = count
            try:
                ioctl(self.fd, ioctls.KVM_GET_SUPPORTED_CPUID, buffer)
            except OSError as error:
                if error.errno == errno_module.E2BIG and count < 1024:
                    count *= 2
                    continue
                raise KvmError(f"KVM_GET_SUPPORTED_CPUID failed: {os.strerror(error.errno)}") from None
            return [structs.CpuidEntry2.from_buffer_copy(buffer.entries[i]) for i in range(buffer.nent)]

    def create_vm(self) -> Vm:
        for _attempt in range(5):
            try:
                return Vm(self, ioctl(self.fd, ioctls.KVM_CREATE_VM, 0))
            except OSError as error:
                if error.errno != errno_module.EINTR:
                    raise KvmError(f"KVM_CREATE_VM failed: {os.strerror(error.errno)}") from None
        raise KvmError("KVM_CREATE_VM kept failing with EINTR")

    def close(self) -> None:
        os.close(self.fd)


class Vm:
    """A VM fd: memory slots, the in-kernel irqchip and PIT, vCPU creation."""

    def __init__(self, kvm: Kvm, fd: int) -> None:
        self.kvm = kvm
        self.fd = fd
        self._next_slot = 0
        self.vcpus: list[Vcpu] = []

    def set_tss_address(self, address: int) -> None:
        checked(self.fd, ioctls.KVM_SET_TSS_ADDR, address, "KVM_SET_TSS_ADDR")

    def set_identity_map_address(self, address: int) -> None:
        checked(self.fd, ioctls.KVM_SET_IDENTITY_MAP_ADDR, c_uint64(address), "KVM_SET_IDENTITY_MAP_ADDR")

    def create_irqchip(self) -> None:
        checked(self.fd, ioctls.KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP")

    def create_pit2(self) -> None:
        config = structs.PitConfig(flags=ioctls.KVM_PIT_SPEAKER_DUMMY)
        checked(self.fd, ioctls.KVM_CREATE_PIT2, config, "KVM_CREATE_PIT2")

    def add_memory(self, guest_address: int, size: int, host_address: int) -> None:
        region = structs.UserspaceMemoryRegion(
            slot=self._next_slot, flags=0, guest_phys_addr=guest_address, memory_size=size, userspace_addr=host_address
        )
        checked(self.fd, ioctls.KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")
        self._next_slot += 1

    def irq_line(self, irq: int, level: int) -> None:
        checked(self.fd, ioctls.KVM_IRQ_LINE, structs.IrqLevel(irq=irq, level=level), "KVM_IRQ_LINE")

    def create_vcpu(self, index: int) -> Vcpu:
        fd = checked(self.fd, ioctls.KVM_CREATE_VCPU, index, "KVM_CREATE_VCPU")
        vcpu = Vcpu(fd, index, self.kvm.vcpu_mmap_size())
        self.vcpus.append(vcpu)
        return vcpu

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        self.vcpus = []
        os.close(self.fd)


class Vcpu:
    """A vCPU fd and its shared `kvm_run` page."""

    def __init__(self, fd: int, index: int, mmap_size: int) -> None:
        self.fd = fd
        self.index = index
        self.run_map = mmap.mmap(fd, mmap_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)

    def close(self) -> None:
        self.run_map.close()
        os.close(self.fd)

    def get_regs(self) -> structs.Regs:
        regs = structs.Regs()
        checked(self.fd, ioctls.KVM_GET_REGS, regs, "KVM_GET_REGS")
        return regs

    def set_regs(self, regs: structs.Regs) -> None:
        checked(self.fd, ioctls.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self) -> structs.Sregs:
        sregs = structs.Sregs()
        checked(self.fd, ioctls.KVM_GET_SREGS, sregs, "KVM_GET_SREGS")
        return sregs

    def set_sregs(self, sregs: structs.Sregs) -> None:
        checked(self.fd, ioctls.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def set_fpu(self, fpu: structs.Fpu) -> None:
        checked(self.fd, ioctls.KVM_SET_FPU, fpu, "KVM_SET_FPU")

    def set_cpuid(self, entries: list[structs.CpuidEntry2]) -> None:
        buffer = structs.cpuid2_type(len(entries))()
        buffer.nent = len(entries)
        for i, entry in enumerate(entries):
            buffer.entries[i] = entry
        checked(self.fd, ioctls.KVM_SET_CPUID2, buffer, "KVM_SET_CPUID2")

    def set_msrs(self, values: list[tuple[int, int]]) -> None:
        buffer = structs.msrs_type(len(values))()
        buffer.nmsrs = len(values)
        for i, (index, data) in enumerate(values):
            buffer.entries[i].index = index
            buffer.entries[i].data = data
        written = checked(self.fd, ioctls.KVM_SET_MSRS, buffer, "KVM_SET_MSRS")
        if written != len(values):
            failed = values[written][0]
            raise KvmError(f"KVM_SET_MSRS set only {written} of {len(values)} MSRs (MSR {failed:#x} rejected)")

    def get_lapic(self) -> structs.LapicState:
        state = structs.LapicState()
        checked(self.fd, ioctls.KVM_GET_LAPIC, state, "KVM_GET_LAPIC")
        return state

    def set_lapic(self, state: structs.LapicState) -> None:
        checked(self.fd, ioctls.KVM_SET_LAPIC, state, "KVM_SET_LAPIC")

    # KVM_RUN for hot loops: call kvm_run_function(fd, KVM_RUN, 0); on a negative result
    # call run_failed() (True for EINTR/EAGAIN, KvmError otherwise).
    kvm_run_function = staticmethod(_ioctl_int)

    def run_failed(self) -> bool:
        number = get_errno()
        if number in (errno_module.EINTR, errno_module.EAGAIN):
            return True
        raise KvmError(f"KVM_RUN on vcpu{self.index} failed: {os.strerror(number)}")

    def run_once(self) -> int:
        """One KVM_RUN (GIL released). Returns 0, or the errno (EINTR/EAGAIN) for the caller."""
        result = _ioctl_int(self.fd, ioctls.KVM_RUN, 0)
        if result < 0:
            number = get_errno()
            if number in (errno_module.EINTR, errno_module.EAGAIN):
                return number
            raise KvmError(f"KVM_RUN on vcpu{self.index} failed: {os.strerror(number)}")
        return 0
