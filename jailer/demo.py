"""The main job: launch one jailed microVM and summarise what happened (being built)."""

from __future__ import annotations

import sys


def main() -> int:
    print("stockade demo: the jailed microVM launch is not built yet; nothing was run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
