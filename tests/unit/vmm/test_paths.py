"""`vmm.paths.path_text` spells a path exactly as `pathlib` prints it (messages name files)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from vmm.paths import path_text

PATHS = st.lists(st.sampled_from(["/", "//", "///", ".", "..", "a", "b c", "", "é"]), max_size=8).map("".join)


@given(PATHS)
def test_path_text_is_what_pathlib_prints(text: str) -> None:
    assert path_text(text) == str(PurePosixPath(text))
    assert path_text(Path(text)) == str(Path(text))


def test_examples() -> None:
    assert path_text("") == "."
    assert path_text("//srv//vm/./kernel/") == "//srv/vm/kernel"
    assert path_text("///srv/../kernel") == "/srv/../kernel"
