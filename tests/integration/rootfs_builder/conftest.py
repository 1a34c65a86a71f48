"""Session fixtures for rootfs-builder integration tests: one real Debian kernel per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.rootfs import real_kernel_dir


@pytest.fixture(scope="session")
def real_kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's cloud kernel, downloaded at most once per machine (persistent test cache)."""
    return real_kernel_dir(tmp_path_factory.mktemp("real-kernel") / "kernel")
