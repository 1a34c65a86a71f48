"""Stockade's jailer: a drop-in for Firecracker's jailer, hardened further (see `jailer --help`)."""

# Must equal the `version` in pyproject.toml (tests/unit/jailer/test_cli.py checks it).
__version__ = "0.1.0"
