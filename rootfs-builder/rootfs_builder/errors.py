"""The builder's one error type: the CLI prints it as a single line and exits 1."""

from __future__ import annotations


class BuildError(Exception):
    """Bad input or a failed build step, with a message fit for one line on stderr."""
