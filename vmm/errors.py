"""The VMM's error types: every user-facing failure is one of these, printed as one line."""

from __future__ import annotations


class VmmError(Exception):
    """A failure the VMM reports as a single line and a nonzero exit status."""


class ConfigError(VmmError):
    """The configuration file or command line is invalid."""


class GuestMemoryError(VmmError):
    """A guest-physical access outside RAM, or guest RAM that cannot be mapped."""


class KvmError(VmmError):
    """A KVM ioctl failed or KVM lacks a capability the VMM needs."""
