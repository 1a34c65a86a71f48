"""Turn parsed arguments into a validated `JailConfig`, in the reference's order (§1.3).

Nothing here creates anything on disk: a validation failure leaves the host as it was. The only
side effect is the reference's cgroup-v2 "move to parent" write (step 8), which moves this
process and touches no file system state a later run could trip over.
"""

from __future__ import annotations

import errno
import os
import stat

from jailer.args import ParsedArgs
from jailer.errors import ErrorKind, JailerError, os_error_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jailer.mounts import BindMount

MAX_ID_LEN = 64
U32_MAX = (1 << 32) - 1
U8_MAX = (1 << 8) - 1
U64_MAX = (1 << 64) - 1
DEFAULT_NO_FILE = 2048
NUL_BYTE_TEXT = "file name contained an unexpected NUL byte"  # Rust's io::Error text


# Plain classes instead of dataclasses/typing: importing those costs milliseconds on every jailer
# start, and start-up time is a product feature.
class SeccompChoice:
    """Which outer filter to install: a None program means `--no-seccomp`."""

    __slots__ = ("description", "program")

    def __init__(self, description: str, program: bytes | None) -> None:
        self.description = description
        self.program = program


class JailConfig:
    """Everything a run needs, validated; `cgroup_plan` is a `jailer.cgroups.CgroupPlan` or None."""

    __slots__ = (
        "jail_id", "exec_file", "exec_file_name", "chroot_base", "chroot_dir", "uid", "gid", "netns",
        "daemonize", "new_pid_ns", "parent_cgroup", "cgroup_version", "cgroup_plan", "resource_limits",
        "userfaultfd_minor", "binds", "seccomp", "extra_args",
    )

    def __init__(
        self, *, jail_id: str, exec_file: str, exec_file_name: str, chroot_base: str, chroot_dir: str,
        uid: int, gid: int, netns: str | None, daemonize: bool, new_pid_ns: bool, parent_cgroup: str,
        cgroup_version: int, cgroup_plan: object | None, resource_limits: dict[str, int],
        userfaultfd_minor: int | None, extra_args: list[str],
    ) -> None:
        self.jail_id = jail_id
        self.exec_file = exec_file
        self.exec_file_name = exec_file_name
        self.chroot_base = chroot_base
        self.chroot_dir = chroot_dir
        self.uid = uid
        self.gid = gid
        self.netns = netns
        self.daemonize = daemonize
        self.new_pid_ns = new_pid_ns
        self.parent_cgroup = parent_cgroup
        self.cgroup_version = cgroup_version
        self.cgroup_plan: Any = cgroup_plan
        self.resource_limits = resource_limits
        self.userfaultfd_minor = userfaultfd_minor
        self.extra_args = extra_args
        self.binds: list[BindMount] = []
        self.seccomp: SeccompChoice | None = None


def parse_rust_uint(text: str, maximum: int) -> int | None:
    """Rust's `str::parse::<uN>()`: optional '+', then ASCII digits only, within range."""
    error = rust_uint_error(text, maximum)
    return None if error else int(_significant_digits(text))


def _significant_digits(text: str) -> str:
    # Compared as strings, never through int(): Python refuses to convert more than 4300
    # digits (a ValueError), while Rust just says the number is too large (or, with leading
    # zeros, parses it).
    return (text[1:] if text.startswith("+") else text).lstrip("0") or "0"


def rust_uint_error(text: str, maximum: int) -> str | None:
    """The `ParseIntError` Display text for `text`, or None when it parses."""
    if text == "":
        return "cannot parse integer from empty string"
    digits = text[1:] if text.startswith("+") else text
    if digits == "" or not all("0" <= ch <= "9" for ch in digits):
        return "invalid digit found in string"
    significant, limit = _significant_digits(text), str(maximum)
    if len(significant) > len(limit) or (len(significant) == len(limit) and significant > limit):
        return "number too large to fit in target type"
    return None


def validate_instance_id(jail_id: str) -> None:
    length = len(jail_id.encode("utf-8", "surrogateescape"))
    if length < 1 or length > MAX_ID_LEN:
        raise JailerError(
            ErrorKind.INVALID_INSTANCE_ID,
            detail=f"Invalid len ({length});  the length must be between 1 and {MAX_ID_LEN}",
        )
    for position, char in enumerate(jail_id):
        if char != "-" and not char.isalnum():
            raise JailerError(ErrorKind.INVALID_INSTANCE_ID, detail=f"Invalid char ({char}) at position {position}")


def canonicalize(path: str) -> str:
    if path == "":  # Rust's canonicalize("") fails; Python's realpath would give the cwd
        raise JailerError(ErrorKind.CANONICALIZE, path=path, error=os_error_text(FileNotFoundError(errno.ENOENT, "")))
    try:
        # realpath(strict=True) resolves like canonicalize(3) and fails on a missing component.
        return os.path.realpath(path, strict=True)
    except OSError as error:
        raise JailerError(ErrorKind.CANONICALIZE, path=path, error=os_error_text(error)) from None
    except ValueError:  # an embedded NUL: unreachable from argv, possible in-process
        raise JailerError(ErrorKind.CANONICALIZE, path=path, error=NUL_BYTE_TEXT) from None


def validate_exec_file(path: str) -> tuple[str, str]:
    """Canonical exec file path and its file name (of the target when `path` is a symlink)."""
    canonical = canonicalize(path)
    try:
        is_file = stat.S_ISREG(os.stat(canonical).st_mode)
    except OSError:
        is_file = False
    if not is_file:
        raise JailerError(ErrorKind.NOT_A_FILE, path=canonical)
    return canonical, os.path.basename(canonical)


def validate_chroot_base(path: str) -> str:
    canonical = canonicalize(path)
    if not os.path.isdir(canonical):
        raise JailerError(ErrorKind.NOT_A_DIRECTORY, path=canonical)
    return canonical


def parse_id_value(text: str, kind: ErrorKind) -> int:
    value = parse_rust_uint(text, U32_MAX)
    if value is None:
        raise JailerError(kind, value=text)
    return value


def has_root_cur_or_parent_component(path: str) -> bool:
    """Whether Rust's `Path::components()` yields RootDir, CurDir or ParentDir for `path`.

    Rust drops interior `.` components and empty ones from repeated or trailing `/`, but
    keeps a leading `.` as CurDir. (Also the check of `--cgroup` file names.)
    """
    parts = path.split("/")
    return path.startswith("/") or parts[0] == "." or ".." in parts


def validate_parent_cgroup_path(path: str) -> str:
    """Step 6: reject an absolute parent cgroup, any `..` or a leading `./`."""
    if has_root_cur_or_parent_component(path):
        raise JailerError(ErrorKind.CGROUP_INVALID_PARENT_PATH)
    return path


def parse_cgroup_version_text(text: str) -> int:
    value = parse_rust_uint(text, U8_MAX)
    if value is None:
        raise JailerError(ErrorKind.CGROUP_INVALID_VERSION, value=text)
    return value


def parse_resource_limits(values: list[str]) -> dict[str, int]:
    """`res=value` pairs; the value is parsed before the name is checked, as the reference does."""
    limits = {"no-file": DEFAULT_NO_FILE}
    for argument in values:
        if "=" not in argument:
            raise JailerError(ErrorKind.RESOURCE_LIMIT_FORMAT, value=argument)
        name, text = argument.split("=", 1)
        error = rust_uint_error(text, U64_MAX)
        if error is not None:
            raise JailerError(ErrorKind.RESOURCE_LIMIT_VALUE, value=text, error=error)
        if name not in ("fsize", "no-file"):
            raise JailerError(ErrorKind.RESOURCE_LIMIT_NAME, name=name)
        limits[name] = int(_significant_digits(text))
    return limits


def userfaultfd_minor(misc_text: str) -> int | None:
    """Minor number of `userfaultfd` in /proc/misc text.

    The kernel prints each line with `%3i %s`, so minors below 100 are space-padded; unlike the
    reference parser (which then misses them), leading spaces are tolerated here.
    """
    for line in misc_text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "userfaultfd" and parts[0].isdigit():
            return int(parts[0])
    return None


def read_userfaultfd_minor() -> int | None:
    # Bytes decoded by hand: bytes.decode("ascii") is built in, while a text-mode open with
    # encoding="ascii" imports the `encodings.ascii` codec module. splitlines() makes the
    # text layer's newline translation irrelevant.
    try:
        with open("/proc/misc", "rb") as misc:
            return userfaultfd_minor(misc.read().decode("ascii", "replace"))
    except OSError:
        return None


def validate(args: ParsedArgs) -> JailConfig:
    """Every check of the reference (§1.3) in its order, then Stockade's own flags."""
    jail_id = args.values["id"]
    validate_instance_id(jail_id)
    exec_file, exec_file_name = validate_exec_file(args.values["exec-file"])
    chroot_base = validate_chroot_base(args.value("chroot-base-dir") or "")
    chroot_dir = os.path.join(chroot_base, exec_file_name, jail_id, "root")
    uid = parse_id_value(args.values["uid"], ErrorKind.UID)
    gid = parse_id_value(args.values["gid"], ErrorKind.GID)
    parent_cgroup = validate_parent_cgroup_path(args.value("parent-cgroup") or exec_file_name)
    cgroup_version = parse_cgroup_version_text(args.value("cgroup-version") or "")
    cgroup_values = args.multiple("cgroup")
    cgroup_plan = None
    if cgroup_values or cgroup_version == 2:
        try:
            from jailer import cgroups
        except ImportError as error:
            raise JailerError(ErrorKind.UNAVAILABLE, feature="cgroup support", detail=str(error)) from None
        if not cgroup_values:
            cgroups.move_to_parent_cgroup(parent_cgroup, os.getpid())
        else:
            cgroup_plan = cgroups.plan_cgroups(cgroup_values, str(cgroup_version), parent_cgroup, jail_id)
    resource_limits = parse_resource_limits(args.multiple("resource-limit"))
    config = JailConfig(
        jail_id=jail_id,
        exec_file=exec_file,
        exec_file_name=exec_file_name,
        chroot_base=chroot_base,
        chroot_dir=chroot_dir,
        uid=uid,
        gid=gid,
        netns=args.value("netns"),
        daemonize=args.flag("daemonize"),
        new_pid_ns=args.flag("new-pid-ns"),
        parent_cgroup=parent_cgroup,
        cgroup_version=cgroup_version,
        cgroup_plan=cgroup_plan,
        resource_limits=resource_limits,
        userfaultfd_minor=None if args.flag("no-userfaultfd") else read_userfaultfd_minor(),
        extra_args=args.extra_args,
    )
    _validate_stockade_flags(args, config)
    return config


def _validate_stockade_flags(args: ParsedArgs, config: JailConfig) -> None:
    """Bind mounts, the Python runtime and the outer seccomp filter, checked before any change."""
    from jailer import mounts, seccomp

    binds = [mounts.parse_bind(spec, read_only=True) for spec in args.multiple("ro-bind")]
    binds += [mounts.parse_bind(spec, read_only=False) for spec in args.multiple("bind")]
    if args.flag("python-runtime"):
        binds += mounts.python_runtime_binds()
    mounts.check_bind_targets(binds, config.exec_file_name)
    config.binds = binds
    config.seccomp = seccomp.choose_filter(
        policy_path=args.value("seccomp-policy") if "seccomp-policy" in args.values else None,
        category=args.values.get("seccomp-category"),
        disabled=args.flag("no-seccomp"),
    )
