"""The parts of Tiled's protocol hookbook does not serve: one list, answered with 400.

The server mounts a catch-all after its real routes (``hookbook.server.routes.unsupported``);
a request under one of these prefixes gets a 400 naming the feature
(:class:`~hookbook.errors.UnsupportedError`): never a 5xx, which the tiled
client retries, and never a 404 on ``/metadata/``, which it turns into
``KeyError``. The docs' table of unsupported routes is generated from this list.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class UnsupportedRoute:
    """Tiled routes hookbook does not serve, whatever the method.

    ``prefix``: the route below ``/api/v1/``, e.g. ``"stream/single"``; it
    covers the prefix itself and everything below it. ``feature``: what the
    routes are for, for the error ``detail``.
    """

    prefix: str
    feature: str

    def matches(self, rest: str) -> bool:
        """Whether ``rest`` (the path below ``/api/v1/``) is under this prefix."""
        return rest == self.prefix or rest.startswith(self.prefix + "/")

    def detail(self, method: str) -> str:
        return (
            f"hookbook does not support {self.feature} ({method} /api/v1/{self.prefix}/...); "
            "see the 'Tiled protocol' page of the docs for what is supported"
        )


#: The routes of Tiled 0.2.20's ``/api/v1`` that hookbook does not serve.
UNSUPPORTED_ROUTES: tuple[UnsupportedRoute, ...] = (
    UnsupportedRoute("stream/single", "websocket subscriptions"),
    UnsupportedRoute("register", "registering external files"),
    UnsupportedRoute("revisions", "metadata revisions"),
    UnsupportedRoute("node/full", "exporting a node in one request"),
    UnsupportedRoute("container/full", "exporting a container"),
    UnsupportedRoute("search-deep", "deep search"),
    UnsupportedRoute("distinct", "distinct-value queries"),
    UnsupportedRoute("data_source", "replacing data sources"),
    UnsupportedRoute("asset", "assets (raw downloads, manifests, deletion)"),
    UnsupportedRoute("awkward", "awkward arrays"),
    UnsupportedRoute("ragged", "ragged arrays"),
    UnsupportedRoute("auth", "authentication providers (hookbook uses API keys)"),
)


def find_unsupported(rest: str) -> UnsupportedRoute | None:
    """The unsupported route ``rest`` (the path below ``/api/v1/``) falls under, if any."""
    return next((route for route in UNSUPPORTED_ROUTES if route.matches(rest)), None)
