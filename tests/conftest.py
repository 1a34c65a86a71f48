"""Shared test plumbing: privilege/KVM gating, unique names, reference inputs.

Tests marked ``root`` need real namespaces, mounts and cgroups; tests marked ``kvm`` need a
usable ``/dev/kvm``. Both skip with a reason when the machine lacks them (CI has both).
Reusable helpers (C builds, probes) live in ``tests/support`` (importable as ``support``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import os

import pytest
from hypothesis import settings

from support import FIRECRACKER_REFERENCE_DIR, is_root, kvm_unusable_reason


# CI replays the same examples on every run (a red CI must be reproducible); local runs keep
# exploring new ones, which is how the libseccomp range-merge bug was found.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--jailer", metavar="PATH", default=None,
        help="security suite: audit another jailer with the Firecracker jailer's command line "
             "(default: Stockade's jailer)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kvm_reason = kvm_unusable_reason()
    for item in items:
        if "root" in item.keywords and not is_root():
            item.add_marker(pytest.mark.skip(reason="needs root: real namespaces, mounts and cgroups"))
        if "kvm" in item.keywords and kvm_reason is not None:
            item.add_marker(pytest.mark.skip(reason=kvm_reason))


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A short name no other test (or concurrent run) uses: for jail ids, cgroups, taps, netns."""
    return f"st-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def firecracker_reference() -> Path:
    """Firecracker's own policies/config/API spec; skip where the shared reference is absent."""
    if not FIRECRACKER_REFERENCE_DIR.is_dir():
        pytest.skip(f"Firecracker reference inputs absent at {FIRECRACKER_REFERENCE_DIR}")
    return FIRECRACKER_REFERENCE_DIR


@pytest.fixture(scope="session")
def c_build_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory per session for programs built from C at test time."""
    directory = tmp_path_factory.mktemp("cbuild")
    yield directory
