"""How uvicorn serves hookbook: the options both ``SimpleServer`` and ``hookbook serve``
use, and an HTTP/1.1 protocol with ``TCP_NODELAY`` on every connection.

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
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from ..config import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``uvicorn.Config`` keywords every hookbook server uses.

    The idle keep-alive timeout is ``settings.keep_alive_timeout`` (75 s), well
    above the 5 s after which httpx and the tiled client stop reusing a
    connection: with uvicorn's own 5 s the two race, and a request sent just as
    the server closes the connection gets a reset and no response.
    """
    return {
        "lifespan": "on",
        "loop": "asyncio",
        "http": NoDelayH11Protocol,
        "ws": "none",
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": settings.keep_alive_timeout,
    }


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        super().connection_made(transport)
