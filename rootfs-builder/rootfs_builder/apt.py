"""Debian packages through apt's own tools: resolve versions, download, extract (no install)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rootfs_builder.errors import BuildError


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    depends: str


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError(f"{command[0]} is not installed (a Debian host with apt is needed)") from None


def show(name: str, *, update_if_unknown: bool = True) -> Package:
    """The candidate version of `name`; runs `apt-get update` once if apt does not know it."""
    result = _run(["apt-cache", "show", "--no-all-versions", name])
    if result.returncode != 0 or not result.stdout.strip():
        if update_if_unknown:
            update = _run(["apt-get", "update", "-qq"])
            if update.returncode != 0:
                raise BuildError(f"apt-get update failed: {_last_line(update.stderr)}")
            return show(name, update_if_unknown=False)
        raise BuildError(f"Debian package {name} is unknown to apt (apt-cache show: {_last_line(result.stderr)})")
    fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", result.stdout, flags=re.MULTILINE))
    return Package(name, fields.get("Version", ""), fields.get("Depends", ""))


def download(package: Package, directory: Path) -> Path:
    result = _run(
        ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", f"{package.name}={package.version}"],
        cwd=directory,
    )
    debs = sorted(directory.glob(f"{package.name}_*.deb"))
    if result.returncode != 0 or not debs:
        raise BuildError(
            f"cannot download {package.name} {package.version} (is the Debian mirror reachable?): "
            f"{_last_line(result.stderr)}"
        )
    return debs[0]


def extract(deb: Path, directory: Path) -> None:
    result = _run(["dpkg-deb", "-x", str(deb), str(directory)])
    if result.returncode != 0:
        raise BuildError(f"dpkg-deb cannot extract {deb.name}: {_last_line(result.stderr)}")
