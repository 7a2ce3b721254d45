"""The outbox, seen from the worker: claim due deliveries, record what happened.

A claim moves a row's ``next_attempt_at`` to the end of a lease and stamps it
with a token. A worker that dies leaves the row to come due again when its
lease runs out, and another claim takes it. Recording an attempt is one
transaction: the attempt log row, the delivery's new state (next attempt or
settled outcome), and the webhook's failure count (which may disable it).
On PostgreSQL the claim uses ``FOR UPDATE SKIP LOCKED`` so that workers in
several processes never take the same row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from .. import events as ev
from ..db import Database, attempts, deliveries, events, webhooks
from .policy import Decision
from .service import settle_queued


@dataclass(frozen=True)
class Claim:
    """A delivery this worker holds until ``lease_until``."""

    delivery_id: int
    lease_token: str
    webhook_id: int
    url: str
    secret_ciphertext: str | None
    event_id: str
    event_type: str
    body: str
    attempts_made: int


@dataclass(frozen=True)
class AttemptResult:
    """What one HTTP attempt did."""

    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    address: str | None
    headers: dict[str, str]


def endpoint_of(url: str) -> str:
    """The endpoint a URL is sent to, ``host:port``: what per-endpoint limits count."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


#: With a per-endpoint limit, how many due rows a claim looks at per row it may take.
_SCAN_FACTOR = 8


async def claim(
    db: Database,
    *,
    limit: int,
    lease_seconds: float,
    exclude_webhooks: Collection[int] = (),
    room: Callable[[str], int] | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` due deliveries of active webhooks.

    ``room(endpoint)`` (optional) says how many more deliveries an endpoint
    (:func:`endpoint_of` a URL) may take at once; rows beyond it stay in the
    outbox, so one claim never fills every slot with one slow endpoint's backlog.
    """
    now = time.time()
    token = uuid.uuid4().hex
    scan = limit if room is None else max(limit * _SCAN_FACTOR, 256)
    due = (
        sa.select(deliveries.c.id, webhooks.c.url)
        .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
        .where(deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(scan)
    )
    if exclude_webhooks:
        due = due.where(deliveries.c.webhook_id.not_in(list(exclude_webhooks)))
    if not db.sqlite:
        due = due.with_for_update(skip_locked=True, of=deliveries)
    async with db.write() as tx:
        ids: list[int] = []
        taken: dict[str, int] = {}
        for r in await tx.execute(due):
            if room is not None:
                endpoint = endpoint_of(r.url)
                if taken.get(endpoint, 0) >= room(endpoint):
                    continue
                taken[endpoint] = taken.get(endpoint, 0) + 1
            ids.append(r.id)
            if len(ids) >= limit:
                break
        if not ids:
            return []
        await tx.execute(
            deliveries.update()
            .where(deliveries.c.id.in_(ids))
            .values(next_attempt_at=now + lease_seconds, lease_token=token)
        )
        rows = await tx.execute(
            sa.select(
                deliveries.c.id,
                deliveries.c.webhook_id,
                deliveries.c.event_id,
                deliveries.c.event_type,
                deliveries.c.attempts,
                webhooks.c.url,
                webhooks.c.secret_ciphertext,
                events.c.body,
            )
            .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .join(events, events.c.id == deliveries.c.event_row_id)
            .where(deliveries.c.id.in_(ids))
            .order_by(deliveries.c.id)
        )
        return [
            Claim(
                delivery_id=r.id,
                lease_token=token,
                webhook_id=r.webhook_id,
                url=r.url,
                secret_ciphertext=r.secret_ciphertext,
                event_id=r.event_id,
                event_type=r.event_type,
                body=r.body,
                attempts_made=r.attempts,
            )
            for r in rows
        ]


async def next_due(db: Database) -> float | None:
    """When the earliest unsettled delivery comes due (epoch seconds), if any."""
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.min(deliveries.c.next_attempt_at)))).scalar()


async def release(db: Database, claims: Collection[Claim]) -> None:
    """Give claims back (at shutdown): due now, for the next worker to take."""
    if not claims:
        return
    async with db.write() as tx:
        for c in claims:
            await tx.execute(
                deliveries.update()
                .where(
                    (deliveries.c.id == c.delivery_id) & (deliveries.c.lease_token == c.lease_token)
                )
                .values(next_attempt_at=time.time(), lease_token=None)
            )


async def release_all_leases(db: Database) -> int:
    """At start-up on SQLite (one process per directory): any lease is a dead worker's."""
    async with db.write() as tx:
        result = await tx.execute(
            deliveries.update()
            .where((deliveries.c.outcome == "pending") & deliveries.c.lease_token.is_not(None))
            .values(next_attempt_at=time.time(), lease_token=None)
        )
        return result.rowcount


async def record(
    db: Database,
    c: Claim,
    decision: Decision,
    result: AttemptResult | None,
    *,
    auto_disable_after: int,
) -> bool:
    """Record an attempt and its decision. Returns False if the lease was lost
    (another worker took the row after this one's lease ran out)."""
    now = time.time()
    async with db.write() as tx:
        values: dict[str, Any] = {
            "attempts": c.attempts_made + (1 if result is not None else 0),
            "outcome": decision.outcome,
            "lease_token": None,
            "next_attempt_at": now + (decision.wait or 0.0)
            if decision.outcome == "pending"
            else None,
        }
        if result is not None:
            values["status_code"] = result.status_code
        if decision.outcome == "success":
            values["delivered_at"] = ev.now()
            values["error_detail"] = None
        else:
            values["error_detail"] = decision.reason or (result.error if result else None)
        updated = await tx.execute(
            deliveries.update()
            .where((deliveries.c.id == c.delivery_id) & (deliveries.c.lease_token == c.lease_token))
            .values(**values)
        )
        if updated.rowcount == 0:
            # The lease was lost, or the delivery went with its webhook (deleted
            # while in flight): nothing to log the attempt against.
            return False
        if result is not None:
            await tx.execute(
                attempts.insert().values(
                    delivery_id=c.delivery_id,
                    number=c.attempts_made + 1,
                    started_at=result.started_at,
                    duration_ms=result.duration_ms,
                    status_code=result.status_code,
                    error=result.error,
                    response_excerpt=result.response_excerpt,
                    address=result.address,
                )
            )
        if decision.outcome == "success":
            await tx.execute(
                webhooks.update()
                .where((webhooks.c.id == c.webhook_id) & (webhooks.c.consecutive_failures != 0))
                .values(consecutive_failures=0)
            )
        elif decision.outcome == "failed":
            await _count_failure(tx, c.webhook_id, decision, auto_disable_after)
    return True


async def _count_failure(
    tx: Any, webhook_id: int, decision: Decision, auto_disable_after: int
) -> None:
    row = (
        await tx.execute(
            sa.select(webhooks.c.consecutive_failures, webhooks.c.active).where(
                webhooks.c.id == webhook_id
            )
        )
    ).first()
    if row is None:
        return
    failures = row.consecutive_failures + 1
    values: dict[str, Any] = {"consecutive_failures": failures, "time_updated": ev.now()}
    reason = None
    if decision.disable_webhook:
        reason = "disabled: the endpoint answered 410 Gone (no more deliveries wanted)"
    elif auto_disable_after and failures >= auto_disable_after:
        reason = (
            f"disabled after {failures} consecutive failed deliveries (last: {decision.reason})"
        )
    if reason and row.active:
        values.update(active=False, disabled_reason=reason)
    await tx.execute(webhooks.update().where(webhooks.c.id == webhook_id).values(**values))
    if reason:
        await settle_queued(tx, webhook_id, f"webhook {reason}")


async def prune(db: Database, *, older_than: datetime) -> int:
    """Remove settled deliveries (and then unreferenced events) older than a date."""
    async with db.write() as tx:
        old = sa.select(deliveries.c.id).where(
            (deliveries.c.outcome != "pending") & (deliveries.c.time_created < older_than)
        )
        await tx.execute(attempts.delete().where(attempts.c.delivery_id.in_(old)))
        result = await tx.execute(
            deliveries.delete().where(
                (deliveries.c.outcome != "pending") & (deliveries.c.time_created < older_than)
            )
        )
        referenced = sa.select(deliveries.c.event_row_id)
        await tx.execute(
            events.delete().where(
                (events.c.time_created < older_than) & events.c.id.not_in(referenced)
            )
        )
        return result.rowcount
