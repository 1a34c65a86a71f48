"""The one error type of the loaders: its message is a single line fit for the operator."""

from __future__ import annotations


class LoaderError(Exception):
    """The kernel, initrd or command line cannot be loaded as configured."""
