"""Webhook routes: Tiled's four, plus management, ping, redelivery and attempt logs.

Scopes mean what they say. The webhook scopes cover webhooks and their delivery
records; a node's events carry its metadata, so whatever reveals catalog data
also needs ``read:metadata``: a route that takes a node's path (which answers
whether the node exists), choosing where a node's events go (registering, or
changing a webhook's URL), and the payloads in delivery records (withheld,
saying so, from a key without it).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from ...config import ApiKey
from ...errors import PermissionDeniedError
from ...events import EventName
from ...url_safety import check_url_syntax
from ...webhooks.bodies import WebhookPatch, WebhookRegistration
from ...webhooks.service import WebhookService
from ..bodies import openapi_body, webhook_body
from ..deps import ReadWebhooks, WriteWebhooks, get_webhook_service, require
from ..schemas import DeliveryDetail, DeliveryOut, WebhookOut

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

Service = Annotated[WebhookService, Depends(get_webhook_service)]

#: Ids are integer columns (32-bit on PostgreSQL); a larger number is no id: a 422,
#: not a database overflow (500).
MAX_ID = 2**31 - 1
WebhookId = Annotated[int, Path(ge=1, le=MAX_ID, description="A webhook id")]

DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="A delivery id")]

ReadNodeWebhooks = Annotated[ApiKey, Depends(require("read:webhooks", "read:metadata"))]
# Bodies are read only once the key is known to hold the scopes (never before).
Registration = Annotated[
    WebhookRegistration,
    Depends(webhook_body(WebhookRegistration, "write:webhooks", "read:metadata")),
]
Changes = Annotated[WebhookPatch, Depends(webhook_body(WebhookPatch, "write:webhooks"))]


def _checked_url(service: WebhookService, url: str) -> str:
    """The URL's syntax (:func:`check_url_syntax`; the request schema takes any
    string): normalised, or :class:`~hookbook.errors.InvalidURLError` (422). The registry checks the
    addresses it resolves to."""
    settings = service.settings
    return check_url_syntax(url, allow_http=settings.allow_http, max_length=settings.max_url_length)


@router.post(
    "/target/{path:path}",
    response_model=WebhookOut,
    summary="Register a webhook",
    openapi_extra=openapi_body(WebhookRegistration),
)
async def register(path: str, body: Registration, service: Service) -> WebhookOut:
    url = _checked_url(service, body.url)
    hook = await service.register(path, url, secret=body.secret, events=body.events)
    return WebhookOut.of(hook)


@router.get("/target/{path:path}", response_model=list[WebhookOut], summary="Webhooks on a node")
async def list_on_node(path: str, service: Service, _: ReadNodeWebhooks) -> list[WebhookOut]:
    return [WebhookOut.of(h) for h in await service.list_on(path)]


@router.get("/", response_model=list[WebhookOut], summary="Every webhook")
async def list_all(service: Service, _: ReadWebhooks) -> list[WebhookOut]:
    return [WebhookOut.of(h) for h in await service.list_all()]


@router.get("/history/{webhook_id}", response_model=list[DeliveryOut], summary="Delivery history")
async def history(
    webhook_id: WebhookId,
    service: Service,
    key: ReadWebhooks,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only deliveries older than this id")
    ] = None,
    outcome: Literal["pending", "success", "failed"] | None = None,
    event_type: EventName | Literal["ping"] | None = None,
) -> list[DeliveryOut]:
    """Newest first. A catalog event's ``payload`` carries node metadata: for a key
    without ``read:metadata`` it is ``null``, and ``payload_withheld`` says why."""
    records = await service.history(
        webhook_id, limit=limit, before=before, outcome=outcome, event_type=event_type
    )
    return [DeliveryOut.of(d, key) for d in records]


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryDetail,
    summary="A delivery with its attempt log",
)
async def delivery(delivery_id: DeliveryId, service: Service, key: ReadWebhooks) -> DeliveryDetail:
    return DeliveryDetail.of(await service.delivery(delivery_id), key)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryDetail,
    summary="Send a delivery's event again (same event id)",
)
async def redeliver(
    delivery_id: DeliveryId, service: Service, key: WriteWebhooks
) -> DeliveryDetail:
    return DeliveryDetail.of(await service.redeliver(delivery_id), key)


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One webhook")
async def get_webhook(webhook_id: WebhookId, service: Service, _: ReadWebhooks) -> WebhookOut:
    return WebhookOut.of(await service.get(webhook_id))


@router.patch(
    "/{webhook_id}",
    response_model=WebhookOut,
    summary="Change a webhook",
    openapi_extra=openapi_body(WebhookPatch),
)
async def update(
    webhook_id: WebhookId, body: Changes, service: Service, key: WriteWebhooks
) -> WebhookOut:
    """Change what is given. A new ``url`` also needs ``read:metadata``: it will
    receive the node's events, metadata included."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if "url" in changes and not key.grants("read:metadata"):
        # A new URL receives the node's events, metadata included.
        raise PermissionDeniedError(
            "changing a webhook's url needs the 'read:metadata' scope too: its "
            "deliveries carry catalog metadata",
            scope="read:metadata",
        )
    if "url" in changes:
        changes["url"] = _checked_url(service, changes["url"])
    return WebhookOut.of(await service.update(webhook_id, **changes))


@router.delete("/{webhook_id}", summary="Delete a webhook, its history and pending deliveries")
async def delete(webhook_id: WebhookId, service: Service, _: WriteWebhooks) -> dict[str, int]:
    await service.delete(webhook_id)
    return {"deleted": webhook_id}


@router.post("/{webhook_id}/ping", response_model=DeliveryDetail, summary="Send a ping event")
async def ping(webhook_id: WebhookId, service: Service, key: WriteWebhooks) -> DeliveryDetail:
    return DeliveryDetail.of(await service.ping(webhook_id), key)
