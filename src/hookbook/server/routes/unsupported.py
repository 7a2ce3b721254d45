"""Parts of Tiled's protocol hookbook does not serve: a clear 400, never a 500.

The list is :data:`hookbook.protocol.UNSUPPORTED_ROUTES`. These routes come
last, so they answer only what the real routes did not; any other unknown
route is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...errors import NotFoundError, UnsupportedError
from ...protocol.unsupported import find_unsupported

router = APIRouter(include_in_schema=False)

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/api/v1/{rest:path}", methods=_METHODS)
async def unsupported(rest: str, request: Request) -> None:
    route = find_unsupported(rest)
    if route is not None:
        raise UnsupportedError(route.detail(request.method), route=f"/api/v1/{route.prefix}")
    raise NotFoundError(f"no route {request.method} {request.url.path}")
