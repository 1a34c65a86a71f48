"""`--ro-bind` / `--bind`: visible in the jail, read-only where asked, always nosuid,nodev,
made in the jail's mount namespace only (never on the host)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from support.jail import Jail, error_text

pytestmark = pytest.mark.root


def mount_options(pid: int, jail_path: str) -> set[str]:
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == jail_path:
            return set(fields[5].split(","))
    raise AssertionError(f"{jail_path} is not a mount point of {pid}")


def host_mount_points() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "share"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    (directory / "kernel.bin").write_bytes(b"kernel")
    image = tmp_path / "disk.img"
    image.write_bytes(b"disk")
    return directory, image


def test_binds_visible_with_flags(jail: Jail, sources: tuple[Path, Path]) -> None:
    directory, image = sources
    probe = jail.start("--ro-bind", f"{directory}:/ro", "--bind", f"{directory}:/rw", "--bind", f"{image}:/images/disk.img")
    tree = probe.report["tree"]
    assert "/ro/kernel.bin" in tree and "/rw/kernel.bin" in tree
    assert stat.S_ISREG(tree["/images/disk.img"]["mode"])
    ro, rw, single = (mount_options(probe.pid, path) for path in ("/ro", "/rw", "/images/disk.img"))
    assert {"ro", "nosuid", "nodev"} <= ro
    assert {"rw", "nosuid", "nodev"} <= rw
    assert {"rw", "nosuid", "nodev"} <= single
    # Host side: no mount appeared, and the mount points exist only as plain entries.
    assert not {str(jail.chroot_dir / p) for p in ("ro", "rw", "images/disk.img")} & host_mount_points()


def test_read_only_bind_refuses_writes(jail: Jail, sources: tuple[Path, Path]) -> None:
    directory, _ = sources
    report = jail.run_probe("--ro-bind", f"{directory}:/ro", extra=["--api-sock", "/ro/api.sock"])
    assert report["api_sock_errno"] == 30  # EROFS
    assert not (directory / "api.sock").exists()


def test_read_write_bind_reaches_the_host(jail: Jail, sources: tuple[Path, Path]) -> None:
    directory, _ = sources
    report = jail.run_probe("--bind", f"{directory}:/rw", extra=["--api-sock", "/rw/api.sock"])
    assert report["api_sock_errno"] == 0
    assert stat.S_ISSOCK((directory / "api.sock").lstat().st_mode)


def test_destination_defaults_to_source(jail: Jail, sources: tuple[Path, Path]) -> None:
    directory, _ = sources
    probe = jail.start("--ro-bind", str(directory))
    assert {"ro", "nosuid", "nodev"} <= mount_options(probe.pid, str(directory))
    assert (jail.chroot_dir / str(directory).lstrip("/") / "kernel.bin").exists() is False  # host view: empty dir


def test_symlink_inside_jail_is_not_followed(jail: Jail, sources: tuple[Path, Path], tmp_path: Path) -> None:
    """A pre-placed symlink at the mount point must not redirect the bind to a host path."""
    directory, _ = sources
    outside = tmp_path / "outside"
    outside.mkdir()
    jail.chroot_dir.mkdir(parents=True)
    (jail.chroot_dir / "ro").symlink_to(outside)
    result = jail.run("--ro-bind", f"{directory}:/ro/sub")
    assert error_text(result) == (
        f"Invalid bind mount {directory}:/ro/sub: {jail.chroot_dir}/ro inside the jail is a symlink or not a directory\n"
    )
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(jail.chroot_dir)) == ["ro"]


def test_nested_binds_land_inside_read_only_parent(jail: Jail, sources: tuple[Path, Path], tmp_path: Path) -> None:
    """Given in any order, a bind nested in a read-only bind is mounted after (on top of) it."""
    directory, image = sources
    (directory / "images").mkdir()
    (directory / "images/disk.img").write_bytes(b"")
    probe = jail.start("--bind", f"{image}:/share/images/disk.img", "--ro-bind", f"{directory}:/share")
    assert {"ro"} <= mount_options(probe.pid, "/share")
    assert {"rw", "nosuid", "nodev"} <= mount_options(probe.pid, "/share/images/disk.img")
