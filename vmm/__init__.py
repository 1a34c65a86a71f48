"""`vmm`: a KVM microVM monitor in Python, configured with Firecracker-format JSON.

Layout: `kvm/` (ioctl bindings), `memory` (guest RAM), `cpu` (boot vCPU state), `bus` and
`devices/` (device models, KVM-free), `vcpu` (threads), `config`, `builder`, `seccomp`
(per-thread filters, violation reports), `cli`. `loader/` and `acpi/` prepare the guest.

Start-up path: start-up time and private memory are product targets, so the modules that
`vmm --config-file ... --no-api` imports avoid dataclasses, pathlib and typing at run time
(plain classes with ``__slots__``, `vmm.value.Value` where instances are compared, file names
as `vmm.paths` strings, type-only imports under ``TYPE_CHECKING``) and json, re, enum,
threading, signal, functools and collections altogether (`vmm.jsontext`, `vmm.threads`,
`_signal`). `tests/unit/vmm/test_startup_path.py` and
`tests/integration/vmm/test_startup_imports.py` keep it so.
"""

__version__ = "0.1.0"
