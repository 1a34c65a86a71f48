"""Stockade's jailer: a drop-in for Firecracker's jailer, hardened further (see `jailer --help`)."""

__version__ = "0.1.0"
