"""rootfs-builder and the jail's Python runtime, measured against the hand-rolled ways.

Side by side in one run, alternating, median of `--runs`:
- initramfs: `build_initramfs` (Python newc writer + gzip, no cache) vs the usual shell
  pipeline over the same tree (`find | sort | cpio -o -H newc --reproducible | gzip -9n`);
  also a cache hit. Sizes and whether two builds are byte-identical are recorded too.
- ext4: `build_rootfs` (staging copy, time clamping, `mkfs.ext4 -d`, `e2fsck -fn` check; no
  cache) vs a bare `mkfs.ext4 -d` of the same tree (not reproducible); also a cache hit.
- Python runtime: computing the binds (cold) and a cache hit; then a jail start with only those
  binds vs with whole-tree binds (/usr, the interpreter's prefix, the project), both with
  bubblewrap running `python -I -c "import vmm, jailer.policies.loader"`: what the extra
  mounts cost at start-up, against the "bind everything" peer.

Usage (root, needs a kernel dir from `rootfs-builder kernel`, else a fake one is made):
    .venv/bin/python benchmarks/rootfs_bench.py [--runs 10] [--kernel DIR] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "rootfs_builder.md"
sys.path.insert(0, str(PROJECT / "tests"))


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples):.1f} (min {min(samples):.1f}, n={len(samples)})"


def same_bytes(first: Path, last: Path) -> bool:
    return first.read_bytes() == last.read_bytes()


def bench_initramfs(kernel: Path, work: Path, runs: int) -> list[str]:
    from rootfs_builder.cache import Cache
    from rootfs_builder.initramfs import build_initramfs
    from support.rootfs import cpio_extract

    ours, peer, hits = [], [], []
    reference = work / "reference.cpio.gz"
    build_initramfs(kernel, reference, cache=Cache(work / "c-ref"))
    tree = cpio_extract(reference, work / "tree")
    for index in range(runs):
        out = work / f"ours-{index}.gz"
        ours.append(timed(lambda: build_initramfs(kernel, out, cache=Cache(work / f"c-{index}"))))
        hits.append(timed(lambda: build_initramfs(kernel, out, cache=Cache(work / f"c-{index}"))))
        peer_out = work / f"peer-{index}.gz"
        pipeline = f"cd {tree} && find . | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet | gzip -9n > {peer_out}"
        peer.append(timed(lambda: subprocess.run(["sh", "-c", pipeline], check=True)))
    identical = same_bytes(work / "ours-0.gz", work / f"ours-{runs - 1}.gz")
    peer_identical = same_bytes(work / "peer-0.gz", work / f"peer-{runs - 1}.gz")
    return [
        "| initramfs (busybox + virtio modules) | ms | size | identical builds |",
        "|---|---:|---:|---|",
        f"| `build_initramfs`, no cache | {median_ms(ours)} | {(work / 'ours-0.gz').stat().st_size} | {identical} |",
        f"| `build_initramfs`, cache hit | {median_ms(hits)} | same | same |",
        f"| peer: `find|sort|cpio --reproducible|gzip -9n` | {median_ms(peer)} | {(work / 'peer-0.gz').stat().st_size} | {peer_identical} (mtimes, owners from the tree) |",
    ]


def bench_rootfs(work: Path, runs: int) -> list[str]:
    from rootfs_builder.bundle import small_rootfs_tree
    from rootfs_builder.cache import Cache
    from rootfs_builder.rootfs import build_rootfs

    tree = work / "rootfs-tree"
    tree.mkdir()
    small_rootfs_tree(tree, Path("/bin/busybox"))
    ours, peer, hits = [], [], []
    for index in range(runs):
        out = work / f"r-{index}.ext4"
        ours.append(timed(lambda: build_rootfs(out, "16M", source_dir=tree, cache=Cache(work / f"rc-{index}"))))
        hits.append(timed(lambda: build_rootfs(out, "16M", source_dir=tree, cache=Cache(work / f"rc-{index}"))))
        peer_out = work / f"p-{index}.ext4"
        command = ["mkfs.ext4", "-q", "-F", "-d", str(tree), str(peer_out), "16M"]
        peer.append(timed(lambda: subprocess.run(command, check=True, capture_output=True)))
        time.sleep(1.0 if index == 0 else 0)  # let the clock move so non-reproducibility shows
    identical = same_bytes(work / "r-0.ext4", work / f"r-{runs - 1}.ext4")
    peer_identical = same_bytes(work / "p-0.ext4", work / f"p-{runs - 1}.ext4")
    return [
        "| ext4 16 MiB (busybox tree) | ms | identical builds |",
        "|---|---:|---|",
        f"| `build_rootfs`, no cache (stage, clamp, mkfs -d, e2fsck) | {median_ms(ours)} | {identical} |",
        f"| `build_rootfs`, cache hit | {median_ms(hits)} | same |",
        f"| peer: bare `mkfs.ext4 -d` | {median_ms(peer)} | {peer_identical} |",
    ]


def bench_runtime(work: Path, runs: int) -> list[str]:
    from jailer.runtime import python_runtime_binds

    os.environ["XDG_CACHE_HOME"] = str(work / "xdg")
    cold = [timed(lambda: python_runtime_binds(use_cache=False)) for _ in range(max(3, runs // 3))]
    binds = python_runtime_binds()
    cached = [timed(python_runtime_binds) for _ in range(runs)]
    if shutil.which("bwrap") is None:
        return [f"bubblewrap missing: {len(binds)} binds, cold {median_ms(cold)} ms, cached {median_ms(cached)} ms"]
    script = "import vmm, jailer.policies.loader"

    def jail(arguments: list[str]) -> Callable[[], object]:
        command = ["bwrap", "--unshare-all", "--clearenv", "--chdir", "/", *arguments, "--", sys.executable, "-I", "-c", script]
        return lambda: subprocess.run(command, check=True, capture_output=True)

    def as_args(pairs: list[tuple[Path, Path]]) -> list[str]:
        return [a for source, target in pairs for a in ("--ro-bind", str(source), str(target))]

    computed = as_args(binds)
    entry_points = ("vmm.cli", "jailer.policies.loader", "prctl", "pyseccomp")
    tight_binds = python_runtime_binds(modules=entry_points)
    tight = as_args(tight_binds)
    prefix = Path(sys.base_prefix)
    whole = ["--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
             "--ro-bind", str(prefix), str(prefix), "--ro-bind", str(PROJECT), str(PROJECT)]  # fmt: skip
    ours, narrow, peer = [], [], []
    for _ in range(runs):
        ours.append(timed(jail(computed)))
        narrow.append(timed(jail(tight)))
        peer.append(timed(jail(whole)))
    return [
        "| Python runtime for the jail | ms |",
        "|---|---:|",
        f"| compute the binds (cold: runs the interpreter, parses ELF) | {median_ms(cold)} |",
        f"| binds from the cache (stat of every source) | {median_ms(cached)} |",
        f"| bwrap jail + `python -I -c '{script}'`, {len(binds)} computed binds (default modules) | {median_ms(ours)} |",
        f"| same, {len(tight_binds)} binds computed from entry points `{', '.join(entry_points)}` | {median_ms(narrow)} |",
        f"| peer: same with 5 whole-tree binds (/usr, {prefix}, the project) | {median_ms(peer)} |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--kernel", type=Path, help="a `rootfs-builder kernel` output (default: a fake one)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rootfs-bench.") as temporary:
        work = Path(temporary)
        kernel = args.kernel
        if kernel is None:
            from support.rootfs import make_fake_kernel_dir

            (work / "cbuild").mkdir()
            kernel = make_fake_kernel_dir(work / "kernel", work / "cbuild")
        (work / "i").mkdir()
        kind = "Debian kernel modules" if args.kernel else "fake kernel modules"
        lines = [
            "## rootfs-builder and the jail's Python runtime (`benchmarks/rootfs_bench.py`)",
            "",
            f"{os.cpu_count()} CPUs, kernel {platform.release()}, Python "
            f"{platform.python_version()}; median of {args.runs} alternating runs ({kind} for the initramfs).",
            "",
            *bench_initramfs(kernel, work / "i", args.runs),
            "",
            *bench_rootfs(work, args.runs),
            "",
            *bench_runtime(work, args.runs),
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        previous = RESULTS.read_text() if RESULTS.exists() else ""
        findings = previous[previous.find("### Findings") :] if "### Findings" in previous else ""
        RESULTS.write_text(text + ("\n" + findings if findings else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
