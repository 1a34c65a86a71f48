"""Which cgroup hierarchy serves a controller on this host, discovered from /proc/mounts.

Discovery follows Firecracker's jailer (reference §2.6.1): each line is matched with the same
pattern; the first `cgroup2` mount is the unified hierarchy; a v1 controller is served by the
first `cgroup` mount whose comma-separated options name it; a v2 controller must be listed in
`<unified root>/cgroup.controllers`.

Hybrid hosts (v1 controller mounts *and* a cgroup2 mount, as systemd's "hybrid" layout makes)
are where Stockade differs from the reference, which only ever looks at the hierarchy of the
requested `--cgroup-version` and so rejects half the controllers of such a host. Here the
requested version's hierarchy is tried first and, only when the host has both kinds of mount,
the other one: `--cgroup-version 1 --cgroup hugetlb.2MB.max=0` is served by the cgroup2 mount
when hugetlb is bound there, and `--cgroup-version 2 --cgroup cpu.shares=2` by the v1 `cpu`
mount. A controller that no hierarchy has is still `Controller <c> is unavailable`. On a pure
v1 or pure v2 host nothing changes: asking for the missing version is `Hierarchy not found`.
"""

from __future__ import annotations

import os

from jailer.errors import ErrorKind, JailerError, os_error_text

PROC_MOUNTS = "/proc/mounts"
NO_HIERARCHY_DETAIL = "No hierarchy found for this cgroup version."

# The reference's pattern, with POSIX [[:space:]] spelled out (Python's \s also matches
# Unicode spaces, which the kernel never prints here).
_SPACE = r"[ \t\n\r\f\v]"
_MOUNT_LINE = (
    rf"^([a-z2]*){_SPACE}(?P<dir>.*){_SPACE}cgroup(?P<ver>2?){_SPACE}(?P<options>.*){_SPACE}0{_SPACE}0$"
)


def unescape_mount_path(text: str) -> str:
    r"""/proc/mounts writes space, tab, newline and backslash in paths as `\ooo` octal escapes."""
    if "\\" not in text:
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        chunk = text[index:index + 4]
        if len(chunk) == 4 and chunk[0] == "\\" and all("0" <= c <= "7" for c in chunk[1:]):
            out.append(chr(int(chunk[1:], 8)))
            index += 4
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


class Hierarchy:
    """One mounted cgroup hierarchy: its version (1 or 2) and mount point.

    Plain classes rather than dataclasses here and in `jailer.cgroups`: importing
    `dataclasses` (and the `inspect` it pulls in) costs ~10 ms of the jailer's start-up.
    """

    __slots__ = ("version", "root")

    def __init__(self, version: int, root: str) -> None:
        self.version = version
        self.root = root

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and (self.version, self.root) == (other.version, other.root)

    def __hash__(self) -> int:
        return hash((self.version, self.root))

    def __repr__(self) -> str:
        return f"Hierarchy(version={self.version}, root={self.root!r})"


class CgroupMounts:
    """The cgroup mounts of /proc/mounts, in mount order."""

    def __init__(self, v1_mounts: list[tuple[str, tuple[str, ...]]], unified_root: str | None) -> None:
        self.v1_mounts = v1_mounts
        self.unified_root = unified_root
        self._v2_controllers: frozenset[str] | None = None

    @classmethod
    def parse(cls, mounts_text: str) -> "CgroupMounts":
        import re

        pattern = re.compile(_MOUNT_LINE)
        v1_mounts: list[tuple[str, tuple[str, ...]]] = []
        unified_root = None
        for line in mounts_text.splitlines():
            match = pattern.match(line)
            if match is None:
                continue
            directory = unescape_mount_path(match.group("dir"))
            if match.group("ver") == "2":
                if unified_root is None:
                    unified_root = directory
            else:
                v1_mounts.append((directory, tuple(match.group("options").split(","))))
        return cls(v1_mounts, unified_root)

    @classmethod
    def read(cls, path: str = PROC_MOUNTS) -> "CgroupMounts":
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as mounts:
                return cls.parse(mounts.read())
        except OSError as error:
            raise JailerError(ErrorKind.READ_TO_STRING, path=path, error=os_error_text(error)) from None

    @property
    def is_hybrid(self) -> bool:
        return bool(self.v1_mounts) and self.unified_root is not None

    def has_version(self, version: int) -> bool:
        if version == 1:
            return bool(self.v1_mounts)
        if version == 2:
            return self.unified_root is not None
        return False

    def require_version(self, version: int) -> None:
        """The reference's builder check: a mount of the requested version must exist."""
        if not self.has_version(version):
            raise JailerError(ErrorKind.CGROUP_HIERARCHY_MISSING, detail=NO_HIERARCHY_DETAIL)

    def unified(self) -> str:
        if self.unified_root is None:
            raise JailerError(ErrorKind.CGROUP_HIERARCHY_MISSING, detail=NO_HIERARCHY_DETAIL)
        return self.unified_root

    def v1_root(self, controller: str) -> str | None:
        for directory, options in self.v1_mounts:
            if controller in options:
                return directory
        return None

    def v2_controllers(self) -> frozenset[str]:
        """`<unified root>/cgroup.controllers`, read once."""
        if self._v2_controllers is None:
            path = os.path.join(self.unified(), "cgroup.controllers")
            try:
                with open(path, "rb") as controllers:  # no `encodings.ascii` import (see validation)
                    self._v2_controllers = frozenset(controllers.read().decode("ascii", "replace").split())
            except OSError as error:
                raise JailerError(ErrorKind.READ_TO_STRING, path=path, error=os_error_text(error)) from None
        return self._v2_controllers

    def _lookup(self, controller: str, version: int) -> Hierarchy | None:
        if version == 1:
            root = self.v1_root(controller)
            return None if root is None else Hierarchy(1, root)
        if controller in self.v2_controllers():
            return Hierarchy(2, self.unified())
        return None

    def hierarchy_for(self, controller: str, version: int) -> Hierarchy:
        """The hierarchy serving `controller`: the requested version's, else (hybrid hosts only)
        the other one's; `Controller <c> is unavailable` when neither has it."""
        self.require_version(version)
        found = self._lookup(controller, version)
        if found is None and self.is_hybrid:
            found = self._lookup(controller, 3 - version)
        if found is None:
            raise JailerError(ErrorKind.CGROUP_CONTROLLER_UNAVAILABLE, controller=controller)
        return found
