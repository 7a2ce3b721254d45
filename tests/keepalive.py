"""A check that a server keeps idle connections open past what clients assume.

httpx and the tiled client stop reusing an idle connection after 5 s. If the
server closed idle connections at 5 s too, a client sending at 4.9 s could race
the close and get a reset with no response. So: a connection idle for 4.9 s
must answer, and so must one idle for 6 s (past uvicorn's own default of 5 s,
which is what the server used to close at), each on the socket it already had.
"""

from __future__ import annotations

import http.client
import time


def assert_idle_connections_stay_open(port: int) -> None:
    early, late = (http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(2))
    try:
        for conn in (early, late):
            _get(conn)
        sockets = early.sock, late.sock
        time.sleep(4.9)  # the idle time under test, not a wait for something to happen
        _get(early)
        time.sleep(6.0 - 4.9)
        _get(late)
        assert (early.sock, late.sock) == sockets, "a connection was replaced"
    finally:
        early.close()
        late.close()


def _get(conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/healthz")  # raises (RemoteDisconnected) on a closed connection
    response = conn.getresponse()
    assert response.status == 200
    response.read()
