"""Typed records of webhooks, deliveries and attempts, as the API returns them."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class WebhookRecord:
    id: int
    node_path: str
    url: str
    events: list[str] | None
    active: bool
    disabled_reason: str | None
    has_secret: bool
    consecutive_failures: int
    time_created: datetime
    time_updated: datetime

    @classmethod
    def from_row(cls, row: Any) -> WebhookRecord:
        return cls(
            id=row.id,
            node_path=row.node_path,
            url=row.url,
            events=row.events or None,
            active=row.active,
            disabled_reason=row.disabled_reason,
            has_secret=row.secret_ciphertext is not None,
            consecutive_failures=row.consecutive_failures,
            time_created=row.time_created,
            time_updated=row.time_updated,
        )


@dataclass(frozen=True)
class AttemptRecord:
    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    address: str | None

    @classmethod
    def from_row(cls, row: Any) -> AttemptRecord:
        return cls(
            number=row.number,
            started_at=row.started_at,
            duration_ms=row.duration_ms,
            status_code=row.status_code,
            error=row.error,
            response_excerpt=row.response_excerpt,
            address=row.address,
        )


#: Why a delivery record's payload is missing, for a reader without ``read:metadata``.
PAYLOAD_WITHHELD = "the payload carries catalog data: reading it needs the 'read:metadata' scope"


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    webhook_id: int
    event_id: str
    event_type: str
    #: The delivered JSON body; None when withheld (see :meth:`seen_by`).
    payload: dict[str, Any] | None
    status_code: int | None
    attempts: int
    outcome: str
    error_detail: str | None
    time_created: datetime
    delivered_at: datetime | None
    next_attempt_at: float | None
    redelivery_of: int | None
    attempt_log: tuple[AttemptRecord, ...] | None = None
    #: Why ``payload`` is None (:data:`PAYLOAD_WITHHELD`), else None.
    payload_withheld: str | None = None

    def seen_by(self, *, reads_metadata: bool) -> DeliveryRecord:
        """This record as a reader may see it. A catalog event's payload carries node
        metadata and the node's path, so a reader without ``read:metadata`` gets it
        withheld (with the reason); a ping's payload (the webhook's own URL) is always
        shown. The one place the rule lives: the API and the dashboard both use it."""
        if reads_metadata or self.event_type == "ping":
            return self
        return dataclasses.replace(self, payload=None, payload_withheld=PAYLOAD_WITHHELD)

    @classmethod
    def from_row(
        cls, row: Any, attempt_log: tuple[AttemptRecord, ...] | None = None
    ) -> DeliveryRecord:
        return cls(
            id=row.id,
            webhook_id=row.webhook_id,
            event_id=row.event_id,
            event_type=row.event_type,
            payload=json.loads(row.body),
            status_code=row.status_code,
            attempts=row.attempts,
            outcome=row.outcome,
            error_detail=row.error_detail,
            time_created=row.time_created,
            delivered_at=row.delivered_at,
            next_attempt_at=row.next_attempt_at if row.outcome == "pending" else None,
            redelivery_of=row.redelivery_of,
            attempt_log=attempt_log,
        )
