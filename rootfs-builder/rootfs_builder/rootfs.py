"""ext4 root filesystems built without loop mounts (``mkfs.ext4 -d``), reproducibly.

The tree is first copied (``cp -a``: owners, modes, device nodes, xattrs kept) to a staging
directory where every timestamp is clamped to ``SOURCE_DATE_EPOCH``, because ``mkfs.ext4 -d``
copies the source's times into the image. The filesystem UUID and directory hash seed are
derived from the hash of the inputs, and ``E2FSPROGS_FAKE_TIME`` pins the superblock times, so
the same tree and size give the same image bytes. Minimal Debian trees come from
``debootstrap --variant=minbase`` (root only).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from rootfs_builder.cache import Cache, inputs_key
from rootfs_builder.errors import BuildError
from rootfs_builder.files import check_replaceable, deliver, sha256_file
from rootfs_builder.progress import Progress, QuietProgress

DEFAULT_MIRROR = "http://deb.debian.org/debian"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
MIN_SIZE = 1 << 20
# ext4 addresses 2^48 blocks; with 4 KiB blocks that is 1 EiB, the largest image there can be.
MAX_SIZE = 1 << 60
# ext4 (256-byte inodes) stores times up to 2446-05-10, 3 * 2^32 past the signed 32-bit limit.
MAX_EPOCH = (1 << 31) - 1 + (3 << 32)
BLOCK_SIZE = 4096
INODE_SIZE = 256


@dataclass(frozen=True)
class RootfsBuild:
    path: Path
    size: int
    sha256: str
    source: str  # "dir:<path>" or "debootstrap:<suite>"
    uuid: str
    cache_hit: bool
    cache_key: str


def _shown(text: str, limit: int = 40) -> str:
    """`text` for an error line: repr'd, and cut short if it is long (a 5000-digit size)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def _ascii_int(digits: str, limit: int) -> int | None:
    """The value of ASCII `digits`, or None if it exceeds `limit`.

    The length is compared before ``int()``, which refuses more than 4300 digits with a
    ValueError (and would be slow on huge strings anyway).
    """
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(limit)):
        return None
    value = int(significant)
    return value if value <= limit else None


def parse_size(text: str) -> int:
    """Bytes in `text`: ASCII digits (not e.g. fullwidth ones) and an optional K, M or G."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMG]?)(?:i?B)?\s*", text, flags=re.IGNORECASE | re.ASCII)
    if match is None:
        raise BuildError(f"invalid size {_shown(text)} (use e.g. 64M, 1G or a byte count)")
    unit = _UNITS[match.group(2).upper()]
    count = _ascii_int(match.group(1), MAX_SIZE // unit)
    if count is None:
        raise BuildError(f"size {_shown(text.strip())} is too large (ext4 images hold at most 1 EiB)")
    size = count * unit
    if size < MIN_SIZE:
        raise BuildError(f"size {_shown(text.strip())} is too small (at least 1M)")
    if size % BLOCK_SIZE:
        raise BuildError(f"size {_shown(text.strip())} is not a multiple of the {BLOCK_SIZE}-byte block size")
    return size


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH``, default 1: e2fsprogs reads a fake time of 0 as "use the clock"."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "1")
    if re.fullmatch(r"[0-9]+", value, flags=re.ASCII) is None:
        raise BuildError(f"SOURCE_DATE_EPOCH={_shown(value)} is not a number of seconds")
    seconds = _ascii_int(value, MAX_EPOCH)
    if seconds is None:
        raise BuildError(f"SOURCE_DATE_EPOCH={_shown(value)} is later than ext4 can store (2446-05-10)")
    return max(seconds, 1)


def _tree_digest_and_usage(tree: Path) -> tuple[str, int]:
    """A digest of everything mkfs copies (paths, types, modes, owners, contents, link targets,
    device numbers; not times, which are clamped) and the bytes the image needs for it."""
    digest = hashlib.sha256()
    needed = 0
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(root) / name
            info = path.lstat()
            # Names are bytes on Linux and need not be UTF-8 (b"\xff"): hash the bytes.
            relative = os.fsencode(os.path.relpath(path, tree))
            digest.update(relative + f"\0{info.st_mode:o}\0{info.st_uid}\0{info.st_gid}\0{info.st_rdev}\0".encode())
            needed += INODE_SIZE * 4 + BLOCK_SIZE
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.fsencode(os.readlink(path)))
            elif stat.S_ISREG(info.st_mode):
                digest.update(sha256_file(path).encode())
                needed += -(-info.st_size // BLOCK_SIZE) * BLOCK_SIZE
    return digest.hexdigest(), needed


def _clamp_times(tree: Path, epoch: int) -> None:
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (epoch, epoch), follow_symlinks=False)
    os.utime(tree, (epoch, epoch))


def _stage(source: Path, staging: Path, epoch: int) -> None:
    result = subprocess.run(
        ["cp", "-a", "--", f"{source}/.", str(staging)], capture_output=True, text=True, errors="replace"
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        raise BuildError(f"cannot copy {source}: {lines[-1] if lines else result.returncode}")
    _clamp_times(staging, epoch)


def _check_fits(needed: int, size: int) -> None:
    if needed > size:
        raise BuildError(f"size {size >> 20}M is too small for the tree (it needs about {(needed >> 20) + 2}M)")


def _mkfs(staging: Path, image: Path, size: int, key: str, label: str, epoch: int, needed: int) -> None:
    fs_uuid = str(uuid.UUID(key[:32]))
    hash_seed = str(uuid.UUID(key[32:64]))
    environment = {
        **os.environ,
        "E2FSPROGS_FAKE_TIME": str(epoch),
        "SOURCE_DATE_EPOCH": str(epoch),
        "MKE2FS_CONFIG": "/nonexistent/mke2fs.conf",  # built-in defaults, not the host's mke2fs.conf
    }
    command = [
        "mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", str(BLOCK_SIZE), "-I", str(INODE_SIZE),
        "-O", "^metadata_csum_seed", "-L", label, "-U", fs_uuid,
        "-E", f"root_owner=0:0,hash_seed={hash_seed},lazy_itable_init=0",
        "-d", str(staging), str(image), f"{size // 1024}k",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace", env=environment)
    except FileNotFoundError:
        raise BuildError("mkfs.ext4 is not installed (install e2fsprogs)") from None
    if result.returncode != 0:
        text = (result.stderr + result.stdout).strip()
        if re.search(r"[Nn]o space|Could not allocate|allocating|too small|ext2_mkdir", text):
            raise BuildError(f"size {size >> 20}M is too small for the tree (it needs about {(needed >> 20) + 2}M)")
        raise BuildError(f"mkfs.ext4 failed: {text.splitlines()[-1] if text else result.returncode}")
    _pin_inode_times(staging, image, epoch, environment)
    check = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True, errors="replace")
    if check.returncode != 0:
        raise BuildError(f"e2fsck finds the new image inconsistent: {check.stdout.strip().splitlines()[-1:]}")


def _pin_inode_times(tree: Path, image: Path, epoch: int, environment: dict[str, str]) -> None:
    """Set every inode's atime and ctime to `epoch` with debugfs.

    ``mkfs.ext4 -d`` (e2fsprogs 1.47.0) copies each source file's atime and ctime, and neither
    can be pinned on the host: ctime is always "now" after our utime, and mkfs reading a file
    with an old atime updates it. mtime is already clamped; crtime follows the fake time.
    """
    paths = [b"/"]
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            relative = "/" + os.path.relpath(os.path.join(root, name), tree)
            if '"' in relative or "\n" in relative:
                raise BuildError(f"cannot pin the times of {relative!r}: quotes and newlines are unsupported in names")
            # The script is bytes: debugfs takes names as bytes, which need not be UTF-8.
            paths.append(b'"' + os.fsencode(relative) + b'"')
    script = b"".join(b"sif %s %s %d\n" % (path, field, epoch) for path in paths for field in (b"atime", b"ctime"))
    result = subprocess.run(["debugfs", "-w", "-f", "-", str(image)], input=script, capture_output=True, env=environment)
    stderr = result.stderr.decode(errors="replace")
    errors = [line for line in stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
    if result.returncode != 0 or errors:
        raise BuildError(f"debugfs could not pin inode times: {errors[-1] if errors else result.returncode}")


def debootstrap(suite: str, target: Path, mirror: str, progress: Progress) -> None:
    if os.geteuid() != 0:
        raise BuildError("--debootstrap needs root (debootstrap creates device nodes and chowns files)")
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed")
    with progress.step(f"debootstrap --variant=minbase {suite}"):
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", suite, str(target), mirror],
            capture_output=True, text=True, errors="replace",
        )  # fmt: skip
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        raise BuildError(f"debootstrap {suite} failed: {lines[-1] if lines else result.returncode}")
    # Logs and caches that differ run to run and are useless in a guest image.
    for transient in ("debootstrap", "var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(target / transient, ignore_errors=True)
    (target / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    (target / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def build_rootfs(
    out: Path,
    size: str | int,
    *,
    source_dir: Path | None = None,
    debootstrap_suite: str | None = None,
    mirror: str = DEFAULT_MIRROR,
    label: str = "rootfs",
    cache: Cache | None = None,
    progress: Progress | None = None,
) -> RootfsBuild:
    """An ext4 image of `source_dir` or of a minimal Debian `debootstrap_suite`, at `out`."""
    if (source_dir is None) == (debootstrap_suite is None):
        raise BuildError("give exactly one of --from DIR and --debootstrap SUITE")
    size_bytes = size if isinstance(size, int) else parse_size(size)
    if source_dir is not None and not Path(source_dir).is_dir():
        raise BuildError(f"source directory {source_dir} does not exist")
    out = Path(out)
    if not out.absolute().parent.is_dir() or not os.access(out.absolute().parent, os.W_OK):
        raise BuildError(f"output directory {out.absolute().parent} is missing or not writable")
    check_replaceable(out.absolute())
    cache = cache or Cache()
    progress = progress or QuietProgress()
    epoch = source_date_epoch()
    common = {"size": size_bytes, "label": label, "epoch": epoch}
    cache.root.mkdir(parents=True, exist_ok=True)

    def make_image(tree: Path, entry: Path, key: str, needed: int) -> None:
        _check_fits(needed, size_bytes)
        with progress.step(f"mkfs.ext4 -d ({size_bytes >> 20}M)"):
            _mkfs(tree, entry / "rootfs.ext4", size_bytes, key, label, epoch, needed)

    if debootstrap_suite is not None:
        # Keyed on what debootstrap is asked for (the mirror's contents are not known before
        # running it); delete the cache entry to pick up a newer Debian point release.
        inputs = {**common, "debootstrap": debootstrap_suite, "variant": "minbase", "mirror": mirror}
        source = f"debootstrap:{debootstrap_suite}"
        key = inputs_key("rootfs", inputs)

        def build(entry: Path) -> None:
            with tempfile.TemporaryDirectory(prefix=".debootstrap.", dir=cache.root) as work:
                tree = Path(work) / "tree"
                debootstrap(debootstrap_suite, tree, mirror, progress)
                _clamp_times(tree, epoch)
                make_image(tree, entry, key, _tree_digest_and_usage(tree)[1])

        cached = cache.get_or_build("rootfs", inputs, build)
    else:
        assert source_dir is not None
        source = f"dir:{Path(source_dir).absolute()}"
        # The key comes from the source itself (times excluded), so a hit copies nothing.
        digest, needed = _tree_digest_and_usage(Path(source_dir))
        _check_fits(needed, size_bytes)
        inputs = {**common, "tree": digest}
        key = inputs_key("rootfs", inputs)

        def build_from_dir(entry: Path) -> None:
            with tempfile.TemporaryDirectory(prefix=".rootfs-tree.", dir=cache.root) as work:
                tree = Path(work) / "tree"
                tree.mkdir()
                with progress.step(f"staging {source_dir}"):
                    _stage(Path(source_dir), tree, epoch)
                if _tree_digest_and_usage(tree)[0] != digest:
                    raise BuildError(f"{source_dir} changed while it was being copied; build again")
                make_image(tree, entry, key, needed)

        cached = cache.get_or_build("rootfs", inputs, build_from_dir)
    if cached.hit:
        progress.note(f"rootfs: cache hit ({cached.key[:16]}), mkfs skipped")
    path, image_size, image_sha256 = deliver(cached.path / "rootfs.ext4", out)
    return RootfsBuild(
        path=path,
        size=image_size,
        sha256=image_sha256,
        source=source,
        uuid=str(uuid.UUID(cached.key[:32])),
        cache_hit=cached.hit,
        cache_key=cached.key,
    )
