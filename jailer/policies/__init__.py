"""Seccomp policies and the `jailer-policy` toolchain.

Pipeline: `parser` (JSON -> `model`), `compiler` (model -> BPF via libseccomp), `bpf`
(disassembler and emulator), `loader` (install a program), and the tools built on them:
`audit`, `diff`, `inspect`, `trace`, `validate`, `oci`. Policies the project ships live next to
this file as `<name>.json` (`baseline` for the jailer's default outer filter, `vmm` for the VMM's
threads and the `jail` allowlist).

This module stays import-light: the jailer imports it on its start-up path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from jailer.policies.errors import PolicyError

if TYPE_CHECKING:
    from jailer.policies.model import Policy

__all__ = ["PolicyError", "load_policy", "shipped_policy_path", "shipped_policy_names"]

_HERE = Path(__file__).resolve().parent


def load_policy(path: str | Path) -> Policy:
    """Parse a policy file; PolicyError (one line naming category and rule) when malformed."""
    from jailer.policies import parser

    try:
        return parser.load_policy(path)
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the policy: {error.strerror or error}") from None


def shipped_policy_names() -> list[str]:
    return sorted(path.stem for path in _HERE.glob("*.json"))


def shipped_policy_path(name: str) -> Path:
    """The path of a policy the project ships (`baseline`, `vmm`)."""
    path = _HERE / f"{name}.json"
    if "/" in name or not path.is_file():
        known = ", ".join(shipped_policy_names()) or "none"
        raise PolicyError(f"no shipped policy named {name!r} (shipped: {known})")
    return path
