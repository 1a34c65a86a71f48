"""Precompiled seccomp programs for the shipped policies (Firecracker's model: seccompiler
compiles at build time, the jailer and the VMM only load the result).

`jailer-policy precompile` (run by `scripts/bootstrap.sh`'s setup step) compiles every category
of every shipped policy (`jailer/policies/*.json`) and stores each program in this package's
`compiled/` directory as `<policy>.<category>.<arch>.bpf`. It lives inside the package because
the jailed VMM sees our package directories (bound read-only by `--python-runtime`) and nothing
else. At run time `load` returns the stored program when it is fresh, and None otherwise; the
callers (`jailer.seccomp`, `vmm.seccomp`) then parse and compile exactly as without a store, so
an install that never ran the precompile step behaves as before, only slower to start.

Freshness is decided by content, never by mtime (copies, checkouts and package installs do not
keep mtimes meaningful): a stored file carries a key, the digest of

* the format version below (bump it when this file's layout or the key's inputs change),
* the architecture and the category name,
* the toolchain: the bytes of the modules whose code decides the compiled program (the parser,
  the model, the compiler, the syscall table and the range-merge check's emulator), so a
  program compiled by an older toolchain is never taken for the current one's output, also
  after an upgrade that left an old `compiled/` directory behind,
* the policy file's bytes as read at run time.

Hashing the toolchain on every start is what `toolchain-stamp` in the store saves: written by
the precompile, it records the digest with each source's device, inode, size, mtime and
ctime, and stands for hashing only while all of them still match (see `toolchain_digest`).

The libseccomp version is not part of the key: checking it would mean loading the library on
every start, which is what the store avoids; re-run `jailer-policy precompile` after upgrading
libseccomp (the bootstrap does at every setup), and `jailer-policy precompile --check` reports
programs (and a syscall-name table, below) that differ from a fresh compile.

Digest: BLAKE2b-256 from CPython's `_blake2` module, imported directly. `hashlib` would import
`_hashlib`, i.e. OpenSSL (~3 ms under `python -X importtime` here, more than everything else
this module does); `_blake2` is built into Debian's interpreter (~0.1 ms to import) and hashes
about 2.5x faster than `_sha256` (~0.12 ms for the 50 KB `vmm.json` against ~0.35 ms). The
jailer's FNV-1a (`jailer.runtime`) is fine for a cache key but not for content integrity.

The digests guard against stale and damaged files (a truncated write, a corrupted disk), not
against someone who can write the store: whoever can replace a file can also give it a
matching digest. That is what the ownership check is for (`jailer.trusted`): a stored file is
used only when it is a regular file owned by root or by the running euid and writable by
nobody else (files are written 0644 and, when the precompile runs as root, owned by root,
atomically through a temporary file and a rename).

File layout: magic (8 bytes), key (32), program length (4, little-endian), BLAKE2b-256 of the
program (32), the program (`struct sock_filter` array).

The store also holds, per architecture, the syscall-name table the VMM's violation reporter
needs (`syscall-names.<arch>`: number -> name for numbers below `SYSCALL_NAME_TABLE_SIZE`, from
libseccomp, one name per line, empty where a number has none), in the same layout and keyed
by the format, the arch and the toolchain digest (which covers `syscalls.py`): resolving 512
numbers through ctypes costs the VMM ~4 ms of every start, reading them ~0.1 ms.
"""

from __future__ import annotations

import os

from jailer.policies import read_regular_file
from jailer.trusted import read_trusted

TYPE_CHECKING = False  # no typing import: this module is on the jailer's and the VMM's start-up path
if TYPE_CHECKING:
    from collections.abc import Sequence

FORMAT = 1
MAGIC = b"STKBPF1\n"
DIGEST_SIZE = 32
HEADER_SIZE = len(MAGIC) + DIGEST_SIZE + 4 + DIGEST_SIZE
SOCK_FILTER_SIZE = 8
BPF_MAXINSNS = 4096
ARCHES = ("x86_64", "aarch64")
# The modules whose code decides the bytes `compiler.compile_category` returns.
TOOLCHAIN_MODULES = ("parser", "model", "compiler", "syscalls", "bpf", "probes")
SYSCALL_NAME_TABLE_SIZE = 512
NAMES_ENTRY = ("(syscall names)", "-")  # how `precompile` lists the name table among programs

_HERE = os.path.dirname(os.path.abspath(__file__))
STORE_DIR = os.path.join(_HERE, "compiled")
_PERSON = b"stockade.seccomp"  # BLAKE2 personalisation: 16 bytes
_MAX_POLICY_SIZE = 16 << 20
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_NAME_BYTES = "".join(sorted(_NAME_CHARS)).encode("ascii")

_toolchain_digest: bytes | None = None


def _blake2b(data: bytes) -> bytes:
    from _blake2 import blake2b

    return blake2b(data, digest_size=DIGEST_SIZE, person=_PERSON).digest()


def _safe_name(name: str) -> bool:
    return bool(name) and all(char in _NAME_CHARS for char in name)


def _read_file(path: str, limit: int = _MAX_POLICY_SIZE) -> bytes:
    """The whole file (os-level calls only: no `io` text layer, no codec lookups); a FIFO or
    device named as the policy is refused, not waited on (`jailer.policies.read_regular_file`)."""
    return read_regular_file(path, limit)


def toolchain_digest() -> bytes:
    """BLAKE2b-256 over the toolchain modules' source bytes (computed once per process), taken
    from the store's toolchain stamp when that stamp still describes the sources.

    OSError when a source is missing (a bytecode-only install): then nothing is ever fresh.
    """
    global _toolchain_digest
    if _toolchain_digest is None:
        stamped = _stamped_toolchain_digest(_HERE, toolchain_stamp_path())
        _toolchain_digest = stamped if stamped is not None else _hash_toolchain(_HERE)[0]
    return _toolchain_digest


def _hash_toolchain(directory: str) -> tuple[bytes, list[tuple[int, ...]]]:
    """(the digest of the toolchain sources in `directory`, each source's identity as it was
    before it was read: see `_file_identity`)."""
    parts = []
    identities = []
    for name in TOOLCHAIN_MODULES:
        path = os.path.join(directory, f"{name}.py")
        identities.append(_file_identity(path))
        source = _read_file(path)
        parts.append(f"{name}:{len(source)}\n".encode() + source)
    return _blake2b(b"".join(parts)), identities


# The toolchain stamp memoizes the digest above for the exact files it was computed from:
# hashing the ~50 KB of sources costs ~0.5 ms of every jailer and VMM start on our hosts,
# six stat(2) calls ~30 µs. A file is the same file only while device, inode, size, mtime and
# ctime all match; ctime cannot be set from user space and moves with any write, so a changed,
# replaced or copied source (a checkout, a package install) misses the stamp and is hashed.
# Freshness stays decided by content: the stamp only records what hashing that content gave.
TOOLCHAIN_STAMP_MAGIC = b"stockade-toolchain-stamp/1\n"
_MAX_STAMP_SIZE = 4096


def toolchain_stamp_path(store: str | None = None) -> str:
    return os.path.join(STORE_DIR if store is None else store, "toolchain-stamp")


def _file_identity(path: str) -> tuple[int, ...]:
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _encode_stamp(digest: bytes, identities: Sequence[tuple[int, ...]]) -> bytes:
    lines = [f"{name} {' '.join(map(str, identity))}\n" for name, identity in zip(TOOLCHAIN_MODULES, identities)]
    return TOOLCHAIN_STAMP_MAGIC + "".join(lines).encode() + digest.hex().encode() + b"\n"


def _stamped_toolchain_digest(directory: str, stamp_path: str) -> bytes | None:
    """The digest the stamp at `stamp_path` records, if it may be trusted (`read_trusted`) and
    every source in `directory` is still the file it describes; else None."""
    data = read_trusted(stamp_path, _MAX_STAMP_SIZE)
    if data is None or not data.startswith(TOOLCHAIN_STAMP_MAGIC):
        return None
    lines = data[len(TOOLCHAIN_STAMP_MAGIC):].decode("ascii", "replace").split("\n")
    if len(lines) != len(TOOLCHAIN_MODULES) + 2 or lines[-1]:
        return None
    try:
        for name, line in zip(TOOLCHAIN_MODULES, lines):
            recorded_name, *numbers = line.split(" ")
            if recorded_name != name or tuple(int(number) for number in numbers) != _file_identity(
                os.path.join(directory, f"{name}.py")
            ):
                return None
        digest = bytes.fromhex(lines[-2])
    except (OSError, ValueError):
        return None
    return digest if len(digest) == DIGEST_SIZE else None


def _store_toolchain_stamp(directory: str) -> None:
    """Hash the toolchain sources and record the result in the store's stamp (`precompile`)."""
    digest, identities = _hash_toolchain(_HERE)
    if identities == [_file_identity(os.path.join(_HERE, f"{name}.py")) for name in TOOLCHAIN_MODULES]:
        wanted = _encode_stamp(digest, identities)
        if read_trusted(toolchain_stamp_path(directory), _MAX_STAMP_SIZE) != wanted:
            write_atomically(toolchain_stamp_path(directory), wanted)


def freshness_key(source: bytes, category: str, arch: str) -> bytes:
    """The key a stored program must carry to stand for `category` of the policy `source`."""
    if not (_safe_name(category) and arch in ARCHES):
        raise ValueError(f"cannot key category {category!r} on {arch!r}")
    header = f"stockade-seccomp-bpf/{FORMAT}\0{arch}\0{category}\0".encode()
    return _blake2b(header + toolchain_digest() + source)


def names_key(arch: str) -> bytes:
    """The key a stored syscall-name table must carry for `arch`."""
    if arch not in ARCHES:
        raise ValueError(f"no syscall-name table for {arch!r}")
    return _blake2b(f"stockade-syscall-names/{FORMAT}\0{arch}\0".encode() + toolchain_digest())


def names_path(arch: str, store: str | None = None) -> str:
    if arch not in ARCHES:
        raise ValueError(f"no syscall-name table for {arch!r}")
    return os.path.join(STORE_DIR if store is None else store, f"syscall-names.{arch}")


def encode_names(names: Sequence[str | None]) -> bytes:
    return "\n".join(name or "" for name in names).encode("ascii")


def compute_syscall_names(arch: str = "x86_64") -> list[str | None]:
    """Number -> name (None where libseccomp has none) for the table's numbers."""
    from jailer.policies.syscalls import name

    return [name(number, arch) for number in range(SYSCALL_NAME_TABLE_SIZE)]


def load_syscall_names(arch: str = "x86_64", store: str | None = None) -> list[str | None] | None:
    """The stored syscall-name table for `arch` if fresh and trusted, else None (never raises)."""
    try:
        data = read_stored(names_path(arch, store))
        payload = None if data is None else _decode_payload(data, names_key(arch))
        # Names use the store's name characters only, one per line (checked in one C call).
        if payload is None or payload.translate(None, _NAME_BYTES + b"\n"):
            return None
        names = payload.decode("ascii").split("\n")
    except (OSError, ValueError, ImportError):
        return None
    if len(names) != SYSCALL_NAME_TABLE_SIZE:
        return None
    return [name or None for name in names]


def policy_name(policy_path: str) -> str:
    """`/any/dir/vmm.json` -> `vmm`: the store is looked up by file name, then checked by content."""
    base = os.path.basename(policy_path)
    return base[: -len(".json")] if base.endswith(".json") else base


def store_path(name: str, category: str, arch: str, store: str | None = None) -> str:
    if not (_safe_name(name) and _safe_name(category) and arch in ARCHES):
        raise ValueError(f"no store file for policy {name!r} category {category!r} on {arch!r}")
    return os.path.join(STORE_DIR if store is None else store, f"{name}.{category}.{arch}.bpf")


def encode(key: bytes, program: bytes) -> bytes:
    """A stored file's bytes."""
    return MAGIC + key + len(program).to_bytes(4, "little") + _blake2b(program) + program


def _decode_payload(data: bytes, key: bytes) -> bytes | None:
    """The payload in `data` when its header is intact, carries `key` and matches the payload."""
    if len(data) < HEADER_SIZE or data[: len(MAGIC)] != MAGIC:
        return None
    offset = len(MAGIC)
    if data[offset : offset + DIGEST_SIZE] != key:
        return None
    offset += DIGEST_SIZE
    length = int.from_bytes(data[offset : offset + 4], "little")
    offset += 4
    check = data[offset : offset + DIGEST_SIZE]
    payload = data[HEADER_SIZE:]
    if len(payload) != length or not length or _blake2b(payload) != check:
        return None
    return payload


def decode(data: bytes, key: bytes) -> bytes | None:
    """The program in `data` when its header is intact, carries `key` and matches the program."""
    program = _decode_payload(data, key)
    if program is None or len(program) % SOCK_FILTER_SIZE or len(program) // SOCK_FILTER_SIZE > BPF_MAXINSNS:
        return None
    return program


def read_stored(path: str) -> bytes | None:
    """A store file's bytes if it may be trusted, else None."""
    return read_trusted(path, HEADER_SIZE + BPF_MAXINSNS * SOCK_FILTER_SIZE)


def load(policy_path: str, category: str, arch: str = "x86_64", store: str | None = None) -> bytes | None:
    """The stored program for `category` of the policy at `policy_path` if fresh, else None.

    Never raises: any problem (no store, a foreign or damaged file, an unreadable policy, no
    `_blake2`) means None, and the caller compiles as it would without a store.
    """
    programs = load_categories(policy_path, [category], arch, store)
    return None if programs is None else programs[category]


def load_categories(policy_path: str, categories: Sequence[str], arch: str = "x86_64",
                    store: str | None = None) -> dict[str, bytes] | None:
    """`load` for several categories of one policy, reading the policy once: every program,
    or None unless all of them are fresh."""
    try:
        source = _read_file(policy_path)
        name = policy_name(policy_path)
        programs = {}
        for category in categories:
            data = read_stored(store_path(name, category, arch, store))
            program = None if data is None else decode(data, freshness_key(source, category, arch))
            if program is None:
                return None
            programs[category] = program
        return programs
    except (OSError, ValueError, ImportError):
        return None


def write_atomically(path: str, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and rename(2):
    readers see the old file or the new one, never a partial one. Mode 0644 whatever the
    umask; owned by root when run as root."""
    from jailer.policies.files import write_temporary

    temporary = write_temporary(path, data)
    try:
        os.rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def _store(path: str, wanted: bytes, check_only: bool) -> str:
    """Write `wanted` to the store file `path` unless it already holds it (or, with
    `check_only`, only compare); the entry's status."""
    current = read_stored(path)
    if check_only:
        return "missing" if current is None else "fresh" if current == wanted else "stale"
    if current == wanted:
        return "unchanged"
    write_atomically(path, wanted)
    return "written"


def _store_names(arch: str, directory: str, check_only: bool) -> Entry:
    """Write (or, with `check_only`, check) the syscall-name table for `arch`."""
    path = names_path(arch, directory)
    status = _store(path, encode(names_key(arch), encode_names(compute_syscall_names(arch))), check_only)
    return Entry(*NAMES_ENTRY, arch, path, SYSCALL_NAME_TABLE_SIZE, status)


class Entry:
    """One stored program: which policy and category, where, how big, and what happened."""

    __slots__ = ("policy", "category", "arch", "path", "instructions", "status")

    def __init__(self, policy: str, category: str, arch: str, path: str, instructions: int, status: str) -> None:
        self.policy = policy
        self.category = category
        self.arch = arch
        self.path = path
        self.instructions = instructions
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


def _compile_shipped(name: str, arch: str) -> tuple[str, bytes, dict[str, bytes]]:
    """(path, source bytes, {category: program}) for one shipped policy."""
    from jailer.policies import PolicyError, compiler, load_policy, shipped_policy_file

    path = shipped_policy_file(name)
    source = _read_file(path)
    programs = compiler.compile_policy(load_policy(path), arch)
    if _read_file(path) != source:
        raise PolicyError(f"{path}: changed while it was being compiled")
    return path, source, programs


def precompile(names: Sequence[str] | None = None, arch: str = "x86_64", store: str | None = None,
               *, check_only: bool = False) -> list[Entry]:
    """Compile every category of the shipped policies `names` (default: all) into the store.

    A file already holding the same bytes is left alone (`unchanged`); otherwise it is
    written (`written`). Store files of the same arch that no shipped category produces any
    more are removed (`removed`) when all policies are precompiled. With `check_only` nothing
    is written: each entry says `fresh`, `stale` or `missing`.
    """
    from jailer.policies import PolicyError, shipped_policy_names

    directory = STORE_DIR if store is None else store
    all_policies = names is None
    known = shipped_policy_names()
    names = known if names is None else list(names)
    for name in names:
        if name not in known:
            raise PolicyError(f"no shipped policy named {name!r} (shipped: {', '.join(known) or 'none'})")
    if not check_only:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    entries: list[Entry] = []
    produced: set[str] = set()
    for name in names:
        _, source, programs = _compile_shipped(name, arch)
        for category, program in programs.items():
            path = store_path(name, category, arch, directory)
            produced.add(os.path.basename(path))
            status = _store(path, encode(freshness_key(source, category, arch), program), check_only)
            entries.append(Entry(name, category, arch, path, len(program) // SOCK_FILTER_SIZE, status))
    if all_policies:
        entries.append(_store_names(arch, directory, check_only))
    if not check_only:
        _store_toolchain_stamp(directory)
    if all_policies and os.path.isdir(directory):
        suffix = f".{arch}.bpf"
        for file in sorted(os.listdir(directory)):
            if file.endswith(suffix) and file not in produced:
                path = os.path.join(directory, file)
                if not check_only:
                    os.unlink(path)
                stem = file[: -len(suffix)]
                policy, _, category = stem.partition(".")
                entries.append(Entry(policy, category, arch, path, 0, "extra" if check_only else "removed"))
    return entries
