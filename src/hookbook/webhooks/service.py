"""The webhook registry and its history: what the webhook routes call.

Registration checks the target (syntax in the request schema, resolved
addresses here), encrypts the signing secret, and refuses a second
registration of one URL on one node. :meth:`WebhookService.fanout` runs
inside the catalog's write transaction and adds one outbox row per matching
webhook, which is what makes the outbox transactional.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .. import events as ev
from ..catalog.paths import join_path, parse_path, prefixes
from ..config import WebhookSettings
from ..db import Database, WriteTransaction, attempts, deliveries, events, nodes, webhooks
from ..errors import (
    ConflictError,
    DuplicateWebhookError,
    NotFoundError,
)
from ..url_safety import Resolver, SystemResolver, UrlPolicy, check_target
from .records import AttemptRecord, DeliveryRecord, WebhookRecord
from .secrets import SecretBox, SecretUnavailable

logger = logging.getLogger(__name__)

_UNSET: Any = object()


def url_policy(settings: WebhookSettings) -> UrlPolicy:
    """The target rules of ``settings``; ``ConfigurationError`` names a bad entry."""
    return UrlPolicy(
        allow_http=settings.allow_http,
        allow_private_addresses=settings.allow_private_addresses,
        blocked_networks=tuple(settings.blocked_networks),
        allow_delivery_hosts=tuple(settings.allow_delivery_hosts),
        max_url_length=settings.max_url_length,
    ).validate()


def check_settings(settings: WebhookSettings) -> None:
    """Raise ``ConfigurationError`` naming the first unusable webhook setting.

    Called when the app is built, so that a bad setting stops the server before
    anything starts (no half-started server, no traceback from the lifespan)."""
    url_policy(settings)
    SecretBox(settings.secret_keys)


@dataclass(frozen=True)
class TimedResolver:
    """A resolver whose answers take at most ``timeout`` seconds (then ``TimeoutError``,
    which the target check reports as "does not resolve (timed out)")."""

    resolver: Resolver
    timeout: float

    async def __call__(self, host: str, port: int) -> list[str]:
        async with asyncio.timeout(self.timeout):
            return await self.resolver(host, port)


def new_event_id() -> str:
    """A delivery's event id: 32 hex digits, sent as X-Tiled-Event-ID and webhook-id."""
    return uuid.uuid4().hex


class WebhookService:
    """Webhooks of one server: registry, fan-out into the outbox, history."""

    def __init__(
        self, db: Database, settings: WebhookSettings, *, resolver: Resolver | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.policy = url_policy(settings)
        self.secrets = SecretBox(settings.secret_keys)
        # Every lookup (the system's or an injected one) is bounded by resolve_timeout.
        self.resolver: Resolver = TimedResolver(
            resolver or SystemResolver(timeout=settings.resolve_timeout), settings.resolve_timeout
        )
        if settings.allow_http or settings.allow_private_addresses:
            logger.warning(
                "webhook target rules relaxed for local development: allow_http=%s, "
                "allow_private_addresses=%s (production defaults refuse both)",
                settings.allow_http,
                settings.allow_private_addresses,
            )

    async def rotate_secrets(self) -> int:
        """Re-encrypt, with the first of ``secret_keys``, every stored secret an older
        key encrypted (key rotation: put the new key first, keep the old one until
        this has run, then drop it). Secrets no configured key decrypts stay as they
        are: their deliveries fail closed. Returns how many were re-encrypted."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(webhooks.c.id, webhooks.c.secret_ciphertext).where(
                        webhooks.c.secret_ciphertext.is_not(None)
                    )
                )
            ).all()
        stale = [r for r in rows if not self.secrets.is_current(r.secret_ciphertext)]
        rotated = 0
        for row in stale:
            try:
                token = self.secrets.rotate(row.secret_ciphertext)
            except SecretUnavailable:
                logger.warning(
                    "webhook %s: its secret cannot be decrypted with webhooks.secret_keys; "
                    "its deliveries will fail until the key is restored or the secret is reset",
                    row.id,
                )
                continue
            async with self.db.write() as tx:
                await tx.execute(
                    webhooks.update()
                    .where(
                        (webhooks.c.id == row.id)
                        & (webhooks.c.secret_ciphertext == row.secret_ciphertext)
                    )
                    .values(secret_ciphertext=token)
                )
            rotated += 1
        if rotated:
            logger.info("re-encrypted %d webhook secrets with the first secret key", rotated)
        return rotated

    # ---- registry -----------------------------------------------------------

    async def _require_node(self, conn: Any, segments: tuple[str, ...]) -> None:
        found = await conn.execute(sa.select(nodes.c.id).where(nodes.c.path == join_path(segments)))
        if found.first() is None:
            raise NotFoundError(f"no node at path {join_path(segments)!r}", path=list(segments))

    def _encrypt(self, secret: str | None) -> str | None:
        # secret_keys is required whenever webhooks are on (start-up refuses an
        # empty list), so a secret can always be encrypted here.
        return self.secrets.encrypt(secret) if secret else None

    async def register(
        self,
        path: str | Sequence[str],
        url: str,
        *,
        secret: str | None = None,
        events: list[str] | None = None,
    ) -> WebhookRecord:
        segments = parse_path(path)
        async with self.db.read() as conn:
            await self._require_node(conn, segments)
        await check_target(url, self.policy, self.resolver)
        ciphertext = self._encrypt(secret)
        stamp = ev.now()
        try:
            async with self.db.write() as tx:
                await self._require_node(tx.conn, segments)
                existing = (
                    await tx.execute(
                        sa.select(webhooks.c.id).where(
                            (webhooks.c.node_path == join_path(segments)) & (webhooks.c.url == url)
                        )
                    )
                ).scalar()
                if existing is not None:
                    raise self._duplicate(existing, url, segments)
                count = await tx.execute(sa.select(sa.func.count()).select_from(webhooks))
                if count.scalar_one() >= self.settings.max_webhooks:
                    raise ConflictError(
                        f"this server holds at most {self.settings.max_webhooks} webhooks "
                        "(webhooks.max_webhooks); delete one first",
                        limit=self.settings.max_webhooks,
                    )
                result = await tx.execute(
                    webhooks.insert().values(
                        node_path=join_path(segments),
                        url=url,
                        secret_ciphertext=ciphertext,
                        events=events or None,
                        active=True,
                        disabled_reason=None,
                        consecutive_failures=0,
                        time_created=stamp,
                        time_updated=stamp,
                    )
                )
                webhook_id = result.inserted_primary_key[0]
        except IntegrityError:  # a concurrent registration won the race
            existing = await self._find(segments, url)
            raise self._duplicate(existing, url, segments) from None
        return await self.get(webhook_id)

    @staticmethod
    def _duplicate(existing: int | None, url: str, segments: tuple[str, ...]) -> Exception:
        return DuplicateWebhookError(
            f"{url} is already registered on {join_path(segments) or 'the root'!r} "
            f"as webhook {existing}",
            webhook_id=existing,
        )

    async def _find(self, segments: tuple[str, ...], url: str) -> int | None:
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    sa.select(webhooks.c.id).where(
                        (webhooks.c.node_path == join_path(segments)) & (webhooks.c.url == url)
                    )
                )
            ).scalar()

    async def get(self, webhook_id: int) -> WebhookRecord:
        async with self.db.read() as conn:
            row = (
                await conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id))
            ).first()
        if row is None:
            raise NotFoundError(f"no webhook with id {webhook_id}", webhook_id=webhook_id)
        return WebhookRecord.from_row(row)

    async def list_on(self, path: str | Sequence[str]) -> list[WebhookRecord]:
        segments = parse_path(path)
        async with self.db.read() as conn:
            await self._require_node(conn, segments)
            rows = await conn.execute(
                sa.select(webhooks)
                .where(webhooks.c.node_path == join_path(segments))
                .order_by(webhooks.c.id)
            )
            return [WebhookRecord.from_row(r) for r in rows]

    async def list_all(self) -> list[WebhookRecord]:
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(webhooks).order_by(webhooks.c.id))
            return [WebhookRecord.from_row(r) for r in rows]

    async def update(
        self,
        webhook_id: int,
        *,
        url: str = _UNSET,
        events: list[str] | None = _UNSET,
        secret: str | None = _UNSET,
        active: bool = _UNSET,
    ) -> WebhookRecord:
        """Change what is given; ``active=True`` re-enables a disabled webhook."""
        current = await self.get(webhook_id)
        values: dict[str, Any] = {"time_updated": ev.now()}
        if url is not _UNSET and url != current.url:
            await check_target(url, self.policy, self.resolver)
            values["url"] = url
        if events is not _UNSET:
            values["events"] = events or None
        if secret is not _UNSET:
            values["secret_ciphertext"] = self._encrypt(secret)
        if active is not _UNSET:
            values["active"] = active
            if active:
                values["disabled_reason"] = None
                values["consecutive_failures"] = 0
            else:
                values["disabled_reason"] = "disabled by PATCH"
        try:
            async with self.db.write() as tx:
                result = await tx.execute(
                    webhooks.update().where(webhooks.c.id == webhook_id).values(**values)
                )
                if result.rowcount == 0:
                    raise NotFoundError(f"no webhook with id {webhook_id}", webhook_id=webhook_id)
                if active is False:
                    await settle_queued(tx, webhook_id, "webhook disabled by PATCH")
        except IntegrityError:
            raise DuplicateWebhookError(
                f"{url} is already registered on {current.node_path or 'the root'!r}"
            ) from None
        return await self.get(webhook_id)

    async def delete(self, webhook_id: int) -> None:
        async with self.db.write() as tx:
            # History and pending deliveries go with the webhook.
            doomed = sa.select(deliveries.c.id).where(deliveries.c.webhook_id == webhook_id)
            await tx.execute(attempts.delete().where(attempts.c.delivery_id.in_(doomed)))
            await tx.execute(deliveries.delete().where(deliveries.c.webhook_id == webhook_id))
            result = await tx.execute(webhooks.delete().where(webhooks.c.id == webhook_id))
            if result.rowcount == 0:
                raise NotFoundError(f"no webhook with id {webhook_id}", webhook_id=webhook_id)

    async def remove_subtree(self, tx: WriteTransaction, segments: tuple[str, ...]) -> None:
        """Inside a node's deletion: remove webhooks registered on it or below it."""
        joined = join_path(segments)
        inside = (webhooks.c.node_path == joined) | (
            sa.func.substr(webhooks.c.node_path, 1, len(joined) + 1) == joined + "/"
        )
        ids = sa.select(webhooks.c.id).where(inside)
        doomed = sa.select(deliveries.c.id).where(deliveries.c.webhook_id.in_(ids))
        await tx.execute(attempts.delete().where(attempts.c.delivery_id.in_(doomed)))
        await tx.execute(deliveries.delete().where(deliveries.c.webhook_id.in_(ids)))
        await tx.execute(webhooks.delete().where(inside))

    # ---- the outbox ---------------------------------------------------------

    async def fanout(
        self, tx: WriteTransaction, event_row_id: int, event_type: str, segments: tuple[str, ...]
    ) -> None:
        """Add one pending delivery per active webhook on the node or an ancestor
        whose filter admits ``event_type``, in the caller's transaction."""
        rows = await tx.execute(
            sa.select(webhooks.c.id, webhooks.c.events).where(
                webhooks.c.node_path.in_(prefixes(segments)) & webhooks.c.active
            )
        )
        matching = [r.id for r in rows if not r.events or event_type in r.events]
        if not matching:
            return
        stamp = ev.now()
        due = time.time()
        await tx.execute(
            deliveries.insert(),
            [
                {
                    "webhook_id": webhook_id,
                    "event_row_id": event_row_id,
                    "event_id": new_event_id(),
                    "event_type": event_type,
                    "outcome": "pending",
                    "attempts": 0,
                    "next_attempt_at": due,
                    "time_created": stamp,
                }
                for webhook_id in matching
            ],
        )
        tx.new_deliveries += len(matching)

    async def ping(self, webhook_id: int) -> DeliveryRecord:
        """Queue a ``ping`` event to one webhook, whatever its event filter.

        A disabled webhook is not pinged (409, as for :meth:`redeliver`): its
        endpoint may have answered 410 Gone; enable it with PATCH first."""
        hook = await self.get(webhook_id)
        self._require_active(hook, "pinging")
        stamp = ev.now()
        payload = ev.Ping(timestamp=stamp, webhook_id=hook.id, url=hook.url)
        async with self.db.write() as tx:
            event_row = await tx.execute(
                events.insert().values(
                    type="ping", path=hook.node_path, body=ev.serialize(payload), time_created=stamp
                )
            )
            delivery_id = await self._queue(
                tx, webhook_id, event_row.inserted_primary_key[0], new_event_id(), "ping"
            )
        return await self.delivery(delivery_id)

    async def redeliver(self, delivery_id: int) -> DeliveryRecord:
        """Queue the same event again to the same webhook: a new record, the same event id."""
        original = await self.delivery(delivery_id)
        hook = await self.get(original.webhook_id)
        self._require_active(hook, "redelivering")
        async with self.db.write() as tx:
            row = (
                await tx.execute(
                    sa.select(deliveries.c.event_row_id).where(deliveries.c.id == delivery_id)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_id}")
            new_id = await self._queue(
                tx,
                original.webhook_id,
                row.event_row_id,
                original.event_id,
                original.event_type,
                redelivery_of=delivery_id,
            )
        return await self.delivery(new_id)

    @staticmethod
    def _require_active(hook: WebhookRecord, doing: str) -> None:
        if not hook.active:
            raise ConflictError(
                f"webhook {hook.id} is {hook.disabled_reason or 'disabled'}; "
                f"enable it with PATCH before {doing}",
                webhook_id=hook.id,
            )

    @staticmethod
    async def _queue(
        tx: WriteTransaction,
        webhook_id: int,
        event_row_id: int,
        event_id: str,
        event_type: str,
        *,
        redelivery_of: int | None = None,
    ) -> int:
        result = await tx.execute(
            deliveries.insert().values(
                webhook_id=webhook_id,
                event_row_id=event_row_id,
                event_id=event_id,
                event_type=event_type,
                outcome="pending",
                attempts=0,
                next_attempt_at=time.time(),
                redelivery_of=redelivery_of,
                time_created=ev.now(),
            )
        )
        tx.new_deliveries += 1
        return result.inserted_primary_key[0]

    # ---- history ------------------------------------------------------------

    _delivery_columns = (
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
        events.c.body,
    )

    async def history(
        self,
        webhook_id: int,
        *,
        limit: int = 50,
        before: int | None = None,
        outcome: str | None = None,
        event_type: str | None = None,
    ) -> list[DeliveryRecord]:
        """A webhook's deliveries, newest first (by delivery id)."""
        await self.get(webhook_id)
        query = (
            sa.select(*self._delivery_columns)
            .join(events, events.c.id == deliveries.c.event_row_id)
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
            row = (
                await conn.execute(
                    sa.select(*self._delivery_columns)
                    .join(events, events.c.id == deliveries.c.event_row_id)
                    .where(deliveries.c.id == delivery_id)
                )
            ).first()
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

    async def pending(self, limit: int = 20) -> tuple[int, list[DeliveryRecord]]:
        """How many deliveries are unsettled, and the first few of them."""
        async with self.db.read() as conn:
            count = (
                await conn.execute(
                    sa.select(sa.func.count()).where(deliveries.c.outcome == "pending")
                )
            ).scalar_one()
            rows = (
                await conn.execute(
                    sa.select(*self._delivery_columns)
                    .join(events, events.c.id == deliveries.c.event_row_id)
                    .where(deliveries.c.outcome == "pending")
                    .order_by(deliveries.c.id)
                    .limit(limit)
                )
            ).all()
        return count, [DeliveryRecord.from_row(r) for r in rows]


async def settle_queued(tx: WriteTransaction, webhook_id: int, reason: str) -> None:
    """Settle a webhook's queued deliveries as failed with ``reason``."""
    await tx.execute(
        deliveries.update()
        .where((deliveries.c.webhook_id == webhook_id) & (deliveries.c.outcome == "pending"))
        .values(outcome="failed", error_detail=reason, next_attempt_at=None, lease_token=None)
    )
