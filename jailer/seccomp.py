"""The jailer's outer seccomp filter: chosen and compiled during validation, installed last.

A program `jailer-policy precompile` stored for the policy's exact content is used as it is
(`jailer.policies.precompiled`); only without one is the policy parsed and compiled here.

Installing goes through the toolchain's loader (`jailer.policies.loader`), which the jailer
imports and prepares before pivot_root: inside the jail nothing can be imported any more.

Compiling happens before anything is created on disk and before pivot_root, because the policy
file and libseccomp live outside the jail; installing happens after the privilege drop, right
before exec, with TSYNC so every thread carries it (no_new_privs is set by then, so no
CAP_SYS_ADMIN is needed). Without `--seccomp-policy` the shipped `baseline` category is used.
"""

from __future__ import annotations

import sys

from jailer.errors import ErrorKind, JailerError
from jailer.validation import SeccompChoice

BASELINE_POLICY = "baseline"
BASELINE_CATEGORY = "baseline"
NO_SECCOMP_NOTICE = "jailer: --no-seccomp given: no outer seccomp filter is installed"


def _toolchain_error(error: Exception) -> JailerError:
    return JailerError(ErrorKind.SECCOMP_TOOLCHAIN, detail=f"{type(error).__name__}: {error}")


def choose_filter(*, policy_path: str | None, category: str | None, disabled: bool) -> SeccompChoice:
    """Validate the flags, load the policy and compile the category to a BPF program."""
    if disabled:
        if policy_path is not None or category is not None:
            raise JailerError(
                ErrorKind.ARGUMENT_PARSING,
                detail="The argument 'no-seccomp' cannot be used with 'seccomp-policy' or 'seccomp-category'.",
            )
        return SeccompChoice(description="none (--no-seccomp)", program=None)
    if policy_path is None and category is not None:
        raise JailerError(
            ErrorKind.ARGUMENT_PARSING, detail="The argument 'seccomp-category' requires 'seccomp-policy'."
        )
    try:
        from jailer import policies
    except ImportError as error:
        raise _toolchain_error(error) from None

    if policy_path is None:
        try:
            path = policies.shipped_policy_file(BASELINE_POLICY)
        except (AttributeError, OSError, LookupError, ValueError) as error:
            raise _toolchain_error(error) from None
        category = BASELINE_CATEGORY
    else:
        path = policy_path
        category = category or "jail"
    stored = _stored_program(path, category)
    if stored is not None:
        return SeccompChoice(description=f"{path} category {category}", program=stored)
    try:
        from jailer.policies import compiler
    except ImportError as error:
        raise _toolchain_error(error) from None
    try:
        import os

        os.stat(path)  # an unreadable path gets the same "<text> (os error N)" as every other
        policy = policies.load_policy(path)
    except AttributeError as error:
        raise _toolchain_error(error) from None
    except OSError as error:
        from jailer.errors import os_error_text

        raise JailerError(ErrorKind.SECCOMP_POLICY, path=path, detail=os_error_text(error)) from None
    except Exception as error:  # the toolchain's errors: one line, never a traceback
        # A PolicyError about the file itself says why in `reason` (a FIFO is refused unread).
        detail = getattr(error, "reason", None) or _one_line(error)
        raise JailerError(ErrorKind.SECCOMP_POLICY, path=path, detail=detail) from None
    if not _has_category(policy, category):
        raise JailerError(ErrorKind.SECCOMP_CATEGORY, category=category, path=path)
    try:
        program = compiler.compile_category(policy, category)
    except Exception as error:
        raise JailerError(ErrorKind.SECCOMP_POLICY, path=path, detail=_one_line(error)) from None
    return SeccompChoice(description=f"{path} category {category}", program=program)


def _stored_program(path: str, category: str) -> bytes | None:
    """The precompiled program (`jailer.policies.precompiled`) when one is fresh for this
    policy's content, else None: then the policy is parsed and compiled, with every check and
    error of that path. A fresh program is one that path compiled from the same bytes."""
    try:
        from jailer.policies import precompiled
    except ImportError:
        return None
    return precompiled.load(path, category)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _has_category(policy: object, category: str) -> bool:
    categories = getattr(policy, "categories", None)
    if categories is None:
        # Tolerate a toolchain without a categories view: compile_category will say what is wrong.
        return True
    return category in categories


def announce(choice: SeccompChoice) -> None:
    """Say on stderr that no outer filter will be installed, while stderr is still the caller's."""
    if choice.program is None:
        print(NO_SECCOMP_NOTICE, file=sys.stderr, flush=True)


def install(choice: SeccompChoice) -> None:
    """Install the compiled filter process-wide (nothing for `--no-seccomp`)."""
    if choice.program is None:
        return
    from jailer.policies.loader import install_filter

    try:
        install_filter(choice.program, all_threads=True)
    except OSError as error:
        from jailer.errors import os_error_text

        raise JailerError(ErrorKind.SECCOMP_INSTALL, error=os_error_text(error)) from None
