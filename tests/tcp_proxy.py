"""A loopback TCP proxy a test can cut and restore: a real outage of the
service behind it (PostgreSQL), without touching the service itself.

Threads, bounded: every socket has a timeout, and the proxy closes itself
after ``lifetime`` seconds if the test never does.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

#: SO_LINGER with a zero timeout: close() sends a reset, like a peer that is gone.
_RESET = struct.pack("ii", 1, 0)


class TcpProxy:
    """Listens on ``127.0.0.1:<port>`` (port 0: the system picks it) and forwards
    each connection to ``target``.

    :meth:`cut` resets every open connection and every new one until
    :meth:`restore`; :meth:`cut_before` cuts at the first client bytes that
    contain a marker (say ``b"COMMIT"``), which are then never forwarded.
    """

    def __init__(self, target: tuple[str, int], *, lifetime: float = 300.0) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._marker: bytes | None = None
        self.cuts = 0
        self._deadline = time.monotonic() + lifetime
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    # -- control ------------------------------------------------------------ #

    def cut(self) -> None:
        """Reset every open connection, and refuse new ones, until :meth:`restore`."""
        with self._lock:
            self._cut = True
            self._marker = None
            self.cuts += 1
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def cut_before(self, marker: bytes) -> None:
        """Cut (as :meth:`cut`) when a client next sends bytes containing ``marker``."""
        with self._lock:
            self._marker = marker

    def restore(self) -> None:
        """Forward connections again."""
        with self._lock:
            self._cut = False

    @property
    def is_cut(self) -> bool:
        with self._lock:
            return self._cut

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding ----------------------------------------------------------- #

    def _accept(self) -> None:
        with self._listener:
            while not self._closed.is_set() and time.monotonic() < self._deadline:
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                with self._lock:
                    refused = self._cut
                if refused:
                    _reset(client)
                    continue
                try:
                    server = socket.create_connection(self.target, timeout=5)
                except OSError:
                    _reset(client)
                    continue
                with self._lock:
                    self._open |= {client, server}
                for source, sink, upstream in ((client, server, True), (server, client, False)):
                    threading.Thread(
                        target=self._pump, args=(source, sink, upstream), daemon=True
                    ).start()
        self._closed.set()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        source.settimeout(0.2)
        while not self._closed.is_set() and time.monotonic() < self._deadline:
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            with self._lock:
                trap = upstream and self._marker is not None and self._marker in data
            if trap:
                self.cut()  # the marked bytes never reach the target
                return
            if not self._send(sink, data):
                break
        with self._lock:
            self._open -= {source, sink}
        for sock in (source, sink):
            _reset(sock)

    def _send(self, sink: socket.socket, data: bytes) -> bool:
        """Send it all (a slow reader only delays it); False once the link is gone."""
        view = memoryview(data)
        while view:
            if self._closed.is_set():
                return False
            try:
                view = view[sink.send(view) :]
            except TimeoutError:
                continue
            except OSError:
                return False
        return True


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    except OSError:
        pass
    sock.close()
