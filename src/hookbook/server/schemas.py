"""Request and response bodies of the webhook routes (Tiled-compatible fields first)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import ApiKey
from ..events import EventName
from ..webhooks.records import AttemptRecord, DeliveryRecord, WebhookRecord

#: Longest signing secret accepted.
MAX_SECRET_LENGTH = 512


def _events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if len(set(value)) != len(value):
        dupes = sorted({v for v in value if value.count(v) > 1})
        raise ValueError(f"events lists {', '.join(dupes)} more than once")
    return value or None  # [] means every event, as in Tiled


class WebhookRegistration(BaseModel):
    """``POST /api/v1/webhooks/target/{path}``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Where deliveries are POSTed.")
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_SECRET_LENGTH,
        description="HMAC signing secret (stored encrypted, never returned).",
    )
    events: list[EventName] | None = Field(
        None, description="Event types to receive; null or [] means all."
    )

    _check_events = field_validator("events")(classmethod(lambda cls, v: _events(v)))


class WebhookPatch(BaseModel):
    """``PATCH /api/v1/webhooks/{id}``: change what is given."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    events: list[EventName] | None = None
    # null removes the secret; "" is refused, as at registration.
    secret: str | None = Field(None, min_length=1, max_length=MAX_SECRET_LENGTH)
    active: bool | None = None

    _check_events = field_validator("events")(classmethod(lambda cls, v: _events(v)))

    @model_validator(mode="after")
    def _no_null_url_or_active(self) -> WebhookPatch:
        for name in ("url", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


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
