"""The webhook registry: register, look up, change and remove webhooks.

Registration resolves the target and checks every address
(:func:`hookbook.url_safety.check_target`; the route has already checked the
URL's syntax), encrypts the signing secret, and refuses a second
registration of one URL on one node. Disabling a webhook settles its queued
deliveries as failed, in the same transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..config import WebhookSettings
from ..db import Database, WriteTransaction, attempts, deliveries, nodes, webhooks
from ..errors import ConflictError, DuplicateWebhookError, NotFoundError, SecretUnavailable
from ..paths import join_path, parse_path
from ..url_safety import Resolver, UrlPolicy, check_target
from .clock import Clock
from .outbox import settle_queued
from .records import WebhookRecord
from .secrets import SecretBox

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


@dataclass(frozen=True)
class TimedResolver:
    """A resolver whose answers take at most ``timeout`` seconds (then ``TimeoutError``,
    which the target check reports as "does not resolve (timed out)")."""

    resolver: Resolver
    timeout: float

    async def __call__(self, host: str, port: int) -> list[str]:
        async with asyncio.timeout(self.timeout):
            return await self.resolver(host, port)


def _not_found(webhook_id: int) -> NotFoundError:
    return NotFoundError(f"no webhook with id {webhook_id}", webhook_id=webhook_id)


class WebhookRegistry:
    """The ``webhooks`` table of one server."""

    def __init__(
        self,
        db: Database,
        settings: WebhookSettings,
        *,
        policy: UrlPolicy,
        secrets: SecretBox,
        resolver: Resolver,
        clock: Clock,
    ) -> None:
        self.db = db
        self.settings = settings
        self.policy = policy
        self.secrets = secrets
        self.resolver = resolver
        self.clock = clock

    async def require_node(self, conn: Any, segments: tuple[str, ...]) -> None:
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
        events: Sequence[str] | None = None,
    ) -> WebhookRecord:
        segments = parse_path(path)
        async with self.db.read() as conn:
            await self.require_node(conn, segments)
        await check_target(url, self.policy, self.resolver)
        ciphertext = self._encrypt(secret)
        stamp = self.clock.now()
        try:
            async with self.db.write() as tx:
                await self.require_node(tx.conn, segments)
                existing = await self._find(tx.conn, segments, url)
                if existing is not None:
                    raise _duplicate(existing, url, segments)
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
            async with self.db.read() as conn:
                existing = await self._find(conn, segments, url)
            raise _duplicate(existing, url, segments) from None
        return await self.get(webhook_id)

    @staticmethod
    async def _find(conn: Any, segments: tuple[str, ...], url: str) -> int | None:
        found: int | None = (
            await conn.execute(
                sa.select(webhooks.c.id).where(
                    (webhooks.c.node_path == join_path(segments)) & (webhooks.c.url == url)
                )
            )
        ).scalar()
        return found

    async def get(self, webhook_id: int) -> WebhookRecord:
        async with self.db.read() as conn:
            row = (
                await conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id))
            ).first()
        if row is None:
            raise _not_found(webhook_id)
        return WebhookRecord.from_row(row)

    async def list_on(self, path: str | Sequence[str]) -> list[WebhookRecord]:
        segments = parse_path(path)
        async with self.db.read() as conn:
            await self.require_node(conn, segments)
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
        values: dict[str, Any] = {"time_updated": self.clock.now()}
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
                    raise _not_found(webhook_id)
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
                raise _not_found(webhook_id)

    async def remove_subtree(self, tx: WriteTransaction, segments: tuple[str, ...]) -> list[int]:
        """Inside a node's deletion: remove webhooks registered on it or below it,
        with their history and pending deliveries; returns their ids."""
        joined = join_path(segments)
        inside = (webhooks.c.node_path == joined) | (
            sa.func.substr(webhooks.c.node_path, 1, len(joined) + 1) == joined + "/"
        )
        ids = sa.select(webhooks.c.id).where(inside)
        doomed = sa.select(deliveries.c.id).where(deliveries.c.webhook_id.in_(ids))
        await tx.execute(attempts.delete().where(attempts.c.delivery_id.in_(doomed)))
        await tx.execute(deliveries.delete().where(deliveries.c.webhook_id.in_(ids)))
        removed = await tx.execute(webhooks.delete().where(inside).returning(webhooks.c.id))
        return list(removed.scalars())

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
        rotated = 0
        for row in rows:
            if self.secrets.is_current(row.secret_ciphertext):
                continue
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


def _duplicate(existing: int | None, url: str, segments: tuple[str, ...]) -> Exception:
    return DuplicateWebhookError(
        f"{url} is already registered on {join_path(segments) or 'the root'!r} "
        f"as webhook {existing}",
        webhook_id=existing,
    )
