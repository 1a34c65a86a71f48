"""The toolchain's single error type.

Every problem a user can cause (a malformed policy, an unknown syscall, an unreadable BPF file)
is raised as `PolicyError` with a one-line message that names where it happened, so the CLI can
print it and exit 2 instead of showing a traceback.
"""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy or filter the toolchain cannot accept; `str()` is a complete one-line message.

    A ValueError, so callers that guard against bad input generically (the jailer) catch it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
