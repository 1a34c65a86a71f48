"""A content-addressed cache of build outputs under ``$XDG_CACHE_HOME/stockade``.

The key of an entry is the SHA-256 of a canonical JSON description of *all* the inputs of a
build (package versions, input file hashes, options, builder format version), so a hit is
exactly "these bytes were already built from these inputs". Entries are built in a temporary
directory inside the cache and renamed into place whole, so a crash never leaves a half entry
that a later run would mistake for a hit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bump when a builder's output for the same inputs changes, to invalidate old entries.
FORMAT_VERSION = 1


def default_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stockade"


def inputs_key(kind: str, inputs: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"kind": kind, "format": FORMAT_VERSION, "inputs": inputs}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    key: str
    hit: bool


class Cache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_root()).absolute()

    def get_or_build(
        self, kind: str, inputs: dict[str, Any], build: Callable[[Path], None]
    ) -> CacheEntry:
        """Return the entry for these inputs, running `build(directory)` to fill it on a miss."""
        key = inputs_key(kind, inputs)
        entry = self.root / kind / key
        if (entry / ".complete").is_file():
            return CacheEntry(entry, key, hit=True)
        entry.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", suffix=".partial", dir=entry.parent))
        try:
            build(staging)
            (staging / "inputs.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
            (staging / ".complete").write_text(key + "\n")
            try:
                os.rename(staging, entry)
            except OSError:
                # A concurrent build of the same inputs finished first; its bytes are the same.
                if not (entry / ".complete").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return CacheEntry(entry, key, hit=False)
