"""Helpers for the policy toolchain's tests: small policies, forked children under a filter."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

FIRECRACKER_X86_64 = "x86_64-unknown-linux-musl.json"
FIRECRACKER_AARCH64 = "aarch64-unknown-linux-musl.json"


def write_policy(directory: Path, document: object, name: str = "policy.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(document, indent=2))
    return path


def category(rules: list[dict[str, object]], *, default: object = "kill_process", on_match: object = "allow") -> dict[str, object]:
    return {"default_action": default, "filter_action": on_match, "filter": rules}


def run_in_child(body: Callable[[], int]) -> int:
    """Fork, run `body` in the child and `_exit` with its result; return the raw wait status.

    The child never returns into pytest: whatever happens, it leaves through os._exit.
    """
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = body()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def killed_by_sigsys(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS
