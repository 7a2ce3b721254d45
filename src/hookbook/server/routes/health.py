"""Health: is the app up, and what is its delivery worker doing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..._version import __version__
from ..deps import ServicesDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness and the delivery worker's state")
async def health(services: ServicesDep) -> dict[str, Any]:
    worker = services.worker
    return {
        "status": "ok",
        "version": __version__,
        "webhooks": services.webhooks is not None,
        "worker": None
        if worker is None
        else {
            "state": worker.state,
            "in_flight": len(worker._inflight),
            "last_error": worker.last_error,
        },
    }
