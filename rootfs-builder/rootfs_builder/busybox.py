"""busybox-static and its applet links, as cpio entries (shared by initramfs and rootfs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from rootfs_builder import cpio
from rootfs_builder.errors import BuildError

DEFAULT_BUSYBOX = Path("/bin/busybox")
BASE_DIRS = (
    "bin", "dev", "etc", "lib", "proc", "root", "run", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin", "var",
)
PT_INTERP = 3


def check_static(busybox: Path) -> bytes:
    """The binary's bytes; it must be a static ELF, since the guest has no libc to load."""
    if not busybox.is_file():
        raise BuildError(f"busybox not found at {busybox} (install busybox-static)")
    data = busybox.read_bytes()
    if not data.startswith(b"\x7fELF") or data[4] != 2:
        raise BuildError(f"{busybox} is not an ELF64 executable")
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for index in range(phnum):
        if int.from_bytes(data[phoff + index * phentsize : phoff + index * phentsize + 4], "little") == PT_INTERP:
            raise BuildError(f"{busybox} is dynamically linked; the guest needs busybox-static")
    return data


def applets(busybox: Path) -> list[str]:
    """Each applet's canonical path (``usr/bin/awk``), as the binary itself lists them."""
    result = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0 or not result.stdout.strip():
        raise BuildError(f"{busybox} --list-full failed; is it busybox?")
    return sorted({line.strip().lstrip("/") for line in result.stdout.splitlines() if line.strip()})


def version(busybox: Path) -> str:
    result = subprocess.run(
        [str(busybox), "--help"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    lines = (result.stdout or result.stderr).splitlines()
    return lines[0].strip() if lines else "unknown"


def entries(busybox: Path) -> list[cpio.Entry]:
    """/bin/busybox, a link per applet at its canonical path, and the base directories."""
    data = check_static(busybox)
    result = [cpio.directory(d) for d in BASE_DIRS]
    result.append(cpio.regular("bin/busybox", data, 0o755))
    for applet in applets(busybox):
        if applet != "bin/busybox" and applet.rsplit("/", 1)[0] in BASE_DIRS:
            result.append(cpio.symlink(applet, "/bin/busybox"))
    return result


def materialize(items: list[cpio.Entry], root: Path) -> None:
    """Write cpio entries as a real tree (for a rootfs built from the same busybox layout)."""
    import os
    import stat

    for item in sorted(items, key=lambda entry: entry.path):
        path = root / item.path
        if stat.S_ISDIR(item.mode):
            path.mkdir(mode=0o755, exist_ok=True)
        elif stat.S_ISLNK(item.mode):
            os.symlink(item.data.decode(), path)
        elif stat.S_ISREG(item.mode):
            path.write_bytes(item.data)
        else:
            raise BuildError(f"cannot materialize {item.path}: not a file, directory or symlink")
        if not stat.S_ISLNK(item.mode):
            os.chmod(path, stat.S_IMODE(item.mode))
