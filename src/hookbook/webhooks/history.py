"""Delivery history: what the history and delivery views read."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..db import Database, attempts, deliveries, event_log
from ..errors import NotFoundError
from .records import AttemptRecord, DeliveryRecord

_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.webhook_id,
    deliveries.c.event_id,
    deliveries.c.event_type,
    deliveries.c.status_code,
    deliveries.c.attempts,
    deliveries.c.outcome,
    deliveries.c.error_detail,
    deliveries.c.time_created,
    deliveries.c.delivered_at,
    deliveries.c.next_attempt_at,
    deliveries.c.redelivery_of,
    event_log.c.body,
)


def with_payload() -> sa.Select[Any]:
    """Delivery columns joined with the event body (the payload)."""
    return sa.select(*_DELIVERY_COLUMNS).join(
        event_log, event_log.c.id == deliveries.c.event_row_id
    )


class DeliveryHistory:
    """Reads deliveries and their attempt logs, newest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def of_webhook(
        self,
        webhook_id: int,
        *,
        limit: int = 50,
        before: int | None = None,
        outcome: str | None = None,
        event_type: str | None = None,
    ) -> list[DeliveryRecord]:
        """A webhook's deliveries, newest first (by delivery id)."""
        query = (
            with_payload()
            .where(deliveries.c.webhook_id == webhook_id)
            .order_by(deliveries.c.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(deliveries.c.id < before)
        if outcome is not None:
            query = query.where(deliveries.c.outcome == outcome)
        if event_type is not None:
            query = query.where(deliveries.c.event_type == event_type)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [DeliveryRecord.from_row(r) for r in rows]

    async def delivery(self, delivery_id: int) -> DeliveryRecord:
        """One delivery with its per-attempt log."""
        async with self.db.read() as conn:
            row = (await conn.execute(with_payload().where(deliveries.c.id == delivery_id))).first()
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_id}", delivery_id=delivery_id)
            log = (
                await conn.execute(
                    sa.select(attempts)
                    .where(attempts.c.delivery_id == delivery_id)
                    .order_by(attempts.c.number)
                )
            ).all()
        return DeliveryRecord.from_row(row, tuple(AttemptRecord.from_row(a) for a in log))
