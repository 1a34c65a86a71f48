"""`vmm`: a KVM microVM monitor in Python, configured with Firecracker-format JSON.

Layout: `kvm/` (ioctl bindings), `memory` (guest RAM), `cpu` (boot vCPU state), `bus` and
`devices/` (device models, KVM-free), `vcpu` (threads), `config`, `builder`, `seccomp`
(per-thread filters, violation reports), `cli`. `loader/` and `acpi/` prepare the guest.
"""

__version__ = "0.1.0"
