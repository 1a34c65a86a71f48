"""IPC/UTS namespaces (Stockade hardening) and the optional new PID namespace (§2.11).

The PID namespace is entered with unshare(CLONE_NEWPID) and a fork: the child is pid 1 of the
new namespace, exactly like the reference's raw clone(CLONE_NEWPID), without bypassing the
interpreter's fork handling.
"""

from __future__ import annotations

import os

from jailer.errors import ErrorKind, JailerError, os_error_text


def isolate_ipc_and_uts(hostname: str) -> None:
    """Own SysV IPC / POSIX mqueue namespace and own hostname (= the jail id)."""
    from jailer import libc

    try:
        libc.unshare(libc.CLONE_NEWIPC | libc.CLONE_NEWUTS)
    except OSError as error:
        raise JailerError(ErrorKind.UNSHARE_NAMESPACES, namespaces="IPC and UTS", error=os_error_text(error)) from None
    try:
        libc.sethostname(hostname)
    except OSError as error:
        raise JailerError(ErrorKind.SET_HOSTNAME, value=hostname, error=os_error_text(error)) from None


def create_pid_file(path: str) -> int:
    """`O_CREAT|O_EXCL`: a pid file left by an earlier run is an error, never overwritten.

    Created before any fork so that failure aborts the whole run while it can still be undone.
    """
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise JailerError(ErrorKind.FILE_OPEN, path=path, error=os_error_text(error)) from None


def write_pid_file(fd: int, path: str, pid: int) -> None:
    """Decimal, no newline, owned by root (written before the uid drop)."""
    try:
        os.write(fd, str(pid).encode())
    except OSError as error:
        raise JailerError(ErrorKind.WRITE, path=path, error=os_error_text(error)) from None


def fork_into_new_pid_namespace(daemonized: bool) -> int:
    """Return 0 in the child (pid 1 of the new namespace), the child's host pid in the parent."""
    from jailer import libc

    session_leader = not daemonized and os.getsid(0) == os.getpid()
    try:
        libc.unshare(libc.CLONE_NEWPID)
        pid = os.fork()
    except OSError as error:
        raise JailerError(ErrorKind.CLONE, error=os_error_text(error)) from None
    if pid == 0 and session_leader:
        # The new init must not get SIGHUP when the jailer, its session leader, exits.
        os.setsid()
    return pid


def kill_child(pid: int) -> None:
    """Stop a child that must not outlive a failed run (the new PID namespace's init)."""
    import _signal as signal

    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass
