"""Operations: liveness for anyone, the worker's state and Prometheus metrics for a key
with the ``read:operations`` scope.

Without such a key ``/healthz`` says only that the server is up: the worker's state
names the webhook targets it is busy with, which only webhook readers may know.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from ..._version import __version__
from ..deps import OptionalKey, ReadOperations, ServicesDep
from ..metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    summary="Liveness; with a read:operations key, what the delivery worker is doing",
)
async def health(services: ServicesDep, key: OptionalKey) -> dict[str, Any]:
    if key is None or not key.grants("read:operations"):
        return {"status": "ok"}
    worker, listener = services.worker, services.listener
    return {
        "status": "ok",
        "version": __version__,
        "database": "sqlite" if services.db.sqlite else "postgresql",
        "webhooks": services.webhooks is not None,
        "worker": None if worker is None else worker.status(),
        "listener": None
        if listener is None
        else {
            "state": listener.state,
            "reconnects": listener.reconnects,
            "notifications": listener.notifications,
        },
    }


@router.get("/metrics", summary="Prometheus metrics (outbox, attempts, latency)")
async def metrics(services: ServicesDep, _: ReadOperations) -> Response:
    body = await services.metrics.render(services.db)
    return Response(body, media_type=CONTENT_TYPE)
