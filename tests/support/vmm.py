"""VMM-core test helpers: tiny inline machine-code guests packed as ELF kernels (PVH note
for the 32-bit entry, plain ELF64 for the 64-bit entry), VM config files, and a runner for
the real `vmm` command."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support import PROJECT_ROOT

LOAD_ADDRESS = 0x10_0000
VMM_COMMAND = [sys.executable, "-c", "import sys; from vmm.cli import main; sys.exit(main())"]


def out_al(port: int, value: int) -> bytes:
    """mov dx, port; mov al, value; out dx, al (identical bytes in 32- and 64-bit mode)."""
    return b"\x66\xba" + struct.pack("<H", port) + b"\xb0" + bytes([value]) + b"\xee"


def serial_text(text: str) -> bytes:
    return b"".join(out_al(0x3F8, byte) for byte in text.encode())


def mov_byte_to_address(address: int, value: int) -> bytes:
    """mov byte [address], value (absolute 32-bit address; in 64-bit mode via SIB form)."""
    return b"\xc6\x04\x25" + struct.pack("<I", address) + bytes([value])


HANG = b"\xeb\xfe"  # jmp $
TRIPLE_FAULT = b"\x0f\x01\x1d" + struct.pack("<I", 0x7F0) + b"\xcc"  # lidt [0x7f0] (zero IDT), int3


def elf_guest(code: bytes, *, pvh: bool) -> bytes:
    """An ELF64 kernel whose one PT_LOAD puts ``code`` at 1 MiB; with ``pvh`` a Xen
    PHYS32_ENTRY note makes the loader choose the 32-bit PVH entry."""
    ehdr_size, phdr_size = 64, 56
    note = b""
    if pvh:
        note = struct.pack("<III", 4, 4, 18) + b"Xen\0" + struct.pack("<I", LOAD_ADDRESS)
    phnum = 2 if pvh else 1
    code_offset = 0x1000
    note_offset = ehdr_size + phdr_size * phnum
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack(
        "<HHIQQQIHHHHHH", 2, 62, 1, LOAD_ADDRESS, ehdr_size, 0, 0, ehdr_size, phdr_size, phnum, 64, 0, 0
    )
    load = struct.pack("<IIQQQQQQ", 1, 5, code_offset, LOAD_ADDRESS, LOAD_ADDRESS, len(code), len(code), 0x1000)
    headers = ehdr + load
    if pvh:
        headers += struct.pack("<IIQQQQQQ", 4, 4, note_offset, 0, 0, len(note), len(note), 4)
    image = bytearray(headers + note)
    image.extend(bytes(code_offset - len(image)))
    image.extend(code)
    return bytes(image)


def write_guest(directory: Path, code: bytes, *, pvh: bool = True, name: str = "guest.elf") -> Path:
    path = directory / name
    path.write_bytes(elf_guest(code, pvh=pvh))
    return path


def write_config(
    directory: Path,
    kernel: Path,
    *,
    vcpu_count: int = 1,
    mem_size_mib: int = 64,
    extra: dict[str, object] | None = None,
) -> Path:
    document: dict[str, object] = {
        "boot-source": {"kernel_image_path": str(kernel), "boot_args": "console=ttyS0"},
        "machine-config": {"vcpu_count": vcpu_count, "mem_size_mib": mem_size_mib},
    }
    document.update(extra or {})
    path = directory / "vm_config.json"
    path.write_text(json.dumps(document))
    return path


@dataclass
class VmmRun:
    returncode: int
    stdout: str
    stderr: str
    log: str


def run_vmm(
    config: Path,
    *extra_args: str,
    log_path: Path | None = None,
    timeout: float = 60,
    stdin: int | None = subprocess.DEVNULL,
    jail_policy: Path | None = None,
) -> VmmRun:
    """Run the real VMM to its end; the log goes to ``log_path`` when given. With
    ``jail_policy`` its `jail` category is enforced process-wide from before the exec."""
    prefix = VMM_COMMAND if jail_policy is None else jailed_vmm_command(jail_policy)
    command = [*prefix, "--config-file", str(config), "--no-api", *extra_args]
    if log_path is not None:
        command += ["--log-path", str(log_path)]
    # No bytecode writes: inside a jail the runtime is read-only, and the jail filter has no rename.
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT, env=environment, stdin=stdin
    )
    log = log_path.read_text() if log_path is not None and log_path.exists() else ""
    return VmmRun(result.returncode, result.stdout, result.stderr, log)


JAIL_LAUNCHER = """
import os, sys
from jailer.policies import load_policy
from jailer.policies.compiler import compile_category
from jailer.policies.loader import install_filter
program = compile_category(load_policy(sys.argv[1]), sys.argv[2], arch="x86_64")
install_filter(program, all_threads=True)
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""


def jailed_vmm_command(policy: Path, category: str = "jail") -> list[str]:
    """The VMM started the way the jailer hands off: the outer category (`jail`, or
    `jail-api` for a VMM serving the API) installed process-wide, then execve of the
    interpreter running the VMM."""
    return [sys.executable, "-c", JAIL_LAUNCHER, str(policy), category, *VMM_COMMAND[1:]]


def api_request(socket_path: Path, method: str, path: str, body: object = None) -> tuple[int, object]:
    """One HTTP/1.1 request over the VMM's API socket: (status, decoded JSON or None)."""
    import socket

    payload = b"" if body is None else json.dumps(body).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(30)
        client.connect(str(socket_path))
        head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(payload)}\r\n\r\n"
        client.sendall(head.encode() + payload)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = client.recv(4096)
            if not chunk:
                break
            response += chunk
        header, _, rest = response.partition(b"\r\n\r\n")
        status = int(header.split(b" ")[1])
        length = next(
            (int(line.split(b":")[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(rest) < length:
            rest += client.recv(length - len(rest))
    return status, json.loads(rest) if rest else None
