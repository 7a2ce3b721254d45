"""Prometheus metrics of one server, in a registry of its own (no process globals).

Counters and the latency histogram are fed by the delivery worker as attempts
finish; the outbox gauges (depth by state, oldest pending age, disabled
webhooks) are read from the database at scrape time, so with several
processes every one of them reports the shared outbox.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..db import Database, deliveries, webhooks

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.attempts = Counter(
            "hookbook_delivery_attempts",
            "Delivery attempts made by this process, by result class.",
            ["result"],
            registry=self.registry,
        )
        self.settled = Counter(
            "hookbook_deliveries_settled",
            "Deliveries settled by this process, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hookbook_attempt_duration_seconds",
            "Duration of delivery attempts (request to response).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.outbox = Gauge(
            "hookbook_outbox_deliveries",
            "Deliveries in the outbox, by state.",
            ["state"],
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "hookbook_outbox_oldest_pending_seconds",
            "Age of the oldest pending delivery (0 when none).",
            registry=self.registry,
        )
        self.disabled = Gauge(
            "hookbook_webhooks_disabled",
            "Webhooks that are disabled.",
            registry=self.registry,
        )
        self.webhooks_total = Gauge(
            "hookbook_webhooks", "Webhooks registered.", registry=self.registry
        )

    def observe(self, result: Any, decision: Any) -> None:
        """Record one finished attempt (``result`` None: settled without sending)."""
        if result is not None:
            self.latency.observe(result.duration_ms / 1000)
            if result.status_code is None:
                kind = "transport_error"
            else:
                kind = f"{result.status_code // 100}xx"
            self.attempts.labels(kind).inc()
        if decision.outcome != "pending":
            self.settled.labels(decision.outcome).inc()

    async def render(self, db: Database) -> bytes:
        async with db.read() as conn:
            by_state: dict[str, int] = dict(
                (
                    await conn.execute(
                        sa.select(deliveries.c.outcome, sa.func.count()).group_by(
                            deliveries.c.outcome
                        )
                    )
                ).all()
            )
            oldest = (
                await conn.execute(
                    sa.select(sa.func.min(deliveries.c.time_created)).where(
                        deliveries.c.outcome == "pending"
                    )
                )
            ).scalar()
            counts = (
                await conn.execute(
                    sa.select(
                        sa.func.count(),
                        sa.func.count().filter(webhooks.c.active.is_(False)),
                    ).select_from(webhooks)
                )
            ).one()
        for state in ("pending", "success", "failed"):
            self.outbox.labels(state).set(by_state.get(state, 0))
        self.oldest_pending.set(0 if oldest is None else max(0.0, time.time() - oldest.timestamp()))
        oldest_age = self.oldest_pending
        del oldest_age
        self.webhooks_total.set(counts[0])
        self.disabled.set(counts[1])
        return generate_latest(self.registry)
