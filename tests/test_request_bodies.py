"""Request bodies: no body is read before the key is checked, every body is capped by
its route, and a client that hangs up mid-body is a debug line, not a traceback.

The memory test runs a real ``hookbook serve`` process and reads its peak resident
memory (``VmHWM``) before and after 50 MB bodies are streamed at it.
"""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import httpx
import pytest

from conftest import wait_until
from hookbook.server import SimpleServer
from processes import ServeProcess, write_config
from readers import check_readers, snapshot

KEY = "bodies_admin_key_0123"
READER = "bodies_reader_key_0123"

#: Every route that takes a body, with a body that would be valid JSON for it.
BODY_ROUTES = [
    ("POST", "/api/v1/webhooks/target/", b'{"url": "http://127.0.0.1:9/x"}'),
    ("PATCH", "/api/v1/webhooks/1", b'{"active": true}'),
    ("POST", "/api/v1/metadata/", b'{"id": "x", "structure_family": "container"}'),
    ("PUT", "/api/v1/metadata/", b'{"metadata": {}}'),
    ("PATCH", "/api/v1/metadata/", b'{"content-type": "application/json-patch+json"}'),
    ("PUT", "/api/v1/array/full/a", b"\x00" * 8),
    ("PATCH", "/api/v1/array/full/a?offset=0&shape=1", b"\x00" * 8),
    ("PUT", "/api/v1/array/block/a?block=0", b"\x00" * 8),
    ("PUT", "/api/v1/table/full/t", b"ARROW1"),
    ("PUT", "/api/v1/table/partition/t?partition=0", b"ARROW1"),
    ("PATCH", "/api/v1/table/partition/t?partition=0", b"ARROW1"),
]


@pytest.fixture(scope="module")
def server():
    with SimpleServer(
        enable_webhooks=True, api_keys=[{"key": READER, "scopes": ["read:metadata"]}]
    ) as srv:
        yield srv


@pytest.fixture(autouse=True)
def nothing_written(request):
    """After each test on the module's server: nothing changed, and everything reads."""
    if "server" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("server")
    before = snapshot(server)
    yield
    assert snapshot(server) == before
    check_readers(server)


def _names(server: SimpleServer) -> list[str]:
    with httpx.Client(base_url=server.base_url, params={"api_key": server.api_key}) as api:
        nodes = [n["id"] for n in api.get("/api/v1/search/").json()["data"]]
        hooks = [h["url"] for h in api.get("/api/v1/webhooks/").json()]
    return nodes + hooks


@pytest.mark.parametrize(("method", "route", "valid"), BODY_ROUTES)
@pytest.mark.parametrize("body", ["valid", "malformed", "{"])
def test_no_key_is_401_whatever_the_body(server, method, route, valid, body):
    content = {"valid": valid, "malformed": b"\xff\xfe not json", "{": b"{"}[body]
    response = httpx.request(method, server.base_url + route, content=content)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "AuthenticationError"
    wrong = httpx.request(
        method, server.base_url + route, content=content, headers={"Authorization": "Apikey nope"}
    )
    assert wrong.status_code == 401
    assert _names(server) == []


@pytest.mark.parametrize(("method", "route", "valid"), BODY_ROUTES)
def test_a_key_without_the_scope_is_403_before_the_body_is_read(server, method, route, valid):
    response = httpx.request(
        method, server.base_url + route, content=b"{", headers={"Authorization": f"Apikey {READER}"}
    )
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "PermissionDeniedError"


@pytest.mark.parametrize(
    ("method", "route", "limit"),
    [
        ("POST", "/api/v1/webhooks/target/", 8 * 1024),
        ("PATCH", "/api/v1/webhooks/1", 8 * 1024),
        ("POST", "/api/v1/metadata/", 1024 * 1024),
        ("PUT", "/api/v1/metadata/", 1024 * 1024),
        ("PATCH", "/api/v1/metadata/", 1024 * 1024),
    ],
)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_json_bodies_are_capped_by_route(server, method, route, limit, declared):
    size = limit + 1

    def chunks():
        yield b" " * size  # whitespace: valid JSON framing, so only the size is wrong

    content = b" " * size if declared else chunks()
    response = httpx.request(
        method,
        server.base_url + route,
        content=content,
        headers={"Authorization": f"Apikey {server.api_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["error"] == "PayloadTooLargeError"
    assert str(limit) in body["detail"]
    assert body["context"]["limit"] == limit
    assert _names(server) == []


def test_a_client_that_hangs_up_mid_body_is_a_debug_line(server, caplog):
    caplog.set_level(logging.DEBUG, logger="hookbook")
    for route in ("/api/v1/metadata/", "/api/v1/webhooks/target/"):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                f"POST {route} HTTP/1.1\r\nHost: x\r\nAuthorization: Apikey {server.api_key}\r\n"
                'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id": '.encode()
            )
            time.sleep(0.05)  # let the server start reading the body before the hang-up
    wait_until(
        lambda: sum("client disconnected" in r.getMessage() for r in caplog.records) == 2,
        message="both hang-ups logged",
    )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert _names(server) == []


# ---- memory ----------------------------------------------------------------------

FIFTY_MB = 50 * 1024 * 1024


def _peak_rss(pid: int) -> int:
    """Peak resident memory of a process, in bytes (Linux ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def _stream(port: int, head: str, size: int) -> int:
    """Send a request head then ``size`` body bytes (all of them, as an attacker
    would; in one chunk when the head says chunked), then return the status code
    the server answered with."""
    chunk = b"\x00" * (1024 * 1024)
    if "chunked" in head:
        head += f"{size:x}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode())
        sent = 0
        try:
            while sent < size:
                sent += sock.send(chunk[: min(len(chunk), size - sent)])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close once it has answered; it did not read the rest
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    return int(answer.split(b" ", 2)[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_big_bodies_do_not_move_the_servers_memory(tmp_path):
    config = write_config(
        tmp_path / "hookbook.yaml",
        database=f"sqlite+aiosqlite:///{tmp_path / 'hookbook.db'}",
        directory=tmp_path / "data",
        api_key=KEY,
    )
    with ServeProcess(config) as proc:
        proc.wait_ready()
        auth = f"Authorization: Apikey {KEY}\r\n"
        heads = {
            # No key: refused before the body is read (a webhook, a metadata and a
            # data route here; test_no_key_is_401_whatever_the_body covers them all).
            **{
                f"{method} {route} (no key)": (
                    f"{method} {route} HTTP/1.1\r\nHost: x\r\nContent-Length: {FIFTY_MB}\r\n\r\n"
                )
                for method, route, _ in (BODY_ROUTES[0], BODY_ROUTES[2], BODY_ROUTES[5])
            },
            # A key, but a body over its route's cap: declared, or found out while reading.
            "webhook, declared": (
                f"POST /api/v1/webhooks/target/ HTTP/1.1\r\nHost: x\r\n{auth}"
                f"Content-Length: {FIFTY_MB}\r\n\r\n"
            ),
            "metadata, chunked": (
                f"POST /api/v1/metadata/ HTTP/1.1\r\nHost: x\r\n{auth}"
                "Transfer-Encoding: chunked\r\n\r\n"
            ),
        }
        expected = {name: (413 if "no key" not in name else 401) for name in heads}
        # Warm up every code path first, so the measurement sees only the bodies.
        for name, head in heads.items():
            assert _stream(proc.port, head, 2 * 1024 * 1024) == expected[name], name
        before = _peak_rss(proc.proc.pid)
        for name, head in heads.items():
            assert _stream(proc.port, head, FIFTY_MB) == expected[name], name
        growth = _peak_rss(proc.proc.pid) - before
        print(f"peak memory moved by {growth / 1e6:.2f} MB over {len(heads)} bodies of 50 MB")
        assert proc.proc.poll() is None
        assert "Traceback" not in proc.output()
    assert growth < 4 * 1024 * 1024, f"peak memory grew by {growth / 1e6:.1f} MB"
