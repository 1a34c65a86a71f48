"""The pre-flight exec check's file-format logic (the real files of this system)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from jailer.errors import ErrorKind, JailerError
from jailer.preflight import _may_execute, check_executable, interpreter_of


def test_dynamic_elf_names_its_loader() -> None:
    true = os.path.realpath(shutil.which("true") or "/bin/true")
    interpreter = interpreter_of(true)
    if interpreter is None:
        pytest.skip("true(1) is static here")
    assert interpreter.startswith("/") and "ld-linux" in interpreter


def test_script_names_its_interpreter(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_text("#!/usr/bin/env python3 -I\nprint()\n")
    assert interpreter_of(str(script)) == "/usr/bin/env"
    script.write_text("#!\n")
    assert interpreter_of(str(script)) is None


def test_static_elf_needs_no_interpreter(tmp_path: Path) -> None:
    from support import compile_c

    source = tmp_path / "s.c"
    source.write_text("int main(void) { return 0; }\n")
    binary = compile_c([source], tmp_path / "static")
    assert interpreter_of(str(binary)) is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"plain text", "neither an ELF file nor a #! script"),
        (b"\x7fELF\x01\x01" + b"\0" * 58, "not a 64-bit little-endian ELF file"),
        (b"\x7fELF\x02\x01" + b"\0" * 12 + (183).to_bytes(2, "little") + b"\0" * 44, "ELF machine 183 is not x86-64 (62)"),
    ],
)
def test_formats_execve_would_refuse(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    path.chmod(0o755)
    info = path.stat()
    with pytest.raises(JailerError) as caught:
        check_executable(str(path), info.st_uid, info.st_gid)
    assert caught.value.kind is ErrorKind.EXEC
    assert str(caught.value) == f"Failed to exec into Firecracker: Exec format error (os error 8): {reason}"


def test_permission_bits_follow_owner_group_other(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("")
    for mode, uid, gid, expected in [
        (0o700, 5, 5, True), (0o070, 5, 5, False), (0o070, 6, 5, True), (0o007, 6, 6, True),
        (0o770, 6, 6, False), (0o644, 5, 5, False),
    ]:
        path.chmod(mode)
        info = os.stat_result((stat.S_IFREG | mode, 0, 0, 1, 5, 5, 0, 0, 0, 0))
        assert _may_execute(info, uid, gid) is expected, (oct(mode), uid, gid)
    directory = os.stat_result((stat.S_IFDIR | 0o755, 0, 0, 1, 5, 5, 0, 0, 0, 0))
    assert _may_execute(directory, 5, 5) is False
