"""Real HTTPS deliveries to a local TLS receiver, with certificates from a throwaway CA.

Two host names resolve to one address and port. Each delivery must travel on a
connection verified for its own host name: connections are pooled per (checked
address, port, TLS server name), so a connection verified for one name never
carries another name's delivery, and a name the server holds no certificate
for fails verification even while the other names' connections are alive.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import trustme

from conftest import wait_until
from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.server.services import Seams

NAMES = ("a.test", "b.test")


@dataclass(frozen=True)
class Seen:
    server_name: str | None  # the SNI the TLS handshake carried
    host: str  # the Host header
    connection: tuple[str, int]  # the client's address and port: one per connection


class TLSReceiver:
    """A keep-alive HTTPS server holding a certificate for each of ``NAMES`` only,
    chosen by SNI; records what each request's connection was verified as."""

    def __init__(self, ca: trustme.CA) -> None:
        self.seen: list[Seen] = []
        self._names: dict[int, str | None] = {}
        contexts = {}
        for name in NAMES:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ca.issue_cert(name).configure_cert(context)
            contexts[name] = context
        default = contexts[NAMES[0]]

        def choose(sock: ssl.SSLSocket, name: str | None, _context: ssl.SSLContext) -> None:
            self._names[id(sock)] = name
            if name in contexts:
                sock.context = contexts[name]

        default.sni_callback = choose
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append(
                    Seen(
                        receiver._names.get(id(self.request)),
                        self.headers["Host"],
                        self.client_address,
                    )
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):  # type: ignore[no-untyped-def]
                sock, address = super().get_request()
                return default.wrap_socket(sock, server_side=True), address

            def handle_error(self, request, client_address):  # type: ignore[no-untyped-def]
                pass  # a refused handshake (the name it has no certificate for)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_receiver(ca: trustme.CA) -> Iterator[TLSReceiver]:
    receiver = TLSReceiver(ca)
    try:
        yield receiver
    finally:
        receiver.close()


async def loopback(host: str, port: int) -> list[str]:
    """Every name resolves to the one local address."""
    return ["127.0.0.1"]


def test_two_host_names_on_one_address_are_each_verified_against_their_own(
    tmp_path, ca, tls_receiver
):
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings = {"retry_schedule": [0.01], "ca_bundle": str(bundle), "allow_http": False}
    port = tls_receiver.port
    with (
        SimpleServer(webhooks=settings, seams=Seams(resolver=loopback)) as server,
        from_uri(server.uri) as client,
    ):
        for name in NAMES:
            client.webhooks.register(f"https://{name}:{port}/hook")
        client.create_container("first")
        client.create_container("second")
        wait_until(lambda: len(tls_receiver.seen) == 4, timeout=10, message="4 deliveries")
        server.drain()  # every response read: the connections are back in their pools
        # A third name on the same address, while the other two names' connections
        # are pooled: the server has no certificate for it, so it must fail to verify.
        stranger = client.webhooks.register(f"https://c.test:{port}/hook")
        client.create_container("third")
        wait_until(lambda: len(tls_receiver.seen) == 6, timeout=10, message="6 deliveries")
        server.drain()
        (refused,) = client.webhooks.history(stranger.id)

    for seen in tls_receiver.seen:
        assert seen.server_name is not None
        assert seen.host == f"{seen.server_name}:{port}", seen
    for name in NAMES:
        arrived = [s for s in tls_receiver.seen if s.server_name == name]
        assert len(arrived) == 3
        # Kept alive: the third delivery (sent after the first two had arrived)
        # went over a connection already open for the same name.
        assert arrived[2].connection in {s.connection for s in arrived[:2]}, arrived
    connections = {
        name: {s.connection for s in tls_receiver.seen if s.server_name == name} for name in NAMES
    }
    assert not connections["a.test"] & connections["b.test"]
    assert refused.outcome == "failed"
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error_detail
    assert refused.attempts == 2
