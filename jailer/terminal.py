"""Detach the jailed process from the caller's controlling terminal (Stockade hardening).

A process whose controlling terminal is the operator's can push input into it with TIOCSTI
(where `dev.tty.legacy_tiocsti=1`): the host's shell would run whatever the VMM types. The
reference keeps the caller's session; Stockade gives the terminal up with TIOCNOTTY before exec.
The process stays in its process group, so the terminal's job-control signals (Ctrl-C) still
reach it, and stdio on the terminal keeps working: only the controlling-tty privileges go.
"""

from __future__ import annotations

import os


def has_terminal() -> bool:
    """Whether any standard stream is a terminal (only then is `termios` needed)."""
    return any(os.isatty(fd) for fd in (0, 1, 2))


def drop_controlling_terminal() -> None:
    import _signal as signal

    import fcntl

    session_leader = os.getsid(0) == os.getpid()
    for fd in (0, 1, 2):
        if not os.isatty(fd):
            continue
        import termios  # preloaded by the jailer when a stream is a terminal
        # A session leader giving up its terminal makes the kernel send SIGHUP (and SIGCONT)
        # to the terminal's foreground group, which includes this process: ignore it meanwhile.
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN) if session_leader else None
        try:
            fcntl.ioctl(fd, termios.TIOCNOTTY)
        except OSError:
            continue  # ENOTTY: a terminal, but not our controlling one
        finally:
            if previous is not None:
                signal.signal(signal.SIGHUP, previous)
        return
