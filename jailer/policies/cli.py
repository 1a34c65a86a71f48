"""`jailer-policy`: the seccomp policy toolchain (being built)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print("jailer-policy: parse, compile, inspect and audit seccomp policies.")
        return 0
    print("jailer-policy: not implemented yet", file=sys.stderr)
    return 1
