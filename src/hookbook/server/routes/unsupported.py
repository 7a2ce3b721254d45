"""Parts of Tiled's protocol hookbook does not serve: a clear 4xx, never a 500.

These routes come last, so they answer only what the real routes did not.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...errors import NotFoundError, UnsupportedError

router = APIRouter(include_in_schema=False)

#: Tiled route prefixes (under /api/v1/) and what they are, for the error message.
UNSUPPORTED = {
    "stream/single": "websocket subscriptions",
    "register": "registering external files",
    "revisions": "metadata revisions",
    "node/full": "exporting a node in one request",
    "container/full": "exporting a container",
    "awkward": "awkward arrays",
    "sparse": "sparse arrays",
    "xarray": "xarray datasets",
    "composite": "composite nodes",
    "asset": "asset downloads",
    "auth": "authentication providers (hookbook uses API keys)",
    "distinct": "distinct-value queries",
}

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/api/v1/{rest:path}", methods=_METHODS)
async def unsupported(rest: str, request: Request) -> None:
    for prefix, what in UNSUPPORTED.items():
        if rest == prefix or rest.startswith(prefix + "/"):
            raise UnsupportedError(
                f"hookbook does not support {what} ({request.method} /api/v1/{prefix}/...); "
                "see the 'Tiled protocol' page of the docs for what is supported",
                route=f"/api/v1/{prefix}",
            )
    raise NotFoundError(f"no route {request.method} {request.url.path}")
