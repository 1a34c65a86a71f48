"""The fail-closed undo log."""

from __future__ import annotations

from pathlib import Path

from jailer.undo import UndoLog


def test_undo_runs_newest_first_and_keeps_going(tmp_path: Path) -> None:
    order: list[str] = []
    log = UndoLog()
    log.add("first", lambda: order.append("first"))
    log.add("broken", lambda: (_ for _ in ()).throw(PermissionError(13, "x")))
    log.add("second", lambda: order.append("second"))
    failures = log.run()
    assert order == ["second", "first"]
    assert failures == ["broken: Permission denied (os error 13)"]
    assert log.entries == []


def test_created_paths_are_removed_deepest_first(tmp_path: Path) -> None:
    log = UndoLog()
    directory = tmp_path / "a"
    directory.mkdir()
    log.created_path(str(directory), is_dir=True)
    (directory / "file").write_text("")
    log.created_path(str(directory / "file"), is_dir=False)
    assert log.run() == []
    assert list(tmp_path.iterdir()) == []


def test_already_gone_is_not_a_failure(tmp_path: Path) -> None:
    log = UndoLog()
    log.created_path(str(tmp_path / "never-made"), is_dir=False)
    assert log.run() == []
