"""The webhook engine's front: what the routes, the catalog and the dashboard call.

A thin facade over the modules that do the work: the registry
(:mod:`.registry`), the outbox (:mod:`.outbox`: fan-out inside the catalog's
write transaction, which is what makes the outbox transactional) and the
history (:mod:`.history`). What needs more than one of them lives here: the
catalog's event hook (a deletion removes the subtree's webhooks, then the
event fans out), ping and redeliver. URLs reach it with their syntax checked
by the webhook routes; the registry checks where they resolve to.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from .. import events as ev
from ..config import WebhookSettings
from ..db import Database, WriteTransaction, deliveries, event_log
from ..errors import ConflictError, NotFoundError
from ..url_safety import Resolver, SystemResolver
from .clock import Clock, system_clock
from .history import DeliveryHistory
from .outbox import Outbox, new_event_id
from .records import DeliveryRecord, WebhookRecord
from .registry import TimedResolver, WebhookRegistry, url_policy
from .secrets import SecretBox

__all__ = ["WebhookService", "check_settings", "new_event_id", "url_policy"]

logger = logging.getLogger(__name__)

#: The logger of the start-up notice that the target rules are relaxed, on its
#: own so that a caller that says so itself (``hookbook demo``) can quiet it.
RELAXED_RULES_LOGGER = f"{__name__}.relaxed_rules"


def check_settings(settings: WebhookSettings) -> None:
    """Raise ``ConfigurationError`` naming the first unusable webhook setting.

    Called when the app is built, so that a bad setting stops the server before
    anything starts (no half-started server, no traceback from the lifespan)."""
    url_policy(settings)
    SecretBox(settings.secret_keys)


class WebhookService:
    """Webhooks of one server: registry, outbox, history."""

    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        *,
        resolver: Resolver | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock or system_clock
        self.policy = url_policy(settings)
        self.secrets = SecretBox(settings.secret_keys)
        # Every lookup (the system's or an injected one) is bounded by resolve_timeout.
        self.resolver: Resolver = TimedResolver(
            resolver or SystemResolver(timeout=settings.resolve_timeout), settings.resolve_timeout
        )
        self.registry = WebhookRegistry(
            db,
            settings,
            policy=self.policy,
            secrets=self.secrets,
            resolver=self.resolver,
            clock=self.clock,
        )
        self.outbox = Outbox(db, lease_seconds=settings.lease_seconds, clock=self.clock)
        self.deliveries = DeliveryHistory(db)
        if settings.allow_http or settings.allow_private_addresses:
            logging.getLogger(RELAXED_RULES_LOGGER).warning(
                "webhook target rules relaxed for local development: allow_http=%s, "
                "allow_private_addresses=%s (production defaults refuse both)",
                settings.allow_http,
                settings.allow_private_addresses,
            )

    # ---- registry -----------------------------------------------------------

    async def register(
        self,
        path: str | Sequence[str],
        url: str,
        *,
        secret: str | None = None,
        events: Sequence[str] | None = None,
    ) -> WebhookRecord:
        return await self.registry.register(path, url, secret=secret, events=events)

    async def get(self, webhook_id: int) -> WebhookRecord:
        return await self.registry.get(webhook_id)

    async def list_on(self, path: str | Sequence[str]) -> list[WebhookRecord]:
        return await self.registry.list_on(path)

    async def list_all(self) -> list[WebhookRecord]:
        return await self.registry.list_all()

    async def update(self, webhook_id: int, **changes: Any) -> WebhookRecord:
        """Change what is given (url, events, secret, active); ``active=True``
        re-enables a disabled webhook."""
        updated = await self.registry.update(webhook_id, **changes)
        if not updated.active:
            self.outbox.forget([webhook_id])  # rows the worker holds, not yet sent
        return updated

    async def delete(self, webhook_id: int) -> None:
        await self.registry.delete(webhook_id)
        self.outbox.forget([webhook_id])

    async def rotate_secrets(self) -> int:
        return await self.registry.rotate_secrets()

    # ---- the outbox ---------------------------------------------------------

    async def on_catalog_event(
        self,
        tx: WriteTransaction,
        event_row_id: int | None,
        event_type: str,
        segments: tuple[str, ...],
    ) -> None:
        """The catalog's event hook (``CatalogStore.on_event``), in its transaction.

        A deletion first removes the webhooks registered in the deleted subtree
        (they hear nothing more, not even of the deletion; once it commits, the
        worker drops the rows it holds for them). Then one delivery per matching
        webhook, unless the change is not announced (``event_row_id`` is None)."""
        if event_type == ev.EventType.container_child_deleted:
            removed = await self.registry.remove_subtree(tx, segments)
            if removed:
                tx.after_commit.append(lambda: self.outbox.forget(removed))
        if event_row_id is not None:
            await self.outbox.fan_out(tx, event_row_id, event_type, segments)

    async def ping(self, webhook_id: int) -> DeliveryRecord:
        """Queue a ``ping`` event to one webhook, whatever its event filter.

        A disabled webhook is not pinged (409, as for :meth:`redeliver`): its
        endpoint may have answered 410 Gone; enable it with PATCH first."""
        hook = await self.get(webhook_id)
        _require_active(hook, "pinging")
        stamp = self.clock.now()
        payload = ev.Ping(timestamp=stamp, webhook_id=hook.id, url=hook.url)
        async with self.db.write() as tx:
            event_row = await tx.execute(
                event_log.insert().values(
                    type="ping", path=hook.node_path, body=ev.serialize(payload), time_created=stamp
                )
            )
            delivery_id = await self.outbox.enqueue(
                tx, webhook_id, event_row.inserted_primary_key[0], new_event_id(), "ping"
            )
        return await self.delivery(delivery_id)

    async def redeliver(self, delivery_id: int) -> DeliveryRecord:
        """Queue the same event again to the same webhook: a new record, the same event id."""
        original = await self.delivery(delivery_id)
        hook = await self.get(original.webhook_id)
        _require_active(hook, "redelivering")
        async with self.db.write() as tx:
            row = (
                await tx.execute(
                    sa.select(deliveries.c.event_row_id).where(deliveries.c.id == delivery_id)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no delivery with id {delivery_id}")
            new_id = await self.outbox.enqueue(
                tx,
                original.webhook_id,
                row.event_row_id,
                original.event_id,
                original.event_type,
                redelivery_of=delivery_id,
            )
        return await self.delivery(new_id)

    # ---- history ------------------------------------------------------------

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
        return await self.deliveries.of_webhook(
            webhook_id, limit=limit, before=before, outcome=outcome, event_type=event_type
        )

    async def delivery(self, delivery_id: int) -> DeliveryRecord:
        """One delivery with its per-attempt log."""
        return await self.deliveries.delivery(delivery_id)

    async def pending(self, limit: int = 20) -> tuple[int, list[DeliveryRecord]]:
        """How many deliveries are unsettled, and the first few of them."""
        return await self.outbox.pending(limit)


def _require_active(hook: WebhookRecord, doing: str) -> None:
    if not hook.active:
        raise ConflictError(
            f"webhook {hook.id} is {hook.disabled_reason or 'disabled'}; "
            f"enable it with PATCH before {doing}",
            webhook_id=hook.id,
        )
