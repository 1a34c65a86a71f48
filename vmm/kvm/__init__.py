"""KVM bindings: ioctl numbers, ctypes structs and a thin ioctl helper (no policy here)."""
