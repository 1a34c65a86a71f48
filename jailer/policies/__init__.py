"""Seccomp policies and the `jailer-policy` toolchain.

Pipeline: `parser` (JSON -> `model`), `compiler` (model -> BPF via libseccomp), `bpf`
(disassembler and emulator), `loader` (install a program), and the tools built on them:
`audit`, `diff`, `inspect`, `trace`, `validate`, `oci`. Policies the project ships live next to
this file as `<name>.json` (`baseline` for the jailer's default outer filter, `vmm` for the VMM's
threads and the `jail` allowlist).

This module stays import-light: the jailer imports it on its start-up path.
"""

from __future__ import annotations

import os
import stat

from jailer.policies.errors import PolicyError

TYPE_CHECKING = False  # typing itself is not imported: this module is on the jailer's start-up path
if TYPE_CHECKING:
    from pathlib import Path

    from jailer.policies.model import Policy

__all__ = ["PolicyError", "load_policy", "read_regular_file", "shipped_policy_file", "shipped_policy_path",
           "shipped_policy_names"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def load_policy(path: str | Path) -> Policy:
    """Parse a policy file; PolicyError (one line naming category and rule) when malformed."""
    from jailer.policies import parser

    try:
        return parser.load_policy(path)
    except OSError as error:
        reason = error.strerror or str(error)
        raise PolicyError(f"{path}: cannot read the policy: {reason}", path=os.fspath(path), reason=reason) from None


def read_regular_file(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The whole file at `path`: how the toolchain reads every file a user names (policies,
    OCI profiles, BPF programs), how the jailer and the VMM read their policy, and how the
    VMM reads its config.

    PolicyError unless it is a regular file, OSError when it cannot be opened or read, or
    holds more than `limit` bytes (EFBIG). The check is made on the descriptor, opened with
    O_NONBLOCK, before a byte is read: a FIFO would otherwise block the open (and with it
    `jailer-policy`, the jailer or the VMM) until some writer appears, and a character device
    (`/dev/zero`) would stream without end. os-level calls only: no `io` text layer; and
    64 KiB reads: a larger read() buffer, then shrunk to what came, costs an mremap, which the
    jail's outer allowlist does not grant the VMM.
    """
    name = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except ValueError:  # an embedded NUL byte
        raise PolicyError(f"{name!r} is not a valid path", path=name, reason="not a valid path") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PolicyError(f"{name} is not a regular file", path=name, reason="not a regular file")
        chunks = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if limit is not None and size > limit:
                raise OSError(27, "file too large", name)  # EFBIG
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def shipped_policy_names() -> list[str]:
    return sorted(entry[: -len(".json")] for entry in os.listdir(_HERE) if entry.endswith(".json"))


def shipped_policy_file(name: str) -> str:
    """The path of a policy the project ships (`baseline`, `vmm`), as a string: the jailer's
    start-up path uses this one, because importing pathlib costs milliseconds."""
    path = os.path.join(_HERE, f"{name}.json")
    if "/" in name or not os.path.isfile(path):
        known = ", ".join(shipped_policy_names()) or "none"
        raise PolicyError(f"no shipped policy named {name!r} (shipped: {known})")
    return path


def shipped_policy_path(name: str) -> Path:
    """The path of a policy the project ships (`baseline`, `vmm`)."""
    from pathlib import Path

    return Path(shipped_policy_file(name))
