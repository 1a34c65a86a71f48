"""API routing and request parsing without a VM: statuses, fault messages, no crash on junk."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmm.api import ApiError, ApiServer, ApiState, _read_request


def server(document: dict[str, Any] | None = None, start_result: str | None = None) -> tuple[ApiServer, list[dict[str, Any]]]:
    started: list[dict[str, Any]] = []

    def start(doc: dict[str, Any]) -> str | None:
        started.append(doc)
        return start_result

    api = ApiServer(None, ApiState("vm-1", "0.1.0", document), start_instance=start, flush_metrics=lambda: None, filter_program=None)  # type: ignore[arg-type]
    return api, started


def put(api: ApiServer, path: str, body: object, method: str = "PUT") -> tuple[int, Any]:
    return api.handle(method, path, json.dumps(body).encode())


def test_configure_then_start() -> None:
    api, started = server()
    assert api.handle("GET", "/", b"") == (200, {"id": "vm-1", "state": "Not started", "vmm_version": "0.1.0", "app_name": "stockade-vmm"})
    assert put(api, "/boot-source", {"kernel_image_path": "/k"}) == (204, None)
    assert put(api, "/machine-config", {"vcpu_count": 2, "mem_size_mib": 64}) == (204, None)
    assert put(api, "/drives/root", {"path_on_host": "/d", "is_root_device": True}) == (204, None)
    assert put(api, "/drives/root", {"path_on_host": "/e", "is_root_device": True}) == (204, None)
    assert put(api, "/actions", {"action_type": "InstanceStart"}) == (204, None)
    assert started[0]["drives"] == [{"path_on_host": "/e", "is_root_device": True, "drive_id": "root"}]
    assert api.handle("GET", "/", b"")[1]["state"] == "Running"
    with pytest.raises(ApiError, match="not supported after starting"):
        put(api, "/boot-source", {"kernel_image_path": "/k"})


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("PUT", "/machine-config", {"vcpu_count": 0, "mem_size_mib": 1}, 400, "must be at least 1"),
        ("PATCH", "/machine-config", {"vcpu_count": 2}, 400, "PUT it first"),
        ("PUT", "/drives/a", {"drive_id": "b", "path_on_host": "/d", "is_root_device": True}, 400, "does not match the path"),
        ("PUT", "/vsock", {"guest_cid": 3}, 404, "unknown resource"),
        ("POST", "/actions", {}, 405, "not allowed"),
        ("PUT", "/actions", {"action_type": "SendCtrlAltDel"}, 400, "unsupported action_type"),
        ("PUT", "/actions", [], 400, "expected"),
    ],
)
def test_errors(method: str, path: str, body: object, status: int, message: str) -> None:
    api, _ = server()
    with pytest.raises(ApiError, match=message) as error:
        put(api, path, body, method)
    assert error.value.status == status


def test_failed_start_is_reported_and_can_be_retried() -> None:
    api, started = server(start_result="kernel image not found: /k")
    put(api, "/boot-source", {"kernel_image_path": "/k"})
    with pytest.raises(ApiError, match="kernel image not found"):
        put(api, "/actions", {"action_type": "InstanceStart"})
    assert api.handle("GET", "/", b"")[1]["state"] == "Not started" and len(started) == 1


def feed(data: bytes) -> tuple[Any, bytes]:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(data)
        left.shutdown(socket.SHUT_WR)
        return _read_request(right, b"")


def test_request_parsing() -> None:
    request, rest = feed(b"PUT /actions?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET")
    assert request == ("PUT", "/actions", b"{}") and rest == b"GET"
    with pytest.raises(ApiError, match="malformed request line"):
        feed(b"HELLO\r\n\r\n")
    with pytest.raises(ApiError, match="incomplete request body"):
        feed(b"PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_junk_requests_fail_as_api_errors(data: bytes) -> None:
    try:
        request, _ = feed(data)
    except ApiError:
        return
    if request is not None:
        api, _ = server()
        try:
            api.handle(*request)
        except ApiError:
            pass
