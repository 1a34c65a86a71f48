"""The jailer's cgroups: Firecracker's jailer semantics (reference §1.3 steps 6-9, §2.6), made
fail-closed, and extended to hybrid hosts.

Validation (`plan_cgroups`) touches nothing on disk; it returns a `CgroupPlan` whose `apply`
does, in this order:

1. every cgroup's values, then every attach (cpuset needs `cpus`/`mems` before a task joins):
   - cgroup v1 (property files read and written through cgroupspy's `Controller`; the
     directory chain is ours, see `_CgroupDir`): one cgroup per *hierarchy* at
     `<mount>/<parent cgroup>/<id>`; before each value, the property file is inherited from the
     parent cgroup, recursively up to `depth` levels when the parent's copy is empty (how
     `cpuset.cpus`/`cpuset.mems` reach a new level); values in argument order; then one write
     of the pid to `tasks`.
   - cgroup v2: one cgroup at `<unified root>/<parent cgroup>/<id>`; on the first use of a
     controller, `+<controller>` is written top-down to `cgroup.subtree_control` of every
     ancestor that has one, down to `<parent cgroup>` but not `<id>`; values in argument
     order; then one write of the pid to `cgroup.procs`.
2. it records each directory it created and where the pid was before, so `undo` can move this
   run's own process(es) back and remove exactly those directories, deepest first.

Hybrid hosts: see `jailer.cgroup_mounts` — a controller is served by whichever hierarchy has
it, the requested `--cgroup-version`'s first. On such a host one run may create a v1 cgroup
and a v2 cgroup; each follows its own version's rules above.

Deliberate differences from the reference, each for a host it would mishandle:
- v1 controllers co-mounted on one hierarchy (`cpu,cpuacct`, or every controller on one mount)
  share one cgroup object, so the pid is written to that hierarchy's `tasks` once, not once per
  controller.
- Inherited values are stripped of surrounding whitespace (the reference drops the last byte,
  which would truncate a file that lacks a trailing newline).
- Escaped characters in /proc/mounts paths (`\\040` for a space) are decoded.
"""

from __future__ import annotations

import errno
import os

from jailer.cgroup_mounts import CgroupMounts, Hierarchy
from jailer.errors import ErrorKind, JailerError, os_error_text
from jailer.validation import has_root_cur_or_parent_component, parse_cgroup_version_text, validate_parent_cgroup_path

V1_ATTACH_FILE = "tasks"
V2_ATTACH_FILE = "cgroup.procs"
SUBTREE_CONTROL = "cgroup.subtree_control"


def _normal_components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def validate_parent_cgroup(path: str) -> str:
    """Step 6 (`jailer.validation`'s check); returns the normalised path (`a/./b//` → `a/b`)."""
    return "/".join(_normal_components(validate_parent_cgroup_path(path)))


def parse_cgroup_version(text: str) -> int:
    """Step 7: Rust's `parse::<u8>()` (an optional `+`, ASCII digits, at most 255)."""
    return parse_cgroup_version_text(text)


def _write_once(path: str, text: str) -> None:
    """Rust's `fs::write`: create/truncate, then the whole text in one write(2)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, os.fsencode(text))  # a value from argv: its undecodable bytes as they were
    finally:
        os.close(fd)


def _write_file(path: str, text: str) -> None:
    try:
        _write_once(path, text)
    except OSError as error:
        raise JailerError(ErrorKind.WRITE, path=path, error=os_error_text(error)) from None


def move_to_parent_cgroup(parent_cgroup: str, pid: int, mounts: CgroupMounts | None = None) -> None:
    """Step 8, cgroup v2 without `--cgroup`: join `<unified root>/<parent cgroup>` if it exists.

    Nothing is created: an absent parent is silently left absent, as the reference does.
    """
    mounts = CgroupMounts.read() if mounts is None else mounts
    cg_parent = os.path.join(mounts.unified(), parent_cgroup)
    if not os.path.isdir(cg_parent):
        return
    procs = os.path.join(cg_parent, V2_ATTACH_FILE)
    try:
        _write_once(procs, str(pid))
    except OSError as error:
        raise JailerError(ErrorKind.CGROUP_MOVE, path=cg_parent, error=os_error_text(error)) from None


class CgroupProperty:
    """One `--cgroup <file>=<value>`. (Plain classes, not dataclasses: see `Hierarchy`.)"""

    __slots__ = ("controller", "file", "value")

    def __init__(self, controller: str, file: str, value: str) -> None:
        self.controller = controller
        self.file = file
        self.value = value

    def __repr__(self) -> str:
        return f"CgroupProperty({self.controller!r}, {self.file!r}, {self.value!r})"


class CgroupObject:
    """The cgroup of one hierarchy for this jail, and the values to write into it."""

    def __init__(self, hierarchy: Hierarchy, parent_components: list[str], jail_id: str) -> None:
        self.hierarchy = hierarchy
        self.parent_components = parent_components
        self.jail_id = jail_id
        self.properties: list[CgroupProperty] = []

    def __repr__(self) -> str:
        return f"CgroupObject({self.location!r}, {self.properties!r})"

    @property
    def components(self) -> list[str]:
        return [*self.parent_components, self.jail_id]

    @property
    def location(self) -> str:
        return os.path.join(self.hierarchy.root, *self.components)

    @property
    def attach_file(self) -> str:
        return V1_ATTACH_FILE if self.hierarchy.version == 1 else V2_ATTACH_FILE


class Attachment:
    """A pid written into `cgroup_dir`, and the cgroup (same hierarchy) it came from."""

    __slots__ = ("pid", "cgroup_dir", "attach_file", "origin_dir")

    def __init__(self, pid: int, cgroup_dir: str, attach_file: str, origin_dir: str | None) -> None:
        self.pid = pid
        self.cgroup_dir = cgroup_dir
        self.attach_file = attach_file
        self.origin_dir = origin_dir


def parse_cgroup_value(argument: str) -> tuple[str, str, str]:
    """`<file>=<value>` → (controller, file, value), with the reference's checks in order."""
    parts = argument.split("=")
    if len(parts) != 2 or not parts[1]:
        raise JailerError(ErrorKind.CGROUP_FORMAT, value=argument)
    file, value = parts
    if has_root_cur_or_parent_component(file):
        raise JailerError(ErrorKind.CGROUP_INVALID_FILE, value=argument)
    controller, dot, _ = file.partition(".")
    if not dot:
        raise JailerError(ErrorKind.CGROUP_INVALID_FILE, value=file)
    return controller, file, value


def plan_cgroups(
    values: list[str],
    version: int | str,
    parent_cgroup: str,
    jail_id: str,
    mounts: CgroupMounts | None = None,
) -> "CgroupPlan":
    """Step 9: check every `--cgroup` value and find its hierarchy; nothing is touched on disk."""
    version_number = version if isinstance(version, int) else parse_cgroup_version(version)
    mounts = CgroupMounts.read() if mounts is None else mounts
    mounts.require_version(version_number)
    if version_number == 2:
        mounts.v2_controllers()  # the reference reads them when it builds a v2 configuration
    parent_components = _normal_components(parent_cgroup)
    objects: dict[Hierarchy, CgroupObject] = {}
    for argument in values:
        controller, file, value = parse_cgroup_value(argument)
        hierarchy = mounts.hierarchy_for(controller, version_number)
        cgroup = objects.setdefault(hierarchy, CgroupObject(hierarchy, parent_components, jail_id))
        cgroup.properties.append(CgroupProperty(controller, file, value))
    return CgroupPlan(list(objects.values()))


def _read_current_cgroups(pid: int) -> dict[str, str]:
    """`/proc/<pid>/cgroup` as {controller or `name=` entry: path}, with "" for cgroup v2."""
    path = f"/proc/{pid}/cgroup"
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as cgroup_file:
            text = cgroup_file.read()
    except OSError as error:
        raise JailerError(ErrorKind.READ_TO_STRING, path=path, error=os_error_text(error)) from None
    memberships: dict[str, str] = {}
    for line in text.splitlines():
        _, controllers, cgroup_path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            memberships[controller] = cgroup_path
    return memberships


def _make_dir(path: str, created: list[str]) -> None:
    """mkdir one level, recording it in `created` only when this call made it."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    except OSError as error:
        raise JailerError(ErrorKind.CREATE_DIR, path=path, error=os_error_text(error)) from None
    created.append(path)


def _members(attach_path: str) -> set[int]:
    with open(attach_path, encoding="ascii") as members:
        return {int(line) for line in members.read().split()}


class _CgroupDir:
    """The one attribute cgroupspy's `Controller` uses of its node: `full_path` (bytes).

    cgroupspy's own `Node` lives in `cgroupspy.nodes`, whose `import logging` alone costs
    ~13 ms of start-up (measured with `python -X importtime`, see
    benchmarks/results/jail_handoff.md), and its `create_cgroup` hides whether the directory
    already existed, which the undo must know. So the directory chain is ours and every
    property read and write goes through cgroupspy's `Controller`.
    """

    __slots__ = ("full_path",)

    def __init__(self, path: str) -> None:
        self.full_path = os.fsencode(path)

    @property
    def path(self) -> str:
        return os.fsdecode(self.full_path)


class _V1Writer:
    """Creates one v1 cgroup, then reads and writes its property files through cgroupspy."""

    def __init__(self, cgroup: CgroupObject, created: list[str]) -> None:
        self.cgroup = cgroup
        path = cgroup.hierarchy.root
        self.chain = [_CgroupDir(path)]
        for name in cgroup.components:
            path = os.path.join(path, name)
            _make_dir(path, created)
            self.chain.append(_CgroupDir(path))

    @staticmethod
    def _read(directory: _CgroupDir, file: str) -> str:
        from cgroupspy.controllers import Controller

        try:
            return Controller(directory).get_property(os.fsencode(file))
        except OSError as error:
            path = os.path.join(directory.path, file)
            raise JailerError(ErrorKind.READ_TO_STRING, path=path, error=os_error_text(error)) from None

    @staticmethod
    def write(directory: _CgroupDir, file: str, text: str) -> None:
        from cgroupspy.controllers import Controller

        try:
            Controller(directory).set_property(os.fsencode(file), text)
        except OSError as error:
            path = os.path.join(directory.path, file)
            raise JailerError(ErrorKind.WRITE, path=path, error=os_error_text(error)) from None
        except UnicodeEncodeError:  # cgroupspy writes text: a value with bytes that are not UTF-8
            path = os.path.join(directory.path, file)
            raise JailerError(ErrorKind.WRITE, path=path, error=f"the value {text!r} is not valid UTF-8") from None

    def _inherit(self, level: int, file: str, depth: int) -> None:
        """Copy `file` from chain[level-1] into chain[level]; an empty parent copy is first
        filled from its own parent, up to `depth` more levels."""
        parent = self.chain[level - 1]
        line = self._read(parent, file)
        if not line and depth > 0:
            try:
                self._inherit(level - 1, file, depth - 1)
            except JailerError:
                pass  # a concurrent jailer may be filling the same parent
            line = self._read(parent, file)
        if not line:
            raise JailerError(ErrorKind.CGROUP_INHERIT_FROM_PARENT, file=file, path=self.chain[level].path)
        self.write(self.chain[level], file, f"{line}\n")

    def write_values(self) -> None:
        depth = len(self.cgroup.parent_components)
        for prop in self.cgroup.properties:
            self._inherit(len(self.chain) - 1, prop.file, depth)
            self.write(self.chain[-1], prop.file, f"{prop.value}\n")

    def attach(self, pid: int) -> None:
        self.write(self.chain[-1], V1_ATTACH_FILE, f"{pid}\n")


class _V2Writer:
    """Creates the v2 cgroup, enables its controllers in the ancestors, writes its values.

    Each (ancestor, controller) it enables where the controller was not enabled before goes
    into `enabled`, so that a failed run can disable it again (`CgroupPlan.undo`)."""

    def __init__(self, cgroup: CgroupObject, created: list[str], enabled: list[tuple[str, str]]) -> None:
        self.cgroup = cgroup
        self.enabled = enabled
        path = cgroup.hierarchy.root
        for name in cgroup.components:
            path = os.path.join(path, name)
            _make_dir(path, created)

    def enable_controller(self, directory: str, controller: str) -> None:
        """Write `+controller` top-down into every ancestor's `cgroup.subtree_control`, from the
        highest one that has the file down to `directory`."""
        ancestors: list[str] = []
        while os.path.exists(os.path.join(directory, SUBTREE_CONTROL)):
            ancestors.append(directory)
            upper = os.path.dirname(directory)
            if upper == directory:
                break
            directory = upper
        for ancestor in reversed(ancestors):
            path = os.path.join(ancestor, SUBTREE_CONTROL)
            try:
                with open(path, encoding="ascii", errors="replace") as current:
                    was_enabled = controller in current.read().split()
            except OSError as error:
                raise JailerError(ErrorKind.READ_TO_STRING, path=path, error=os_error_text(error)) from None
            _write_file(path, f"+{controller}\n")
            if not was_enabled:
                self.enabled.append((ancestor, controller))

    def write_values(self) -> None:
        location = self.cgroup.location
        enabled: set[str] = set()
        for prop in self.cgroup.properties:
            if prop.controller not in enabled:
                self.enable_controller(os.path.dirname(location), prop.controller)
                enabled.add(prop.controller)
            _write_file(os.path.join(location, prop.file), f"{prop.value}\n")

    def attach(self, pid: int) -> None:
        _write_file(os.path.join(self.cgroup.location, V2_ATTACH_FILE), f"{pid}\n")


class CgroupPlan:
    """The validated `--cgroup` values, grouped into one cgroup per hierarchy."""

    def __init__(self, objects: list[CgroupObject]) -> None:
        self.objects = objects
        self.created_dirs: list[str] = []
        self.enabled_controllers: list[tuple[str, str]] = []  # (cgroup2 directory, controller)
        self.attachments: list[Attachment] = []

    def __repr__(self) -> str:
        return f"CgroupPlan({self.objects!r}, created_dirs={self.created_dirs!r})"

    def apply(self, pid: int) -> None:
        """Create the cgroups, write every value, then attach `pid` to each (one write each).

        Everything created is recorded before the next step, so `undo` is complete even when
        this raises half-way.
        """
        origins = _read_current_cgroups(pid)
        writers: list[_V1Writer | _V2Writer] = []
        for cgroup in self.objects:
            if cgroup.hierarchy.version == 1:
                writer: _V1Writer | _V2Writer = _V1Writer(cgroup, self.created_dirs)
            else:
                writer = _V2Writer(cgroup, self.created_dirs, self.enabled_controllers)
            writer.write_values()
            writers.append(writer)
        for writer in writers:
            cgroup = writer.cgroup
            origin = origins.get(cgroup.properties[0].controller if cgroup.hierarchy.version == 1 else "")
            origin_dir = None if origin is None else os.path.join(cgroup.hierarchy.root, origin.lstrip("/"))
            self.attachments.append(Attachment(pid, cgroup.location, cgroup.attach_file, origin_dir))
            writer.attach(pid)

    def undo(self, also_move: tuple[int, ...] = ()) -> None:
        """Move this run's process(es) back where they were and remove the directories this run
        created, deepest first. `also_move`: processes that joined through inheritance (the
        failing jailed child, when the janitor undoes a run). Idempotent; raises (after trying
        everything) if any remain."""
        failures: list[tuple[str, str]] = []
        own_pids = {os.getpid(), *also_move}
        for attachment in reversed(self.attachments):
            failure = self._move_back(attachment, own_pids | {attachment.pid})
            if failure is not None:
                failures.append(failure)
        self.attachments.clear()
        remaining: list[str] = []
        for path in sorted(self.created_dirs, key=lambda p: p.count("/"), reverse=True):
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                remaining.append(path)
                failures.append((path, os_error_text(error)))
        self.created_dirs[:] = [path for path in self.created_dirs if path in remaining]
        # Controllers this run enabled in cgroup2 ancestors, disabled again bottom-up. EBUSY:
        # a cgroup that is not ours started using it meanwhile, so it is theirs to keep.
        for directory, controller in reversed(self.enabled_controllers):
            try:
                _write_once(os.path.join(directory, SUBTREE_CONTROL), f"-{controller}\n")
            except FileNotFoundError:
                pass  # a directory this run created, removed above
            except OSError as error:
                if error.errno != errno.EBUSY:
                    failures.append((directory, os_error_text(error)))
        self.enabled_controllers.clear()
        if failures:
            path, error = failures[0]
            raise JailerError(ErrorKind.CGROUP_REMOVE, path=path, error=error)

    @staticmethod
    def _move_back(attachment: Attachment, pids: set[int]) -> tuple[str, str] | None:
        attach_path = os.path.join(attachment.cgroup_dir, attachment.attach_file)
        try:
            still_inside = sorted(pids & _members(attach_path))
        except FileNotFoundError:
            return None
        except OSError as error:
            return (attachment.cgroup_dir, os_error_text(error))
        if still_inside and attachment.origin_dir is None:
            return (attachment.cgroup_dir, "the cgroup its processes came from is unknown")
        for pid in still_inside:
            try:
                _write_file(os.path.join(str(attachment.origin_dir), attachment.attach_file), f"{pid}\n")
            except JailerError as error:
                return (attachment.cgroup_dir, str(error))
        return None
