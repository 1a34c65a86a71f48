"""Dropping privileges before exec: Stockade's capability hardening, then the reference's ids.

Order matters and is the only one that works: securebits and the bounding set need
CAP_SETPCAP (still root), setgroups/setgid/setuid need CAP_SETGID/CAP_SETUID, and only then
are the remaining sets emptied. With SECBIT_NOROOT locked, even uid 0 gains no capabilities
at exec; with the bounding set empty, no file capability can bring one back.
"""

from __future__ import annotations

import os

from jailer.errors import ErrorKind, JailerError, os_error_text

# include/uapi/linux/securebits.h: each bit and its lock bit.
SECBIT_NOROOT = 1 << 0
SECBIT_NOROOT_LOCKED = 1 << 1
SECBIT_NO_SETUID_FIXUP = 1 << 2
SECBIT_NO_SETUID_FIXUP_LOCKED = 1 << 3
SECBIT_KEEP_CAPS_LOCKED = 1 << 5
SECBIT_NO_CAP_AMBIENT_RAISE = 1 << 6
SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 1 << 7
LOCKED_SECUREBITS = (
    SECBIT_NOROOT | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED
)
_MAX_CAPABILITY = 63


def harden_capabilities() -> None:
    """Empty bounding and ambient sets, lock the securebits, set no_new_privs (still root).

    Through python-prctl's C module `_prctl`: `prctl.capbset_drop(c)` and
    `prctl.set_no_new_privs(1)` are exactly `_prctl.prctl(PR_CAPBSET_DROP, c)` and
    `_prctl.prctl(PR_SET_NO_NEW_PRIVS, 1)` (same checks, same errors), and the `prctl`
    wrapper module costs ~2 ms to import.
    """
    import _prctl

    from jailer import libc

    try:
        for capability in range(_MAX_CAPABILITY + 1):
            try:
                _prctl.prctl(_prctl.PR_CAPBSET_DROP, capability)
            except (OSError, ValueError) as error:
                # EINVAL marks the first capability this kernel does not know: the set is empty.
                if getattr(error, "errno", 22) == 22:
                    break
                raise
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
        libc.prctl(libc.PR_SET_SECUREBITS, LOCKED_SECUREBITS)
        _prctl.prctl(_prctl.PR_SET_NO_NEW_PRIVS, 1)
    except OSError as error:
        raise JailerError(ErrorKind.CAPABILITIES, detail=os_error_text(error)) from None


def switch_ids(uid: int, gid: int) -> None:
    """setgid, setgroups (EPERM ignored, like Rust's std), setuid, then empty every set."""
    from jailer import libc

    try:
        os.setgid(gid)
        try:
            os.setgroups([])
        except PermissionError:
            pass
        os.setuid(uid)
    except OSError as error:
        raise JailerError(ErrorKind.PRIVILEGES, detail=f"uid {uid} gid {gid}: {os_error_text(error)}") from None
    try:
        libc.clear_capability_sets()
    except OSError as error:
        raise JailerError(ErrorKind.CAPABILITIES, detail=os_error_text(error)) from None
    verify_dropped()


def verify_dropped() -> None:
    """Refuse to exec if any capability survived in the effective, permitted or inheritable set."""
    from jailer import libc

    left = {name: value for name, value in libc.get_capability_sets().items() if value}
    if left:
        detail = ", ".join(f"{name}={value:016x}" for name, value in sorted(left.items()))
        raise JailerError(ErrorKind.CAPABILITIES, detail=f"capabilities remain after the drop: {detail}")
