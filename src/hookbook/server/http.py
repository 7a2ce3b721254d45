"""uvicorn's HTTP/1.1 protocol, with ``TCP_NODELAY`` on every connection.

asyncio sets ``TCP_NODELAY`` on accepted sockets only when the listening
socket says it is TCP (``proto == IPPROTO_TCP``). A socket bound as
``socket.socket(AF_INET)`` (proto 0), as uvicorn's multi-process supervisor
binds, gets Nagle's algorithm, and with the client's delayed ACK every
small response then waits about 40 ms. Setting the option per connection
makes latency independent of how the socket was made.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)
