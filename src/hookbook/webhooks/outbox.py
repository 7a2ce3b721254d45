"""The outbox: delivery rows, from their enqueueing to their settled outcome.

- **Enqueue.** :meth:`Outbox.fan_out` runs inside the catalog's write
  transaction and adds one row per matching webhook. Rows the in-process
  worker has room for (its :class:`Taker` says so, overall and per endpoint)
  are inserted already *leased* to it (lease token and expiry set in the same
  insert) and handed over in memory once the transaction commits: no claim
  and no query before their first attempt. The rest are inserted unleased,
  due now, for any worker to claim.
- **Claim.** :meth:`Outbox.claim` leases due rows: ``next_attempt_at`` moves
  to the end of the lease and the row gets a token. On PostgreSQL the claim
  uses ``FOR UPDATE SKIP LOCKED``, so workers in several processes never take
  the same row. A worker that dies leaves its rows to come due when their
  lease runs out (``kill -9`` loses nothing); a retry is always a row read
  back from here (retries are data).
- **Record.** :meth:`Outbox.record` writes the outcomes of a batch of
  attempts in one transaction (group commit): each row's new state,
  conditional on its lease token; the attempt log rows; the webhooks'
  failure counts, which may disable a webhook and settle its queued rows.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import sqlalchemy as sa

from ..db import Database, WriteTransaction, attempts, deliveries, event_log, webhooks
from ..paths import prefixes
from .clock import Clock
from .history import with_payload
from .policy import Decision
from .records import DeliveryRecord


@functools.lru_cache(maxsize=4096)
def endpoint_of(url: str) -> str:
    """The endpoint a URL is sent to, ``host:port``: what per-endpoint limits count."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def new_event_id() -> str:
    """A delivery's event id: 32 hex digits, sent as X-Tiled-Event-ID and webhook-id."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery a worker holds (leased) until it records an outcome or the lease ends."""

    delivery_id: int
    lease_token: str
    webhook_id: int
    url: str
    secret_ciphertext: str | None
    event_id: str
    event_type: str
    body: str
    attempts_made: int

    @property
    def endpoint(self) -> str:
        return endpoint_of(self.url)


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt did."""

    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None
    address: str | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Outcome:
    """An attempt (``result``; ``None`` when nothing was sent) and what it decided."""

    claim: Claim
    decision: Decision
    result: AttemptResult | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a batch's transaction did: the deliveries it recorded (one whose lease
    was lost is left out) and the webhooks it disabled."""

    delivery_ids: set[int]
    disabled_webhooks: set[int]


@dataclass(frozen=True, slots=True)
class EndpointDisabled:
    """Disable every active webhook whose URL goes to ``endpoint``, saying ``reason``."""

    endpoint: str
    reason: str


class Taker(Protocol):
    """The in-process worker, as the fan-out sees it."""

    def reserve(self, endpoint: str) -> bool:
        """Take one row for ``endpoint`` at insert, if there is room for it now."""
        ...

    def unreserve(self, endpoints: Sequence[str]) -> None:
        """The transaction rolled back: give back what :meth:`reserve` took."""
        ...

    def take(self, claims: Sequence[Claim]) -> None:
        """The transaction committed: send these leased rows."""
        ...

    def forget(self, webhook_ids: Collection[int]) -> None:
        """These webhooks were disabled or deleted: drop their rows not yet sent."""
        ...


_CLAIM_COLUMNS = (
    deliveries.c.id,
    deliveries.c.webhook_id,
    deliveries.c.event_id,
    deliveries.c.event_type,
    deliveries.c.attempts,
    webhooks.c.url,
    webhooks.c.secret_ciphertext,
    event_log.c.body,
)

#: With a per-endpoint limit, how many due rows a claim looks at per row it may take
#: (rows of endpoints with no room at all are left out by the query itself).
_SCAN_FACTOR = 2

_b = sa.bindparam
_SENT = (
    deliveries.update()
    .where((deliveries.c.id == _b("b_id")) & (deliveries.c.lease_token == _b("b_token")))
    .values(
        attempts=_b("v_attempts"),
        outcome=_b("v_outcome"),
        lease_token=None,
        next_attempt_at=_b("v_next_attempt_at"),
        status_code=_b("v_status_code"),
        delivered_at=_b("v_delivered_at"),
        error_detail=_b("v_error_detail"),
    )
)
#: Settled without sending (the secret cannot be decrypted, an internal error):
#: the status of an earlier attempt stays.
_NOT_SENT = (
    deliveries.update()
    .where((deliveries.c.id == _b("b_id")) & (deliveries.c.lease_token == _b("b_token")))
    .values(
        outcome=_b("v_outcome"),
        lease_token=None,
        next_attempt_at=_b("v_next_attempt_at"),
        error_detail=_b("v_error_detail"),
    )
)


class Outbox:
    """The ``deliveries`` table, as the fan-out and the worker use it."""

    def __init__(self, db: Database, *, lease_seconds: float, clock: Clock) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.clock = clock
        #: The in-process worker that takes rows at insert (None: nothing is leased).
        self.taker: Taker | None = None

    # ---- enqueue ------------------------------------------------------------

    async def fan_out(
        self, tx: WriteTransaction, event_row_id: int, event_type: str, segments: tuple[str, ...]
    ) -> None:
        """Add one delivery per active webhook on the node or an ancestor whose
        filter admits ``event_type``, in the caller's transaction."""
        found = await tx.execute(
            sa.select(
                webhooks.c.id, webhooks.c.events, webhooks.c.url, webhooks.c.secret_ciphertext
            )
            .where(webhooks.c.node_path.in_(prefixes(segments)) & webhooks.c.active)
            .order_by(webhooks.c.id)
        )
        matching = [hook for hook in found if not hook.events or event_type in hook.events]
        if not matching:
            return
        taker = self.taker
        reserved = [taker is not None and taker.reserve(endpoint_of(hook.url)) for hook in matching]
        now = self.clock.time()
        stamp = self.clock.now()
        token = uuid.uuid4().hex
        rows = [
            {
                "webhook_id": hook.id,
                "event_row_id": event_row_id,
                "event_id": new_event_id(),
                "event_type": event_type,
                "outcome": "pending",
                "attempts": 0,
                "next_attempt_at": now + self.lease_seconds if leased else now,
                "lease_token": token if leased else None,
                "time_created": stamp,
            }
            for hook, leased in zip(matching, reserved, strict=True)
        ]
        unleased = reserved.count(False)
        tx.new_deliveries += unleased
        if taker is None or unleased == len(rows):
            await tx.execute(deliveries.insert(), rows)
            return
        endpoints = [
            endpoint_of(h.url) for h, leased in zip(matching, reserved, strict=True) if leased
        ]
        tx.after_rollback.append(lambda: taker.unreserve(endpoints))
        ids = (
            await tx.execute(
                deliveries.insert().returning(deliveries.c.id, sort_by_parameter_order=True),
                rows,
            )
        ).scalars()
        body = (
            await tx.execute(sa.select(event_log.c.body).where(event_log.c.id == event_row_id))
        ).scalar_one()
        claims = [
            Claim(
                delivery_id=delivery_id,
                lease_token=token,
                webhook_id=hook.id,
                url=hook.url,
                secret_ciphertext=hook.secret_ciphertext,
                event_id=row["event_id"],
                event_type=event_type,
                body=body,
                attempts_made=0,
            )
            for delivery_id, hook, row, leased in zip(ids, matching, rows, reserved, strict=True)
            if leased
        ]
        tx.after_commit.append(lambda: taker.take(claims))

    async def enqueue(
        self,
        tx: WriteTransaction,
        webhook_id: int,
        event_row_id: int,
        event_id: str,
        event_type: str,
        *,
        redelivery_of: int | None = None,
    ) -> int:
        """Add one unleased delivery, due now (a ping, a redelivery); returns its id."""
        result = await tx.execute(
            deliveries.insert().values(
                webhook_id=webhook_id,
                event_row_id=event_row_id,
                event_id=event_id,
                event_type=event_type,
                outcome="pending",
                attempts=0,
                next_attempt_at=self.clock.time(),
                redelivery_of=redelivery_of,
                time_created=self.clock.now(),
            )
        )
        tx.new_deliveries += 1
        return cast(int, result.inserted_primary_key[0])

    def forget(self, webhook_ids: Collection[int]) -> None:
        """Tell the in-process worker that these webhooks were disabled or deleted."""
        if self.taker is not None:
            self.taker.forget(webhook_ids)

    # ---- claim and release --------------------------------------------------

    async def claim(
        self,
        *,
        limit: int,
        exclude_webhooks: Collection[int] = (),
        room: Callable[[str], int] | None = None,
    ) -> tuple[list[Claim], bool, float | None]:
        """Lease up to ``limit`` due deliveries of active webhooks.

        ``room(endpoint)`` says how many more deliveries an endpoint
        (:func:`endpoint_of` a URL) may take now; rows beyond it stay in the
        outbox, so one claim never fills every slot with one endpoint's backlog.

        Returns the claims; whether due rows were left behind (no room, or more
        than ``limit``); and when the earliest row not yet due comes due
        (a retry, or a lease running out), if any.
        """
        now = self.clock.time()
        token = uuid.uuid4().hex
        # One row more than may be taken tells whether any are left behind.
        scan = limit + 1 if room is None else min(limit * _SCAN_FACTOR, 256) + 1
        due = (
            sa.select(*_CLAIM_COLUMNS)
            .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
            .join(event_log, event_log.c.id == deliveries.c.event_row_id)
            .where((deliveries.c.next_attempt_at <= now) & webhooks.c.active)
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(scan)
        )
        if exclude_webhooks:
            due = due.where(deliveries.c.webhook_id.not_in(list(exclude_webhooks)))
        if not self.db.sqlite:
            due = due.with_for_update(skip_locked=True, of=deliveries)

        async def body(tx: WriteTransaction) -> tuple[list[Claim], bool, float | None]:
            claims: list[Claim] = []
            taken: dict[str, int] = defaultdict(int)
            left_behind = False
            for row in await tx.execute(due):
                if len(claims) >= limit:
                    left_behind = True
                    break
                if room is not None:
                    endpoint = endpoint_of(row.url)
                    if taken[endpoint] >= room(endpoint):
                        left_behind = True
                        continue
                    taken[endpoint] += 1
                claims.append(
                    Claim(
                        delivery_id=row.id,
                        lease_token=token,
                        webhook_id=row.webhook_id,
                        url=row.url,
                        secret_ciphertext=row.secret_ciphertext,
                        event_id=row.event_id,
                        event_type=row.event_type,
                        body=row.body,
                        attempts_made=row.attempts,
                    )
                )
            lease_end = now + self.lease_seconds
            if claims:
                await tx.execute(
                    deliveries.update()
                    .where(deliveries.c.id.in_([claim.delivery_id for claim in claims]))
                    .values(next_attempt_at=lease_end, lease_token=token)
                )
            next_due = (
                await tx.execute(
                    sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(
                        deliveries.c.next_attempt_at > now
                    )
                )
            ).scalar()
            return claims, left_behind, min(next_due or lease_end, lease_end)

        return await self.db.transaction(body)

    async def release(self, claims: Collection[Claim]) -> None:
        """Give claims back unsent (at shutdown): due now, for the next worker to take."""
        if not claims:
            return
        async with self.db.write() as tx:
            await tx.execute(
                deliveries.update()
                .where(
                    (deliveries.c.id == _b("b_id")) & (deliveries.c.lease_token == _b("b_token"))
                )
                .values(next_attempt_at=self.clock.time(), lease_token=None),
                [{"b_id": claim.delivery_id, "b_token": claim.lease_token} for claim in claims],
            )
            tx.new_deliveries += len(claims)

    async def release_all_leases(self) -> int:
        """At start-up on SQLite (one process per directory): any lease is a dead worker's."""
        async with self.db.write() as tx:
            result = await tx.execute(
                deliveries.update()
                .where((deliveries.c.outcome == "pending") & deliveries.c.lease_token.is_not(None))
                .values(next_attempt_at=self.clock.time(), lease_token=None)
            )
            return cast(int, result.rowcount)

    # ---- record -------------------------------------------------------------

    async def record(
        self,
        outcomes: Sequence[Outcome],
        *,
        auto_disable_after: int,
        disable: Sequence[EndpointDisabled] = (),
    ) -> Recorded:
        """Record a batch of outcomes in one transaction. A delivery whose lease was
        lost (another worker took the row after this one's lease ran out) or that
        went with its webhook is left out: nothing to log the attempt against.
        ``disable`` turns off the webhooks of endpoints that have failed for too
        long (circuit breaker)."""
        now = self.clock.time()
        stamp = self.clock.now()

        async def body(tx: WriteTransaction) -> Recorded:
            held = sa.select(deliveries.c.id, deliveries.c.lease_token).where(
                deliveries.c.id.in_([o.claim.delivery_id for o in outcomes])
            )
            if not self.db.sqlite:
                held = held.with_for_update()
            tokens = dict((await tx.execute(held)).all()) if outcomes else {}
            kept = [o for o in outcomes if tokens.get(o.claim.delivery_id) == o.claim.lease_token]
            sent = [o for o in kept if o.result is not None]
            if sent:
                await tx.execute(_SENT, [_row_values(o, now, stamp) for o in sent])
                await tx.execute(attempts.insert(), [_attempt_row(o) for o in sent])
            not_sent = [o for o in kept if o.result is None]
            if not_sent:
                await tx.execute(_NOT_SENT, [_row_values(o, now, stamp) for o in not_sent])
            if any(o.decision.outcome == "pending" for o in kept):
                tx.notify_others = True  # a retry is due later: other workers may take it
            delivered = {o.claim.webhook_id for o in kept if o.decision.outcome == "success"}
            if delivered:
                await tx.execute(
                    webhooks.update()
                    .where(webhooks.c.id.in_(delivered) & (webhooks.c.consecutive_failures != 0))
                    .values(consecutive_failures=0)
                )
            disabled: set[int] = set()
            for outcome in kept:
                if outcome.decision.outcome == "failed" and await _count_failure(
                    tx, outcome, auto_disable_after, stamp
                ):
                    disabled.add(outcome.claim.webhook_id)
            for endpoint in disable:
                disabled |= await _disable_endpoint(tx, endpoint, stamp)
            return Recorded({o.claim.delivery_id for o in kept}, disabled)

        return await self.db.transaction(body)

    async def pending(self, limit: int = 20) -> tuple[int, list[DeliveryRecord]]:
        """How many deliveries are unsettled, and the first ``limit`` of them."""
        async with self.db.read() as conn:
            count = (
                await conn.execute(
                    sa.select(sa.func.count()).where(deliveries.c.outcome == "pending")
                )
            ).scalar_one()
            rows: Sequence[sa.Row[Any]] = []
            if limit and count:
                rows = (
                    await conn.execute(
                        with_payload()
                        .where(deliveries.c.outcome == "pending")
                        .order_by(deliveries.c.id)
                        .limit(limit)
                    )
                ).all()
        return count, [DeliveryRecord.from_row(r) for r in rows]

    # ---- retention ----------------------------------------------------------

    async def prune(self, *, older_than: datetime) -> int:
        """Remove settled deliveries (and then unreferenced events) older than a date."""
        async with self.db.write() as tx:
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
                event_log.delete().where(
                    (event_log.c.time_created < older_than) & event_log.c.id.not_in(referenced)
                )
            )
            return cast(int, result.rowcount)


def _row_values(outcome: Outcome, now: float, stamp: datetime) -> dict[str, Any]:
    decision, result = outcome.decision, outcome.result
    success = decision.outcome == "success"
    return {
        "b_id": outcome.claim.delivery_id,
        "b_token": outcome.claim.lease_token,
        "v_attempts": outcome.claim.attempts_made + 1,
        "v_outcome": decision.outcome,
        "v_next_attempt_at": now + (decision.wait or 0.0)
        if decision.outcome == "pending"
        else None,
        "v_status_code": result.status_code if result is not None else None,
        "v_delivered_at": stamp if success else None,
        "v_error_detail": None if success else decision.reason or (result and result.error),
    }


def _attempt_row(outcome: Outcome) -> dict[str, Any]:
    result = outcome.result
    assert result is not None
    return {
        "delivery_id": outcome.claim.delivery_id,
        "number": outcome.claim.attempts_made + 1,
        "started_at": result.started_at,
        "duration_ms": result.duration_ms,
        "status_code": result.status_code,
        "error": result.error,
        "response_excerpt": result.response_excerpt,
        "address": result.address,
    }


async def _count_failure(
    tx: WriteTransaction, outcome: Outcome, auto_disable_after: int, stamp: datetime
) -> bool:
    """Count a failed delivery against its webhook; True if that disabled it."""
    webhook_id, decision = outcome.claim.webhook_id, outcome.decision
    row = (
        await tx.execute(
            sa.select(webhooks.c.consecutive_failures, webhooks.c.active).where(
                webhooks.c.id == webhook_id
            )
        )
    ).first()
    if row is None:
        return False
    failures = row.consecutive_failures + 1
    values: dict[str, Any] = {"consecutive_failures": failures, "time_updated": stamp}
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
    return reason is not None


async def _disable_endpoint(
    tx: WriteTransaction, disabled: EndpointDisabled, stamp: datetime
) -> set[int]:
    active = await tx.execute(sa.select(webhooks.c.id, webhooks.c.url).where(webhooks.c.active))
    ids: set[int] = set()
    for hook in active:
        if endpoint_of(hook.url) != disabled.endpoint:
            continue
        await tx.execute(
            webhooks.update()
            .where(webhooks.c.id == hook.id)
            .values(active=False, disabled_reason=disabled.reason, time_updated=stamp)
        )
        await settle_queued(tx, hook.id, f"webhook {disabled.reason}")
        ids.add(hook.id)
    return ids


async def settle_queued(tx: WriteTransaction, webhook_id: int, reason: str) -> None:
    """Settle a webhook's queued deliveries as failed with ``reason``."""
    await tx.execute(
        deliveries.update()
        .where((deliveries.c.webhook_id == webhook_id) & (deliveries.c.outcome == "pending"))
        .values(outcome="failed", error_detail=reason, next_attempt_at=None, lease_token=None)
    )
