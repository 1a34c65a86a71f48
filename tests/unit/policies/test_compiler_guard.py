"""The compiler never emits a program weaker than its policy, even where libseccomp errs.

libseccomp before 2.6.1 mis-merges several ordered 64-bit comparisons on one argument
(GHSA-4q85-33p6-j5g6): found here by `test_model_vs_libseccomp`'s property test, on Debian
12's libseccomp 2.5.4. The compiler checks that shape in the emulator and refuses it.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from jailer.policies import PolicyError, bpf, compiler, load_policy, shipped_policy_names, shipped_policy_path, syscalls

GHSA_SHAPE = {
    "t": {
        "default_action": {"errno": 1},
        "filter_action": "allow",
        "filter": [
            {"syscall": "ioctl", "args": [{"index": 0, "type": "qword", "op": "ge", "val": 4294967297}]},
            {"syscall": "ioctl", "args": [{"index": 0, "type": "qword", "op": "lt", "val": 1}]},
        ],
    }
}


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


def libseccomp_version() -> tuple[int, int, int]:
    library = syscalls._libseccomp()
    library.seccomp_version.restype = ctypes.POINTER(_Version)
    version = library.seccomp_version().contents
    return version.major, version.minor, version.micro


def test_mis_merged_ranges_are_refused_or_compiled_right(tmp_path: Path) -> None:
    path = tmp_path / "ranges.json"
    path.write_text(json.dumps(GHSA_SHAPE))
    policy = load_policy(path)
    try:
        program = compiler.compile_category(policy, "t")
    except PolicyError as error:
        assert "GHSA-4q85-33p6-j5g6" in str(error)
        assert "ioctl(1, 0, 0, 0, 0, 0) gets allow but the policy says errno(1)" in str(error)
        assert libseccomp_version() < (2, 6, 1), "a fixed libseccomp must compile this shape right"
        return
    for value, expected in ((0, "allow"), (1, "errno(1)"), (1 << 32, "errno(1)"), ((1 << 32) + 1, "allow")):
        got = bpf.emulate(program, bpf.SeccompData(syscalls.number("ioctl"), args=(value, 0, 0, 0, 0, 0))).action
        assert str(got) == expected, value


@pytest.mark.parametrize("name", shipped_policy_names())
def test_shipped_policies_do_not_have_the_shape(name: str) -> None:
    """So compiling them pays nothing for the guard (and libseccomp's bug cannot touch them)."""
    policy = load_policy(shipped_policy_path(name))
    for category in policy.categories.values():
        assert compiler._ranged_arguments(category) == {}, category.name
