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

from jailer.policies.errors import PolicyError

TYPE_CHECKING = False  # typing itself is not imported: this module is on the jailer's start-up path
if TYPE_CHECKING:
    from pathlib import Path

    from jailer.policies.model import Policy

__all__ = ["PolicyError", "load_policy", "shipped_policy_file", "shipped_policy_path", "shipped_policy_names"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def load_policy(path: str | Path) -> Policy:
    """Parse a policy file; PolicyError (one line naming category and rule) when malformed."""
    from jailer.policies import parser

    try:
        return parser.load_policy(path)
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the policy: {error.strerror or error}") from None


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
