"""A fast webhook receiver for the scale benchmark: counts deliveries, never the bottleneck.

    python bench/fast_receiver.py [--port 0] [--keep-bodies]

A small asyncio HTTP/1.1 server on 127.0.0.1 (keep-alive, ``Content-Length``
bodies, ``TCP_NODELAY``) that answers every request ``200`` at once and
records, per request, its arrival time (``time.time()``, when the whole
request has been read), its path and its ``X-Tiled-Event-ID``. The
pytest-httpserver receiver (werkzeug) manages about 400 requests/s; this one
many thousands, so a benchmark of the delivery engine measures the engine.

It prints ``listening on 127.0.0.1:PORT`` once it listens, and stops on
SIGTERM or SIGINT. Control routes (plain ``GET``/``POST``, JSON answers):

- ``GET /_stats``: ``requests``, ``with_id`` (requests carrying an event id),
  ``distinct`` (distinct event ids), ``paths`` (distinct request paths),
  ``first`` and ``last`` arrival, ``last_new`` (arrival of the last *new*
  event id: when the last delivery arrived), ``duplicates``.
- ``GET /_stats?arrivals=1``: the same, plus ``arrivals``: one
  ``[event_id, arrival, path, key]`` per request, where ``key`` is the
  ``path`` field of the JSON body joined with ``/`` (with ``--keep-bodies``;
  else ``null``).
- ``POST /_reset``: forget everything recorded.

Only the standard library: it runs under any Python 3.11+.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys
import time

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
OK_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)


class Recorder:
    """Everything received, in arrival order."""

    def __init__(self, keep_bodies: bool) -> None:
        self.keep_bodies = keep_bodies
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.ids: set[str] = set()
        self.paths: set[str] = set()
        self.first: float | None = None
        self.last: float | None = None
        self.last_new: float | None = None
        # (event_id or None, arrival, path, body or None)
        self.arrivals: list[tuple[str | None, float, str, bytes | None]] = []

    def record(
        self,
        event_id: str | None,
        arrival: float,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        """One request (``headers``, lower-cased names, for subclasses that keep them)."""
        self.requests += 1
        if self.first is None:
            self.first = arrival
        self.last = arrival
        self.paths.add(path)
        if event_id is not None and event_id not in self.ids:
            self.ids.add(event_id)
            self.last_new = arrival
        self.arrivals.append((event_id, arrival, path, body if self.keep_bodies else None))

    def stats(self, with_arrivals: bool) -> dict[str, object]:
        with_id = sum(1 for a in self.arrivals if a[0] is not None)
        out: dict[str, object] = {
            "requests": self.requests,
            "with_id": with_id,
            "distinct": len(self.ids),
            "duplicates": with_id - len(self.ids),
            "paths": len(self.paths),
            "first": self.first,
            "last": self.last,
            "last_new": self.last_new,
        }
        if with_arrivals:
            out["arrivals"] = [
                [event_id, arrival, path, _key_of(body)]
                for event_id, arrival, path, body in self.arrivals
            ]
        return out


def _key_of(body: bytes | None) -> str | None:
    if not body:
        return None
    try:
        path = json.loads(body).get("path")
    except (ValueError, AttributeError):
        return None
    return "/".join(path) if isinstance(path, list) else None


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection: parse requests as bytes arrive, answer each at once."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._fail(b"431 Request Header Fields Too Large")
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                self._fail(b"400 Bad Request")
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._fail(b"501 Not Implemented")  # the engine always sends Content-Length
                return
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._fail(b"400 Bad Request")
                return
            if length < 0 or length > MAX_BODY:
                self._fail(b"413 Content Too Large")
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            arrival = time.time()
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            close = headers.get("connection", "").lower() == "close"
            self._handle(method, target, headers, body, arrival, close)

    def _handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        arrival: float,
        close: bool,
    ) -> None:
        assert self.transport is not None
        path, _, query = target.partition("?")
        if path == "/_stats" and method == "GET":
            payload = json.dumps(self.recorder.stats("arrivals=1" in query)).encode()
            self._answer(payload, close)
        elif path == "/_reset" and method == "POST":
            self.recorder.reset()
            self._answer(b"{}", close)
        else:
            self.recorder.record(headers.get("x-tiled-event-id"), arrival, path, body, headers)
            self.transport.write(OK_CLOSE if close else OK)
        if close:
            self.transport.close()

    def _answer(self, payload: bytes, close: bool) -> None:
        assert self.transport is not None
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n" + ("Connection: close\r\n" if close else "")
        )
        self.transport.write(head.encode() + b"\r\n" + payload)

    def _fail(self, status: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, keep_bodies: bool) -> None:
    recorder = Recorder(keep_bodies)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpConnection(recorder), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    async with server:
        await stop.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument(
        "--keep-bodies", action="store_true", help="keep bodies (for the key in ?arrivals=1)"
    )
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.keep_bodies))
    return 0


if __name__ == "__main__":
    sys.exit(main())
