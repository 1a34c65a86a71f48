"""`jailer` command line (being built: see the jailer issue)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "-h" in args or "--help" in args:
        print("Jailer: wraps the launch of a microVM monitor in a chroot, namespaces, cgroups and seccomp.")
        return 0
    print("jailer: not implemented yet", file=sys.stderr)
    return 1
