"""The parts of Tiled's protocol hookbook does not serve."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class UnsupportedRoute:
    """A Tiled route hookbook answers with a 4xx naming what is unsupported.

    ``methods``: HTTP methods (``"WEBSOCKET"`` for the websocket route).
    ``path``: the route below ``/api/v1``, in FastAPI syntax. ``feature``:
    what it is for, to put in the error ``detail``.
    """

    methods: tuple[str, ...]
    path: str
    feature: str

    def detail(self) -> str:
        return f"hookbook does not support {self.feature} ({self.path})"


#: Routes of Tiled 0.2.20's ``/api/v1`` that hookbook does not serve. Answer
#: them with 405 (never 5xx: the client retries those for 45 s).
UNSUPPORTED_ROUTES: tuple[UnsupportedRoute, ...] = (
    UnsupportedRoute(("WEBSOCKET",), "/stream/single/{path:path}", "websocket subscriptions"),
    UnsupportedRoute(("POST",), "/register/{path:path}", "registering external files"),
    UnsupportedRoute(("GET", "DELETE"), "/revisions/{path:path}", "metadata revisions"),
    UnsupportedRoute(("GET", "POST"), "/container/full/{path:path}", "exporting containers"),
    UnsupportedRoute(("GET", "POST"), "/node/full/{path:path}", "the deprecated /node/full route"),
    UnsupportedRoute(("PUT",), "/node/full/{path:path}", "the deprecated /node/full route"),
    UnsupportedRoute(("GET",), "/search-deep/{path:path}", "deep search"),
    UnsupportedRoute(("GET",), "/distinct/{path:path}", "distinct-value queries"),
    UnsupportedRoute(("PUT",), "/data_source/{path:path}", "replacing data sources"),
    UnsupportedRoute(("GET",), "/asset/bytes/{path:path}", "raw asset download"),
    UnsupportedRoute(("GET",), "/asset/manifest/{path:path}", "asset manifests"),
    UnsupportedRoute(("DELETE",), "/asset/{path:path}", "deleting assets"),
    UnsupportedRoute(("GET", "POST", "PUT"), "/awkward/{rest:path}", "awkward arrays"),
    UnsupportedRoute(("GET", "PUT", "PATCH"), "/ragged/{rest:path}", "ragged arrays"),
)
