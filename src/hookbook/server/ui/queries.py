"""Dashboard-only reads the webhook service does not offer: each webhook's last delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ...db import Database, deliveries


@dataclass(frozen=True)
class LastDelivery:
    id: int
    outcome: str
    time_created: datetime
    delivered_at: datetime | None


async def last_deliveries(db: Database) -> dict[int, LastDelivery]:
    """Webhook id -> its newest delivery (by id), for every webhook that has one."""
    newest = (
        sa.select(sa.func.max(deliveries.c.id).label("id"))
        .group_by(deliveries.c.webhook_id)
        .subquery()
    )
    query = sa.select(
        deliveries.c.webhook_id,
        deliveries.c.id,
        deliveries.c.outcome,
        deliveries.c.time_created,
        deliveries.c.delivered_at,
    ).join(newest, deliveries.c.id == newest.c.id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return {
        row.webhook_id: LastDelivery(row.id, row.outcome, row.time_created, row.delivered_at)
        for row in rows
    }
