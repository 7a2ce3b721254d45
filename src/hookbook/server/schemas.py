"""Response bodies of the webhook routes (Tiled-compatible fields first); the request
bodies, which the client builds too, are in :mod:`hookbook.webhooks.bodies`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..config import ApiKey
from ..webhooks.records import AttemptRecord, DeliveryRecord, WebhookRecord


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str] | None
    active: bool
    time_created: datetime
    # Beyond Tiled:
    path: list[str] = Field(description="The node the webhook is registered on.")
    disabled_reason: str | None
    has_secret: bool
    consecutive_failures: int
    time_updated: datetime

    @classmethod
    def of(cls, w: WebhookRecord) -> WebhookOut:
        return cls(
            id=w.id,
            url=w.url,
            events=w.events,
            active=w.active,
            time_created=w.time_created,
            path=w.node_path.split("/") if w.node_path else [],
            disabled_reason=w.disabled_reason,
            has_secret=w.has_secret,
            consecutive_failures=w.consecutive_failures,
            time_updated=w.time_updated,
        )


class AttemptOut(BaseModel):
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    address: str | None

    @classmethod
    def of(cls, a: AttemptRecord) -> AttemptOut:
        return cls(**a.__dict__)


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    event_type: str
    payload: dict[str, Any] | None = Field(
        description="The event's JSON body; null when withheld (see payload_withheld)."
    )
    status_code: int | None
    attempts: int
    outcome: Literal["pending", "success", "failed"]
    error_detail: str | None
    time_created: datetime
    delivered_at: datetime | None
    # Beyond Tiled:
    event_id: str = Field(description="The X-Tiled-Event-ID the delivery is sent with.")
    redelivery_of: int | None
    next_attempt_at: datetime | None = Field(description="When the next attempt is due.")
    payload_withheld: str | None = Field(
        None, description="Why payload is null: the key lacks read:metadata (else null)."
    )

    @classmethod
    def of(cls, d: DeliveryRecord, key: ApiKey) -> DeliveryOut:
        """The record as ``key`` may see it: a catalog event's payload (node metadata)
        only with ``read:metadata``; a ping's (the webhook's own URL) always."""
        d = d.seen_by(reads_metadata=key.grants("read:metadata"))
        fields = {k: v for k, v in d.__dict__.items() if k in cls.model_fields}
        fields["next_attempt_at"] = (
            datetime.fromtimestamp(d.next_attempt_at, tz=UTC)
            if d.next_attempt_at is not None
            else None
        )
        return cls(**fields)


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]

    @classmethod
    def of(cls, d: DeliveryRecord, key: ApiKey) -> DeliveryDetail:
        base = DeliveryOut.of(d, key).model_dump()
        return cls(**base, attempt_log=[AttemptOut.of(a) for a in d.attempt_log or ()])
