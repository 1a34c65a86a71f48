"""Fail-closed clean-up for failures after the privilege drop.

Once the jailer has switched to the jail's uid, it can neither re-enter the host's mount
namespace nor remove root-owned files, so a failing seccomp install or exec could not undo the
run by itself. Before dropping privileges it therefore forks a janitor: a root process holding
a copy of the undo log, reparented away (double fork) so it never becomes a child of the VMM.
The two share a CLOEXEC unix socket: a successful exec closes the jailer's end and the janitor
exits without touching anything; a failure sends "abort", and the janitor, from the host's
mount namespace, moves the failing process out of the jail's cgroups (its pid arrives with the
message as SO_PASSCRED credentials, translated even across PID namespaces), runs the undo log
and replies with what it could not remove, before the jailer exits 1.
"""

from __future__ import annotations

import os
import struct

# The C module, not `socket`: the wrapper and its `selectors` import cost ~6 ms per jailer start,
# and these sockets need nothing from it (they are CLOEXEC either way).
import _socket as socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_ABORT = b"abort"
_CLEAN = b"clean"
_UCRED = struct.Struct("iII")  # pid, uid, gid
_MAX_REPLY = 1 << 20


class Janitor:
    """The jailer's end of the channel to its janitor."""

    __slots__ = ("channel",)

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel

    def abort(self) -> list[str]:
        """Have the janitor undo the run; return what it could not remove."""
        try:
            self.channel.send(_ABORT)
            reply = self.channel.recv(_MAX_REPLY)
        except OSError as error:
            return [f"the clean-up process is unreachable: {error}"]
        if reply == _CLEAN:
            return []
        return reply.decode(errors="replace").split("\n") if reply else ["the clean-up process died"]


def start_janitor(clean_up: Callable[[int], list[str]]) -> Janitor:
    """Fork the janitor; `clean_up(pid of the failing process)` runs in it on abort."""
    jailer_end, janitor_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    janitor_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    middle = os.fork()
    if middle == 0:
        try:
            jailer_end.close()
            if os.fork() == 0:
                _serve(janitor_end, clean_up)
        finally:
            os._exit(0)
    janitor_end.close()
    os.waitpid(middle, 0)
    return Janitor(jailer_end)


def _serve(channel: socket.socket, clean_up: Callable[[int], list[str]]) -> None:
    import _signal as signal

    # Its own session: a Ctrl-C meant for the jailer must not kill the one who cleans up after it.
    os.setsid()
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    for fd in (0, 1, 2):  # hold none of the caller's pipes open
        try:
            os.close(fd)
        except OSError:
            pass
    try:
        message, ancillary, _, _ = channel.recvmsg(len(_ABORT), socket.CMSG_SPACE(_UCRED.size))
    except OSError:
        return
    if message != _ABORT:
        return  # end of file: the exec succeeded (or the jailer died)
    pid = None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= _UCRED.size:
            pid = _UCRED.unpack_from(data)[0]
    try:
        failures = clean_up(pid or 0)
    except Exception as error:  # the reply must go out whatever happens
        failures = [f"clean-up failed: {error}"]
    try:
        channel.send("\n".join(failures).encode("utf-8", "backslashreplace")[:_MAX_REPLY] if failures else _CLEAN)
    except OSError:
        pass
