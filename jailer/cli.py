"""`jailer`: Firecracker's jailer command line and step order, hardened further.

The run is fail-closed: every change after validation is recorded in an undo log, and any
failure reverts them (newest first) before exiting 1 with one clear error line on stderr.
"""

from __future__ import annotations

import os
import sys
import time

from jailer.args import parse_args
from jailer.errors import ErrorKind, JailerError
from jailer.undo import UndoLog
from jailer.validation import JailConfig, validate

TYPE_CHECKING = False
if TYPE_CHECKING:
    from jailer.janitor import Janitor


def _monotonic_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _cpu_us() -> int:
    return time.clock_gettime_ns(time.CLOCK_PROCESS_CPUTIME_ID) // 1000


def _version() -> str:
    """The stockade distribution's version, kept in `jailer.__version__` (a test checks they
    agree) because importing importlib.metadata would triple the cost of `jailer --help`."""
    from jailer import __version__

    return __version__


class JailRun:
    """One run of the reference's steps 5-18 (§2), with Stockade's hardening woven in."""

    def __init__(self, config: JailConfig, start_time_us: int, start_time_cpu_us: int) -> None:
        self.config = config
        self.start_time_us = start_time_us
        self.start_time_cpu_us = start_time_cpu_us
        self.undo = UndoLog()
        self.host_mount_ns: int | None = None
        self.in_jail_mount_ns = False
        self.janitor: Janitor | None = None
        # Set in the janitor: the failing process to move out of the jail's cgroups.
        self.failing_pid: int | None = None

    def host_path(self, jail_path: str) -> str:
        return os.path.join(self.config.chroot_dir, jail_path.lstrip("/"))

    def preload(self) -> None:
        """Import now everything later steps need: after pivot_root the host's Python files are
        out of reach, and after a small `no-file` rlimit an import could not open them.

        Signals go through the built-in `_signal` (the `signal` module's enum wrappers cost
        ~1 ms), capabilities through python-prctl's C module `_prctl` (its `prctl` wrapper
        builds properties for every capability at import, ~2 ms, for two calls it forwards
        unchanged), and `termios` is loaded only when a standard stream is a terminal.
        """
        import _prctl  # noqa: F401

        import fcntl  # noqa: F401

        from jailer import (  # noqa: F401
            chroot, devices, exec_file, janitor, libc, mounts, namespaces, preflight, privileges,
            resource_limits, seccomp, terminal,
        )

        if terminal.has_terminal():
            import termios  # noqa: F401
        if self.config.daemonize:
            from jailer import daemonize  # noqa: F401
        if self.config.seccomp is not None and self.config.seccomp.program is not None:
            from jailer.policies import loader

            loader.prepare()
        libc._libc()

    def run(self) -> None:
        from jailer import chroot, exec_file, resource_limits

        self.preload()
        config = self.config
        # Opened before the rlimits: the way back for a clean-up after pivot_root.
        self.host_mount_ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        chroot.create_dir_all(config.chroot_dir, self.undo)
        exec_file.copy_exec_file(
            config.exec_file, config.chroot_dir, config.exec_file_name, config.uid, config.gid, self.undo
        )
        if config.netns is not None:
            from jailer.netns import join_netns

            join_netns(config.netns)
        resource_limits.install_limits(config.resource_limits)
        if config.cgroup_plan is not None:
            plan = config.cgroup_plan
            # Leaves the jail's cgroups (this process, and the failing child when the janitor
            # undoes the run), then removes them.
            self.undo.add("cgroups", lambda: plan.undo(also_move=(self.failing_pid,) if self.failing_pid else ()))
            plan.apply(os.getpid())
        dev_null = None
        if config.daemonize:
            from jailer.daemonize import open_dev_null

            dev_null = open_dev_null()
        self.enter_jail()
        jailer_cpu_time_us = _cpu_us() - self.start_time_cpu_us
        if dev_null is not None:
            from jailer.daemonize import daemonize

            daemonize(dev_null)
            jailer_cpu_time_us += _cpu_us()
        self.write_pid_file_and_fork()
        self.exec_into(jailer_cpu_time_us)

    def enter_jail(self) -> None:
        """Steps 12-14: mount namespace, binds, pivot_root, folders, devices (+ IPC/UTS ns)."""
        from jailer import chroot, devices, mounts, namespaces, preflight

        config = self.config
        chroot.unshare_mount_namespace()
        self.in_jail_mount_ns = True
        mounts.make_bind_mounts(config.binds, config.chroot_dir, self.undo.created_path)
        chroot.pivot_into(config.chroot_dir)
        namespaces.isolate_ipc_and_uts(config.jail_id)
        chroot.setup_jailed_folders(config.uid, config.gid, self.host_path, self.undo)
        devices.make_devices(config.userfaultfd_minor, config.uid, config.gid, self.host_path, self.undo)
        preflight.check_executable(f"/{config.exec_file_name}", config.uid, config.gid)

    def write_pid_file_and_fork(self) -> None:
        """Step 17: the pid file always; with --new-pid-ns the parent writes the child's pid and exits 0."""
        from jailer import namespaces
        from jailer.janitor import start_janitor

        config = self.config
        jail_path = f"/{config.exec_file_name}.pid"
        fd = namespaces.create_pid_file(jail_path)
        self.undo.created_path(self.host_path(jail_path), is_dir=False)
        try:
            # Everything is recorded now; from here on failures are undone by the janitor,
            # forked before the PID namespace so it is never a child of the VMM.
            self.janitor = start_janitor(self.clean_up_in_janitor)
            if config.new_pid_ns:
                child = namespaces.fork_into_new_pid_namespace(config.daemonize)
                if child:
                    try:
                        namespaces.write_pid_file(fd, jail_path, child)
                    except JailerError:
                        namespaces.kill_child(child)
                        raise
                    sys.stdout.flush()
                    os._exit(0)
            else:
                namespaces.write_pid_file(fd, jail_path, os.getpid())
        finally:
            os.close(fd)

    def exec_into(self, jailer_cpu_time_us: int) -> None:
        """Step 18: drop privileges, reset signals, install the outer filter, exec."""
        import _signal as signal

        from jailer import privileges, seccomp, terminal

        config = self.config
        terminal.drop_controlling_terminal()
        privileges.harden_capabilities()
        # Past this point a clean-up could not re-enter the host mount namespace anyway.
        if self.host_mount_ns is not None:
            os.close(self.host_mount_ns)
            self.host_mount_ns = None
        privileges.switch_ids(config.uid, config.gid)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        # Python ignores SIGPIPE and SIGXFSZ; the VMM must see the defaults (an fsize rlimit kills).
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)
        path = f"/{config.exec_file_name}"
        argv = [
            path,
            "--id", config.jail_id,
            "--start-time-us", str(self.start_time_us),
            "--start-time-cpu-us", str(_cpu_us()),
            "--parent-cpu-time-us", str(jailer_cpu_time_us),
            *config.extra_args,
        ]
        sys.stdout.flush()
        sys.stderr.flush()
        if config.seccomp is not None:
            seccomp.install(config.seccomp)
        try:
            os.execve(path, argv, {})
        except OSError as error:
            from jailer.errors import os_error_text

            raise JailerError(ErrorKind.EXEC, error=os_error_text(error)) from None

    def clean_up_in_janitor(self, failing_pid: int) -> list[str]:
        self.failing_pid = failing_pid
        return self.abort()

    def abort(self) -> list[str]:
        """Revert what this run created, from the host's mount namespace when we left it."""
        if self.janitor is not None:
            janitor, self.janitor = self.janitor, None
            self.undo.forget()
            return janitor.abort()
        if self.in_jail_mount_ns:
            if self.host_mount_ns is None:
                left = ", ".join(description for description, _ in reversed(self.undo.entries))
                self.undo.forget()
                return [f"cannot return to the host mount namespace; left behind: {left}"] if left else []
            from jailer import libc

            try:
                libc.setns(self.host_mount_ns, libc.CLONE_NEWNS)
            except OSError as error:
                return [f"cannot return to the host mount namespace: {error}"]
            self.in_jail_mount_ns = False
        return self.undo.run()


def _fail(error: JailerError) -> int:
    print(error, file=sys.stderr, flush=True)
    return 1


class _Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived while the jail was being built."""


_STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def _interrupt(signum: int, _frame: object) -> None:
    import _signal as signal

    # By number, as `signal.Signals(signum).name` would say, without importing `signal` (it may
    # be too late for imports: this runs at any point, also after pivot_root).
    raise _Interrupted(next((name for name in _STOP_SIGNALS if getattr(signal, name) == signum), f"signal {signum}"))


def _set_stop_signals(handler: object) -> None:
    """A stop signal mid-run must still clean up (exec resets these handlers to default)."""
    import _signal as signal

    for name in _STOP_SIGNALS:
        signal.signal(getattr(signal, name), handler)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jailer` console script and `python -m jailer`."""
    from jailer.sanitize import sanitize_process

    try:
        sanitize_process()
    except JailerError as error:
        return _fail(error)
    args = sys.argv[1:] if argv is None else argv
    try:
        parsed = parse_args(args)
        if parsed.help:
            from jailer.args import help_text
            from jailer.help import HARDENING_HELP

            sys.stdout.write(help_text(_version()) + HARDENING_HELP)
            return 0
        if parsed.version:
            print(f"Jailer v{_version()}\n")
            return 0
        start_time_us, start_time_cpu_us = _monotonic_us(), _cpu_us()
        config = validate(parsed)
    except JailerError as error:
        return _fail(error)
    except KeyboardInterrupt:
        return _fail(JailerError(ErrorKind.INTERRUPTED, name="SIGINT"))
    except Exception as error:  # a bug must still give one line, not a traceback
        return _fail(JailerError(ErrorKind.INTERNAL, detail=f"{type(error).__name__}: {error}"))
    _set_stop_signals(_interrupt)
    if config.seccomp is not None:
        from jailer.seccomp import announce

        announce(config.seccomp)
    jail = JailRun(config, start_time_us, start_time_cpu_us)
    try:
        jail.run()
    except JailerError as error:
        primary = error
    except _Interrupted as error:
        primary = JailerError(ErrorKind.INTERRUPTED, name=str(error))
    except Exception as error:
        primary = JailerError(ErrorKind.INTERNAL, detail=f"{type(error).__name__}: {error}")
    import _signal as signal

    _set_stop_signals(signal.SIG_IGN)  # the clean-up itself must not be interrupted
    failures = jail.abort()
    _fail(primary)
    if failures:
        _fail(JailerError(ErrorKind.CLEANUP_INCOMPLETE, detail="; ".join(failures)))
    return 1
