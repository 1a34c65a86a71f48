"""The jailer's one error type: every failure is a `JailerError` carrying an `ErrorKind`.

Tools that drive Firecracker's jailer match its stderr text, so each kind carries the exact
message template of the reference (Firecracker's `JailerError` Display strings), and error
numbers are rendered the way a Rust binary linked against musl renders them:
``"<musl strerror text> (os error N)"``.
"""

from __future__ import annotations

import enum
import errno
import os

# musl's strerror texts (Firecracker's release jailer is a static musl binary), for the errnos
# jailer code paths can produce. ELOOP follows the reference document, which records
# "Too many levels of symbolic links (os error 40)" for a symlinked destination.
_MUSL_STRERROR: dict[int, str] = {
    errno.EPERM: "Operation not permitted",
    errno.ENOENT: "No such file or directory",
    errno.ESRCH: "No such process",
    errno.EINTR: "Interrupted system call",
    errno.EIO: "I/O error",
    errno.ENXIO: "No such device or address",
    errno.E2BIG: "Argument list too long",
    errno.ENOEXEC: "Exec format error",
    errno.EBADF: "Bad file descriptor",
    errno.ECHILD: "No child process",
    errno.EAGAIN: "Resource temporarily unavailable",
    errno.ENOMEM: "Out of memory",
    errno.EACCES: "Permission denied",
    errno.EFAULT: "Bad address",
    errno.ENOTBLK: "Block device required",
    errno.EBUSY: "Resource busy",
    errno.EEXIST: "File exists",
    errno.EXDEV: "Cross-device link",
    errno.ENODEV: "No such device",
    errno.ENOTDIR: "Not a directory",
    errno.EISDIR: "Is a directory",
    errno.EINVAL: "Invalid argument",
    errno.ENFILE: "Too many open files in system",
    errno.EMFILE: "No file descriptors available",
    errno.ENOTTY: "Not a tty",
    errno.ETXTBSY: "Text file busy",
    errno.EFBIG: "File too large",
    errno.ENOSPC: "No space left on device",
    errno.ESPIPE: "Invalid seek",
    errno.EROFS: "Read-only file system",
    errno.EMLINK: "Too many links",
    errno.EPIPE: "Broken pipe",
    errno.ERANGE: "Result not representable",
    errno.ENAMETOOLONG: "Filename too long",
    errno.ENOSYS: "Function not implemented",
    errno.ENOTEMPTY: "Directory not empty",
    errno.ELOOP: "Too many levels of symbolic links",
    errno.EOPNOTSUPP: "Not supported",
    errno.EDQUOT: "Quota exceeded",
    errno.ENOTSOCK: "Not a socket",
    errno.EADDRINUSE: "Address in use",
}


def strerror_text(number: int) -> str:
    """musl's text for `number`, falling back to the C library's for errnos not listed."""
    return _MUSL_STRERROR.get(number) or os.strerror(number)


def os_error_text(err: OSError | int) -> str:
    """Render an OS error the way Rust's `io::Error` Display does: `<text> (os error N)`.

    An OSError without an errno (raised by Python itself) keeps its own text.
    """
    number = err if isinstance(err, int) else err.errno
    if number is None:
        return str(err)
    return f"{strerror_text(number)} (os error {number})"


class ErrorKind(enum.Enum):
    """Each failure the jailer reports, with its exact message template.

    Template fields (keyword arguments of `JailerError`):
      ``path``/``src``/``dst``: a filesystem path; ``error``: an OS error already rendered by
      `os_error_text` (or another library's one-line text); ``detail``: a free one-line reason;
      ``value``: the user's argument text; ``name``/``controller``/``file``/``resource``/
      ``namespaces``/``category``: the named thing.

    Members marked ``unquoted=True`` reproduce Firecracker's `format!("{:?}").replace('"', "")`
    messages, so every double quote (even one inside a path) is removed from the final text.
    """

    def __init__(self, template: str, unquoted: bool = False) -> None:
        self.template = template
        self.unquoted = unquoted

    # Start-up and command line
    SANITIZE = ("Failed to sanitize the Jailer process: Failed to call close range syscall: {error}",)
    ARGUMENT_PARSING = ("Failed to parse arguments: {detail}",)

    # Validation (reference §1.3, in order)
    INVALID_INSTANCE_ID = ("Invalid instance ID: {detail}",)
    CANONICALIZE = ("Failed to canonicalize path {path}: {error}", True)
    NOT_A_FILE = ("{path} is not a file", True)
    NOT_A_DIRECTORY = ("{path} is not a directory", True)
    UID = ("Invalid uid: {value}",)
    GID = ("Invalid gid: {value}",)
    CGROUP_INVALID_PARENT_PATH = (
        "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'",
    )
    CGROUP_INVALID_VERSION = ("{value} is an invalid cgroup version specifier",)
    CGROUP_HIERARCHY_MISSING = ("Hierarchy not found: {detail}",)
    CGROUP_MOVE = (
        "Failed to move process to cgroup ({path}): {error}.\n"
        "Hint: If you intended to create a child cgroup under {path}, pass any --cgroup parameters.",
        True,
    )
    CGROUP_FORMAT = ("Invalid format for cgroups: {value}",)
    CGROUP_INVALID_FILE = ("Cgroup invalid file: {value}",)
    CGROUP_CONTROLLER_UNAVAILABLE = ("Controller {controller} is unavailable",)
    CGROUP_INHERIT_FROM_PARENT = (
        "Failed to inherit cgroups configurations from file {file} in path {path}",
        True,
    )
    CGROUP_REMOVE = ("Failed to remove cgroup {path}: {error}", True)
    RESOURCE_LIMIT_FORMAT = ("Invalid format for resources limits: {value}",)
    RESOURCE_LIMIT_VALUE = ("Invalid limit value for resource: {value}: {error}",)
    RESOURCE_LIMIT_NAME = ("Invalid resource argument: {name}",)

    # Files and directories
    READ_TO_STRING = ("Failed to read file {path} into a string: {error}", True)
    WRITE = ("Failed to write to {path}: {error}", True)
    CREATE_DIR = ("Failed to create directory {path}: {error}", True)
    OPEN = ("Failed to open {path}: {error}", True)
    FILE_OPEN = ("Failed to open file {path}: {error}", True)
    HARD_LINK = ("Detected hard link at: {path}", True)
    CHANGE_FILE_OWNER = ("Failed to change owner for {path}: {error}", True)
    CHANGE_FILE_MODE = ("Failed to change permissions on {path}: {error}", True)
    COPY = ("Failed to copy {src} to {dst}: {error}", True)

    # Run-time steps (reference §2)
    SETNS = ("Failed to join network namespace: netns: {error}",)
    SET_RESOURCE_LIMIT = ("Failed to set limit for resource: {resource}",)
    UNSHARE_NEWNS = ("Failed to unshare into new mount namespace: {error}",)
    MOUNT_PROPAGATION_SLAVE = ("Failed to change the propagation type to slave: {error}",)
    MOUNT_BIND = ("Failed to bind mount the jail root directory: {error}",)
    CHDIR = ("Failed to change current directory: {error}",)
    MKDIR_OLD_ROOT = ("Failed to create the jail root directory before pivoting root: {error}",)
    PIVOT_ROOT = ("Failed to pivot root: {error}",)
    CHDIR_NEW_ROOT = ("Failed to chdir into chroot directory: {error}",)
    UMOUNT_OLD_ROOT = ("Failed to unmount the old jail root: {error}",)
    RMDIR_OLD_ROOT = ("Failed to remove old jail root directory: {error}",)
    MKNOD = ("Failed to create {path} via mknod inside the jail: {error}", True)
    DAEMONIZE = ("Failed to daemonize: {error}",)
    SETSID = ("Failed to daemonize: setsid: {error}",)
    DUP2 = ("Failed to duplicate fd: {error}",)
    CLONE = ("Failed cloning into a new child process: {error}",)
    EXEC = ("Failed to exec into Firecracker: {error}",)

    # Stockade's hardening and extra flags (no Firecracker counterpart)
    UNSHARE_NAMESPACES = ("Failed to unshare into new {namespaces} namespaces: {error}",)
    SET_HOSTNAME = ("Failed to set the jail hostname to {value}: {error}",)
    BIND_SPEC = ("Invalid bind mount {value}: {detail}",)
    BIND_MOUNT = ("Failed to bind mount {src} onto {dst}: {error}", True)
    PYTHON_RUNTIME = ("Failed to compute the Python runtime for the jail: {detail}",)
    SECCOMP_POLICY = ("Invalid seccomp policy {path}: {detail}",)
    SECCOMP_CATEGORY = ("Seccomp category {category} not found in {path}",)
    SECCOMP_TOOLCHAIN = ("Seccomp policy toolchain unavailable: {detail}",)
    SECCOMP_INSTALL = ("Failed to install the seccomp filter: {error}",)
    CAPABILITIES = ("Failed to drop capabilities: {detail}",)
    PRIVILEGES = ("Failed to drop privileges: {detail}",)
    UNAVAILABLE = ("{feature} is unavailable: {detail}",)
    INTERNAL = ("Internal jailer error: {detail}",)
    INTERRUPTED = ("Interrupted by {name} while building the jail",)
    CLEANUP_INCOMPLETE = ("Clean-up after the failure was incomplete: {detail}",)


class JailerError(Exception):
    """A jailer failure: `.kind` says which, `str(err)` is the exact one-line (or, for
    CGROUP_MOVE, two-line) message printed on stderr before exiting 1."""

    def __init__(self, kind: ErrorKind, **fields: object) -> None:
        message = kind.template.format(**fields)
        if kind.unquoted:
            message = message.replace('"', "")
        super().__init__(message)
        self.kind = kind
        self.fields = fields
        self.message = message

    def __str__(self) -> str:
        return self.message
