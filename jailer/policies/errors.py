"""The toolchain's single error type.

Every problem a user can cause (a malformed policy, an unknown syscall, an unreadable BPF file)
is raised as `PolicyError` with a one-line message that names where it happened, so the CLI can
print it and exit 2 instead of showing a traceback.
"""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy or filter the toolchain cannot accept; `str()` is a complete one-line message.

    A ValueError, so callers that guard against bad input generically (the jailer) catch it.
    When a named file could not be read as one (`read_regular_file` refused it, or it failed
    to open), `path` and `reason` ("not a regular file", "not a valid path", the strerror) are
    set, so callers that name the file their own way (the jailer's and the VMM's policy and
    config errors) can say why without parsing the message.
    """

    def __init__(self, message: str, *, path: str | None = None, reason: str | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.path = path
        self.reason = reason
