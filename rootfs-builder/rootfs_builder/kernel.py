"""Guest kernels from Debian's packages: bzImage, uncompressed ELF vmlinux, config, modules.

The flavor's meta package (``linux-image-cloud-amd64`` or ``linux-image-amd64``) names the
versioned image package it depends on; both are fetched with ``apt-get download`` and the
image is unpacked with ``dpkg-deb -x`` — nothing is installed on the host. The cache key is
the two package versions, so a new Debian kernel is a miss and the same one a hit.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from rootfs_builder import apt, bzimage, elf, kmod
from rootfs_builder.cache import Cache
from rootfs_builder.errors import BuildError
from rootfs_builder.files import check_output_dir, copy_entry, output_dir, sha256_file
from rootfs_builder.progress import Progress, QuietProgress

FLAVORS = {"cloud": "linux-image-cloud-amd64", "generic": "linux-image-amd64"}
KERNEL_FILES = ("vmlinuz", "vmlinux", "config", "modules", "release", "kernel.json")


@dataclass(frozen=True)
class KernelBuild:
    """What `build_kernel` wrote (paths inside the output directory) and where it came from."""

    out_dir: Path
    vmlinuz: Path
    vmlinux: Path
    config: Path
    modules: Path
    release: str
    flavor: str
    packages: dict[str, str]
    compression: str
    pvh_entry: int | None
    sizes: dict[str, int]
    sha256: dict[str, str]
    cache_hit: bool
    cache_key: str


def _image_package(meta: apt.Package) -> apt.Package:
    """The versioned image package the meta package pins with ``(= version)``; asking apt
    about it separately would cost another full package-list load (seconds)."""
    match = re.search(r"(linux-image-[0-9][^\s,(]*)\s*\(=\s*([^)\s]+)\)", meta.depends)
    if match is None:
        raise BuildError(f"{meta.name} {meta.version} depends on no exact version of a linux-image package")
    return apt.Package(match.group(1), match.group(2), "")


def _unpack(meta: apt.Package, image: apt.Package, entry: Path, progress: Progress) -> None:
    work = entry / "work"
    work.mkdir()
    with progress.step(f"downloading {meta.name} and {image.name} {image.version}"):
        apt.download(meta, work)
        deb = apt.download(image, work)
    with progress.step(f"extracting {deb.name}"):
        tree = work / "tree"
        apt.extract(deb, tree)
    vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
    if len(vmlinuz) != 1:
        raise BuildError(f"{image.name} does not contain exactly one /boot/vmlinuz-*")
    release = vmlinuz[0].name.removeprefix("vmlinuz-")
    modules_root = next((p for p in (tree / "lib/modules", tree / "usr/lib/modules") if (p / release).is_dir()), None)
    if modules_root is None:
        raise BuildError(f"{image.name} has no lib/modules/{release}")
    shutil.move(vmlinuz[0], entry / "vmlinuz")
    shutil.move(tree / "boot" / f"config-{release}", entry / "config")
    shutil.move(modules_root / release, entry / "modules")
    shutil.rmtree(work)
    with progress.step("decompressing the bzImage payload into vmlinux"):
        vmlinux, method = bzimage.extract_vmlinux((entry / "vmlinuz").read_bytes())
        (entry / "vmlinux").write_bytes(vmlinux)
    if not (entry / "modules" / "modules.dep").is_file():
        with progress.step("writing modules.dep from the modules' depends= (Debian ships none)"):
            (entry / "modules" / "modules.dep").write_text(kmod.compute_modules_dep(entry / "modules"))
    (entry / "release").write_text(release + "\n")
    facts = {"release": release, "compression": method, "pvh_entry": elf.pvh_entry(vmlinux)}
    (entry / "kernel.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")


def check_flavor(flavor: str) -> None:
    """Refuse an unknown flavor; `all` calls this too, before any of its steps run."""
    if flavor not in FLAVORS:
        raise BuildError(f"unknown kernel flavor {flavor!r} (choose from {', '.join(FLAVORS)})")


def build_kernel(
    out_dir: Path,
    flavor: str = "cloud",
    *,
    cache: Cache | None = None,
    progress: Progress | None = None,
) -> KernelBuild:
    check_flavor(flavor)
    cache = cache or Cache()
    progress = progress or QuietProgress()
    out_dir = Path(out_dir).absolute()
    check_output_dir(out_dir, files=tuple(n for n in KERNEL_FILES if n != "modules"), dirs=("modules",))
    with progress.step(f"resolving {FLAVORS[flavor]}"):
        meta = apt.show(FLAVORS[flavor])
        image = _image_package(meta)
    packages = {meta.name: meta.version, image.name: image.version}
    entry = cache.get_or_build(
        "kernel", {"flavor": flavor, "packages": packages}, lambda d: _unpack(meta, image, d, progress)
    )
    if entry.hit:
        progress.note(f"kernel: cache hit ({entry.key[:16]}), no download")
    with output_dir(out_dir) as staging:
        for name in KERNEL_FILES:
            copy_entry(entry.path / name, staging / name)
    facts = json.loads((out_dir / "kernel.json").read_text())
    files = ("vmlinuz", "vmlinux", "config")
    return KernelBuild(
        out_dir=out_dir,
        vmlinuz=out_dir / "vmlinuz",
        vmlinux=out_dir / "vmlinux",
        config=out_dir / "config",
        modules=out_dir / "modules",
        release=facts["release"],
        flavor=flavor,
        packages=packages,
        compression=facts["compression"],
        pvh_entry=facts["pvh_entry"],
        sizes={name: (out_dir / name).stat().st_size for name in files},
        sha256={name: sha256_file(out_dir / name) for name in files},
        cache_hit=entry.hit,
        cache_key=entry.key,
    )


def load_kernel_dir(directory: Path) -> tuple[Path, str, dict[str, str]]:
    """(modules dir, release, config options) of a `build_kernel` output (or a hand-made one)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BuildError(f"kernel directory {directory} does not exist")
    modules = directory / "modules"
    if not (modules / "modules.dep").is_file():
        raise BuildError(f"kernel directory {directory} has no modules/modules.dep (run 'rootfs-builder kernel' first)")
    release_file = directory / "release"
    release = release_file.read_text().strip() if release_file.is_file() else ""
    if not release:
        raise BuildError(f"kernel directory {directory} has no release file")
    config: dict[str, str] = {}
    if (directory / "config").is_file():
        for line in (directory / "config").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("CONFIG_"):
                config[key] = value
    return modules, release, config

