"""A Firecracker-compatible HTTP API on a Unix socket, served by the `api` thread.

Before the VM starts it collects the configuration (`PUT /boot-source`, `/machine-config`,
`/logger`, `/metrics`, `/serial`, `/drives/{id}`, `/network-interfaces/{id}`, `PATCH
/machine-config`) and starts it with `PUT /actions {"action_type": "InstanceStart"}`;
afterwards it answers `GET /`, `GET /machine-config`, `GET /vm/config`, `GET /version` and
`PUT /actions {"action_type": "FlushMetrics"}`. Errors are Firecracker's
`{"fault_message": "..."}` with status 400.

The socket is created, bound and listening in the main thread before any filter; the
thread installs its own `api` filter before it accepts the first client.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any

from vmm.errors import ConfigError, VmmError
from vmm.threads import Lock, Thread

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
NOT_AFTER_START = "The requested operation is not supported after starting the microVM."
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}
_PRE_BOOT_SECTIONS = {
    "/boot-source": "boot-source",
    "/machine-config": "machine-config",
    "/logger": "logger",
    "/metrics": "metrics",
    "/serial": "serial",
}
_KEYED_SECTIONS = {"/drives/": ("drives", "drive_id"), "/network-interfaces/": ("network-interfaces", "iface_id")}


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def bind_socket(path: str) -> socket.socket:
    """A listening Unix socket at ``path`` (a stale socket file there is replaced)."""
    import stat

    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as error:
        raise VmmError(f"--api-sock {path}: {error.strerror}") from None
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        server.bind(path)
        server.listen(8)
    except OSError as error:
        server.close()
        raise VmmError(f"--api-sock {path}: cannot listen: {error.strerror}") from None
    return server


class ApiState:
    """The configuration document being assembled, and the VM's life cycle as the API sees it."""

    def __init__(self, instance_id: str, version: str, document: dict[str, Any] | None) -> None:
        self.instance_id = instance_id
        self.version = version
        self.document: dict[str, Any] = dict(document or {})
        self.started = document is not None
        self.lock = Lock()

    def info(self) -> dict[str, Any]:
        state = "Running" if self.started else "Not started"
        return {"id": self.instance_id, "state": state, "vmm_version": self.version, "app_name": "stockade-vmm"}

    def put_section(self, section: str, body: Any, *, merge: bool = False) -> None:
        from vmm.config import parse_config

        if self.started:
            raise ApiError(NOT_AFTER_START)
        candidate = dict(self.document)
        if merge:
            if not isinstance(candidate.get(section), dict) or not isinstance(body, dict):
                raise ApiError(f"{section}: nothing to update; PUT it first")
            body = {**candidate[section], **body}
        candidate[section] = body
        _check_section(parse_config, candidate, section)
        self.document = candidate

    def put_keyed(self, section: str, key: str, item_id: str, body: Any) -> None:
        from vmm.config import parse_config

        if self.started:
            raise ApiError(NOT_AFTER_START)
        if not isinstance(body, dict):
            raise ApiError(f"{section}: expected a JSON object")
        if body.get(key, item_id) != item_id:
            raise ApiError(f"{section}: the {key} in the body does not match the path")
        items = [item for item in self.document.get(section, []) if item.get(key) != item_id]
        candidate = dict(self.document)
        candidate[section] = [*items, {**body, key: item_id}]
        _check_section(parse_config, candidate, section)
        self.document = candidate


def _check_section(parse_config: Callable[[Any], Any], candidate: dict[str, Any], section: str) -> None:
    """Validate ``section`` now (the rest may still be missing: fill placeholders for it)."""
    probe = dict(candidate)
    probe.setdefault("boot-source", {"kernel_image_path": "unset"})
    probe.setdefault("machine-config", {"vcpu_count": 1, "mem_size_mib": 1})
    try:
        parse_config(probe)
    except ConfigError as error:
        raise ApiError(str(error)) from None


class ApiServer(Thread):
    """Serves one client connection at a time (keep-alive), in the `api` thread."""

    def __init__(
        self,
        server: socket.socket,
        state: ApiState,
        *,
        start_instance: Callable[[dict[str, Any]], str | None],
        flush_metrics: Callable[[], None],
        filter_program: bytes | None,
    ) -> None:
        super().__init__("api")
        self.server = server
        self.state = state
        self.start_instance = start_instance
        self.flush_metrics = flush_metrics
        self.filter_program = filter_program
        # Held until the answer to a successful InstanceStart is on the wire (`wait_start_answered`).
        self._start_answered = Lock()
        self._start_answered.acquire()
        self._answering_start = False

    def wait_start_answered(self, timeout: float) -> bool:
        """Block until the client has been sent the 204 of its InstanceStart, so the VM (whose
        guest may end at once, and the process with it) never outruns that answer."""
        return self._start_answered.acquire(timeout=timeout)

    def run(self) -> None:
        if self.filter_program is not None:
            from vmm import seccomp

            seccomp.install(self.filter_program)
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            with client:
                self._serve(client)

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                request, buffer = _read_request(client, buffer)
            except ApiError as error:
                client.sendall(_response(error.status, {"fault_message": str(error)}, close=True))
                return
            except OSError:
                return
            if request is None:
                return
            method, path, body = request
            try:
                status, payload = self.handle(method, path, body)
            except ApiError as error:
                status, payload = error.status, {"fault_message": str(error)}
            except Exception as error:  # a bug must cost one request, not the API thread
                status, payload = 500, {"fault_message": f"internal error: {type(error).__name__}: {error}"}
            try:
                client.sendall(_response(status, payload))
            except OSError:
                return
            finally:
                if self._answering_start:
                    self._answering_start = False
                    self._start_answered.release()

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Route one request; returns (status, JSON payload or None)."""
        state = self.state
        if method == "GET":
            with state.lock:
                if path == "/":
                    return 200, state.info()
                if path == "/version":
                    return 200, {"firecracker_version": state.version}
                if path == "/machine-config":
                    return 200, state.document.get("machine-config", {})
                if path == "/vm/config":
                    return 200, state.document
            raise ApiError(f"unknown resource {path}", 404)
        if method not in ("PUT", "PATCH"):
            raise ApiError(f"method {method} is not allowed", 405)
        document = _json_body(body)
        if path == "/actions" and method == "PUT":
            return self._action(document)
        with state.lock:
            if path in _PRE_BOOT_SECTIONS and (method == "PUT" or path == "/machine-config"):
                state.put_section(_PRE_BOOT_SECTIONS[path], document, merge=method == "PATCH")
                return 204, None
            for prefix, (section, key) in _KEYED_SECTIONS.items():
                if path.startswith(prefix) and method == "PUT" and len(path) > len(prefix) and "/" not in path[len(prefix) :]:
                    state.put_keyed(section, key, path[len(prefix) :], document)
                    return 204, None
        raise ApiError(f"unknown resource {method} {path}", 404)

    def _action(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("action_type"), str):
            raise ApiError("actions: expected {\"action_type\": ...}")
        action = body["action_type"]
        if action == "FlushMetrics":
            self.flush_metrics()
            return 204, None
        if action == "InstanceStart":
            with self.state.lock:
                if self.state.started:
                    raise ApiError(NOT_AFTER_START)
                document = dict(self.state.document)
            failure = self.start_instance(document)
            if failure is not None:
                raise ApiError(failure)
            with self.state.lock:
                self.state.started = True
            self._answering_start = True
            return 204, None
        raise ApiError(f"actions: unsupported action_type {action!r} (InstanceStart, FlushMetrics)")


def _json_body(body: bytes) -> Any:
    if not body:
        raise ApiError("the request needs a JSON body")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as error:
        raise ApiError(f"invalid JSON body: {error}") from None


def _read_request(client: socket.socket, buffer: bytes) -> tuple[tuple[str, str, bytes] | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEADER_BYTES:
            raise ApiError("request headers too large")
        chunk = client.recv(4096)
        if not chunk:
            if buffer:
                raise ApiError("incomplete request")
            return None, b""
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ApiError("malformed request line")
    method, target, _ = parts
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise ApiError("invalid Content-Length")
            length = int(value.strip())
    if length > MAX_BODY_BYTES:
        raise ApiError("request body too large")
    while len(rest) < length:
        chunk = client.recv(length - len(rest))
        if not chunk:
            raise ApiError("incomplete request body")
        rest += chunk
    path = target.split("?", 1)[0]
    return (method, path, rest[:length]), rest[length:]


def _response(status: int, payload: Any, *, close: bool = False) -> bytes:
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Server: stockade-vmm", f"Content-Length: {len(body)}"]
    if body:
        headers.append("Content-Type: application/json")
    if close:
        headers.append("Connection: close")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body
