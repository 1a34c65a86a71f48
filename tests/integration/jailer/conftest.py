"""Fixtures for jailer integration tests: the compiled probe and a self-cleaning `jail`."""

from support.jail import jail, jail_probe  # noqa: F401
