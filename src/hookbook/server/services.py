"""What one running server holds: settings, database, store, webhook engine.

Built and torn down by the app's lifespan; routes reach it through
:mod:`hookbook.server.deps`. Nothing here is a module-level global, so two
servers with different settings live in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..catalog.recovery import recover
from ..catalog.store import CatalogStore
from ..config import Settings, WebhookSettings
from ..db import Database, is_sqlite
from ..dirlock import DirectoryLock
from ..migrations import prepare_database
from ..storage import open_storage
from .metrics import Metrics

if TYPE_CHECKING:
    import httpx

    from ..url_safety import Resolver
    from ..webhooks.clock import Clock
    from ..webhooks.listener import OutboxListener
    from ..webhooks.service import WebhookService
    from ..webhooks.worker import DeliveryWorker

logger = logging.getLogger(__name__)


@dataclass
class Seams:
    """I/O a test may swap: how targets resolve, how requests go out, what time it is."""

    resolver: Resolver | None = None
    transport: httpx.AsyncBaseTransport | None = None
    clock: Clock | None = None


@dataclass
class Services:
    settings: Settings
    db: Database
    store: CatalogStore
    webhooks: WebhookService | None = None
    worker: DeliveryWorker | None = None
    lock: DirectoryLock | None = None
    listener: OutboxListener | None = None
    metrics: Metrics = field(default_factory=Metrics)
    reaper: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: Settings, seams: Seams | None = None) -> Services:
        seams = seams or Seams()
        settings.directory.mkdir(parents=True, exist_ok=True)
        lock = None
        if settings.lock_directory or (
            settings.lock_directory is None and is_sqlite(settings.database_url)
        ):
            lock = DirectoryLock(settings.directory)
            lock.acquire()
        db = Database(settings.database_url)
        services = cls(
            settings=settings,
            db=db,
            store=CatalogStore(
                db, open_storage(settings.directory), settings.limits, settings.storage
            ),
            lock=lock,
        )
        try:
            await prepare_database(db)
            await services.store.ensure_root()
            await recover(services.store)
            services.reaper = asyncio.create_task(services.store.run_reaper())
            if settings.webhooks is not None:
                await services._start_webhooks(settings.webhooks, seams)
        except BaseException:
            await services.stop()
            raise
        return services

    async def _start_webhooks(self, settings: WebhookSettings, seams: Seams) -> None:
        from ..webhooks.service import WebhookService

        webhooks = WebhookService(self.db, settings, resolver=seams.resolver, clock=seams.clock)
        self.webhooks = webhooks
        self.store.on_event = webhooks.on_catalog_event
        await webhooks.rotate_secrets()
        if not self.settings.run_worker:
            return
        from ..webhooks.worker import DeliveryWorker

        self.worker = DeliveryWorker(
            webhooks.outbox,
            webhooks.secrets,
            settings,
            policy=webhooks.policy,
            resolver=webhooks.resolver,
            clock=webhooks.clock,
            transport=seams.transport,
            polling=self._no_notifications,
        )
        self.worker.observer = self.metrics.observe
        await self.worker.start()
        if not self.db.sqlite:
            from ..webhooks.listener import OutboxListener

            self.listener = OutboxListener(self.settings.database_url, self.worker.wake)
            await self.listener.start()

    def _no_notifications(self) -> bool:
        """On PostgreSQL without a listening connection, other processes' rows go
        unnoticed: the worker polls. On SQLite (one process) it never needs to."""
        return not self.db.sqlite and (self.listener is None or self.listener.state != "listening")

    async def stop(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reaper
        try:
            if self.listener is not None:
                await self.listener.stop()
            if self.worker is not None:
                await self.worker.stop()
        finally:
            await self.db.dispose()
            if self.lock is not None:
                self.lock.release()
