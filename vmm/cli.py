"""`vmm`: the Python KVM microVM monitor (being built)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print("vmm: a KVM microVM monitor configured with Firecracker-format JSON.")
        return 0
    print("vmm: not implemented yet", file=sys.stderr)
    return 1
