"""What the VMM's `--no-api` start path imports: no dataclasses, pathlib or typing, and none
of `json`, `re`, `enum`, `threading`, `signal`, `functools`, `collections` or `ctypes` either.

Start-up time and private memory are product targets: the first seven alone are ~1.2 MiB of
private memory for the VMM's lifetime (`vmm.jsontext`, `vmm.threads` and `_signal` do the
same work without them), and the `ctypes` package ~3.5 ms of every start (`jailer.native`
uses its C core directly). Loading or compiling the per-thread filters (`jailer.policies`) is
covered by tests/unit/policies/test_startup_path.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.vmm import HANG, write_config, write_guest

# Everything `vmm --config-file F --no-api` imports up to its first KVM call: what `cli._run`
# imports (vmm.seccomp with filters on), the config and log/metrics sinks, then what
# `builder.build_machine` and `builder._load_guest` import, with the ACPI tables and a PVH
# kernel really loaded.
START_PATH = """
import sys
from vmm import cli
arguments = cli.parse_arguments(sys.argv[1:])
from vmm import builder, seccomp, threads
from vmm.config import load_config
from vmm.logger import Logger
from vmm.metrics import Metrics
config = load_config(arguments.config_file)
outputs = cli.Outputs(Logger.open("test", "Info", None), Metrics.open(None))
options = builder.VmmOptions(boot_timer=arguments.boot_timer)
from vmm import cpu, vcpu
from vmm.devices.debug_exit import DebugExit
from vmm.devices.i8042 import I8042
from vmm.devices.serial import Serial
from vmm.devices.boot_timer import BootTimer
from vmm.kvm.system import Kvm
from vmm.memory import GuestMemory
from vmm.acpi import build_acpi_tables
from vmm.loader import load_kernel
memory = GuestMemory(config.machine_config.mem_size_mib << 20)
rsdp = build_acpi_tables(memory, vcpu_count=1, mmio_devices=[])
entry = load_kernel(memory, config.boot_source.kernel_image_path, cmdline="", initrd_path=None, rsdp_address=rsdp)
assert entry.protocol == "pvh", entry
print(" ".join(sys.modules))
"""

NOT_ON_THE_START_PATH = {
    "dataclasses",
    "inspect",
    "ast",
    "dis",
    "tokenize",
    "typing",
    "pathlib",
    "urllib.parse",
    "ipaddress",
    "fnmatch",
    "json",
    "re",
    "enum",
    "threading",
    "signal",
    "functools",
    "collections",
    "ctypes",
}


def test_no_api_start_path_avoids_heavy_stdlib_modules(tmp_path: Path) -> None:
    config = write_config(tmp_path, write_guest(tmp_path, HANG))
    result = subprocess.run(
        [sys.executable, "-I", "-c", START_PATH, "--config-file", str(config), "--no-api", "--no-seccomp", "--boot-timer"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    modules = set(result.stdout.split())
    assert {"vmm.builder", "vmm.config", "vmm.loader.boot", "vmm.acpi.build", "vmm.kvm.system", "vmm.jsontext"} <= modules
    assert not NOT_ON_THE_START_PATH & modules, sorted(NOT_ON_THE_START_PATH & modules)
    # A PVH guest without an initrd needs neither the bzImage loader nor initrd placement.
    assert {"vmm.loader.elf", "vmm.loader.pvh"} <= modules
    assert not {"vmm.loader.bzimage", "vmm.loader.bootparams", "vmm.loader.initrd"} & modules
