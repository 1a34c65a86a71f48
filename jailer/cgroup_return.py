"""Leaving the jail's cgroups again when a run fails after joining them.

A cgroup directory cannot be removed while a process is in it, and the process in it is the
failing jailer itself; so before `CgroupPlan.undo()` removes the directories this run created,
the jailer moves itself back to the cgroups it started in, as recorded before it joined.
"""

from __future__ import annotations

import os


class CgroupMembership:
    """Where this process was in each mounted hierarchy: cgroup.procs files to write back to."""

    __slots__ = ("procs_files",)

    def __init__(self, procs_files: list[str]) -> None:
        self.procs_files = procs_files

    @classmethod
    def of_this_process(cls) -> "CgroupMembership":
        with open("/proc/self/cgroup", encoding="utf-8") as handle:
            memberships = [line.rstrip("\n").split(":", 2) for line in handle if line.count(":") >= 2]
        with open("/proc/self/mountinfo", encoding="utf-8") as handle:
            mounts = [_parse_mountinfo(line) for line in handle]
        procs_files = []
        for _, controllers, path in memberships:
            wanted = set(controllers.split(",")) if controllers else set()
            for root, mount_point, fstype, options in mounts:
                matches = (fstype == "cgroup2" and not wanted) or (
                    fstype == "cgroup" and wanted and wanted <= set(options.split(","))
                )
                if matches and (path + "/").startswith(root.rstrip("/") + "/"):
                    relative = path[len(root.rstrip("/")):].lstrip("/")
                    procs_files.append(os.path.join(mount_point, relative, "cgroup.procs"))
                    break
        return cls(procs_files)

    def rejoin(self, pid: int | None = None) -> None:
        """Move the process (default: this one) back; failures are left to the directory
        removal to report."""
        encoded = str(pid or os.getpid()).encode()
        for procs in self.procs_files:
            try:
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                os.write(fd, encoded)
            except OSError:
                pass
            finally:
                os.close(fd)


def _parse_mountinfo(line: str) -> tuple[str, str, str, str]:
    """(root, mount point, fs type, super options) of one /proc/self/mountinfo line."""
    before, _, after = line.rstrip("\n").partition(" - ")
    fields = before.split(" ")
    fstype, _, super_options = (after.split(" ") + ["", "", ""])[:3]
    return _unescape(fields[3]), _unescape(fields[4]), fstype, super_options


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in text:
        return text
    return text.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")
