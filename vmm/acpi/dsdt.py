"""The DSDT's devices: the legacy ones a stock kernel binds through ACPI, and one node per
memory-mapped device (virtio-mmio as `LNRO0005`, which is how Linux's virtio_mmio matches)."""

from __future__ import annotations

from vmm.acpi import AcpiError
from vmm.acpi import aml

TYPE_CHECKING = False  # no typing import at run time (start-up path: see `vmm`)
if TYPE_CHECKING:
    from collections.abc import Sequence

    from vmm.acpi import MmioDeviceInfo

STA_PRESENT_ENABLED_SHOWN_FUNCTIONING = 0x0F
COM1_PORT = 0x3F8
COM1_IRQ = 4
I8042_DATA_PORT = 0x60
I8042_COMMAND_PORT = 0x64
I8042_IRQ = 1


def _hid(identifier: str) -> bytes:
    """PNP-style ids (3 letters + 4 hex digits) as EisaId; others (ACPI ids) as strings."""
    if len(identifier) == 7 and identifier[:3].isalpha() and identifier[:3].isupper():
        try:
            return aml.eisa_id(identifier)
        except ValueError:
            pass
    return aml.string(identifier)


def _com1() -> bytes:
    return aml.device(
        "COM1",
        [
            aml.name("_HID", aml.eisa_id("PNP0501")),
            aml.name("_UID", aml.integer(0)),
            aml.name("_DDN", aml.string("COM1")),
            aml.name(
                "_CRS",
                aml.resource_template(
                    [aml.io(COM1_PORT, COM1_PORT, 1, 8), aml.irq_no_flags([COM1_IRQ])]
                ),
            ),
        ],
    )


def _i8042() -> bytes:
    """Without the FADT's 8042 flag the kernel's i8042 driver only binds through PNP0303."""
    return aml.device(
        "PS2_",
        [
            aml.name("_HID", aml.eisa_id("PNP0303")),
            aml.method("_STA", 0, [aml.return_(aml.integer(STA_PRESENT_ENABLED_SHOWN_FUNCTIONING))]),
            aml.name(
                "_CRS",
                aml.resource_template(
                    [
                        aml.io(I8042_DATA_PORT, I8042_DATA_PORT, 1, 1),
                        aml.io(I8042_COMMAND_PORT, I8042_COMMAND_PORT, 1, 1),
                        aml.irq_no_flags([I8042_IRQ]),
                    ]
                ),
            ),
        ],
    )


def _mmio_device(index: int, device: MmioDeviceInfo) -> bytes:
    if not 0 <= device.base < 1 << 32 or not 0 < device.size < 1 << 32 or device.base + device.size > 1 << 32:
        raise AcpiError(f"device {device.name}: window {device.base:#x}+{device.size:#x} is not below 4 GiB")
    if not 0 <= device.gsi < 1 << 32:
        raise AcpiError(f"device {device.name}: invalid GSI {device.gsi}")
    return aml.device(
        f"V{index:03d}",
        [
            aml.name("_HID", _hid(device.hid)),
            aml.name("_UID", aml.dword(index)),
            aml.name("_CCA", aml.integer(1)),  # DMA is cache coherent
            aml.name(
                "_CRS",
                aml.resource_template(
                    [aml.memory32_fixed(device.base, device.size), aml.interrupt([device.gsi])]
                ),
            ),
        ],
    )


def build_dsdt_aml(mmio_devices: Sequence[MmioDeviceInfo]) -> bytes:
    if len(mmio_devices) > 1000:
        raise AcpiError(f"{len(mmio_devices)} MMIO devices; at most 1000 have DSDT names (V000..V999)")
    devices = [_com1(), _i8042()] + [_mmio_device(i, device) for i, device in enumerate(mmio_devices)]
    return aml.scope("\\_SB_", devices)
