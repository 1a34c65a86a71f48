"""The fail-closed undo log: every change made after validation registers how to revert it.

On failure the entries run newest first; each entry removes only what this run created. The
log keeps going past a failing entry and reports every path it could not remove, so a failure
never silently leaves a half-built jail.
"""

from __future__ import annotations

import os

from jailer.errors import os_error_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class UndoLog:
    def __init__(self) -> None:
        self.entries: list[tuple[str, Callable[[], None]]] = []

    def add(self, description: str, action: Callable[[], None]) -> None:
        self.entries.append((description, action))

    def created_path(self, path: str, is_dir: bool) -> None:
        """Record a file or directory this run created (removed with unlink or rmdir)."""
        if is_dir:
            self.add(path, lambda: os.rmdir(path))
        else:
            self.add(path, lambda: os.unlink(path))

    def run(self) -> list[str]:
        """Revert everything, newest first; return one text per entry that failed."""
        failures: list[str] = []
        while self.entries:
            description, action = self.entries.pop()
            try:
                action()
            except FileNotFoundError:
                continue
            except OSError as error:
                failures.append(f"{description}: {os_error_text(error)}")
            except Exception as error:  # a clean-up must never mask the original error
                failures.append(f"{description}: {error}")
        return failures

    def forget(self) -> None:
        self.entries.clear()
