"""File paths as text, spelled the way `pathlib` prints them, without importing pathlib.

The configuration and the loaders name files in one-line messages; they used to hold
`pathlib.Path` objects, whose import (with urllib.parse, fnmatch and re) cost the VMM's
start-up path ~7 ms (see `vmm`). They keep plain strings instead, normalised as `Path` would
so that every message is unchanged.
"""

from __future__ import annotations

import os


def path_text(path: str | os.PathLike[str]) -> str:
    """``str(pathlib.PurePosixPath(path))``: repeated and trailing slashes and ``.``
    components dropped, ``..`` kept, a leading ``//`` (exactly two) kept, ``""`` → ``"."``."""
    text = os.fspath(path)
    root = ""
    if text.startswith("/"):
        root = "//" if text.startswith("//") and not text.startswith("///") else "/"
    return root + "/".join(part for part in text.split("/") if part and part != ".") or "."
