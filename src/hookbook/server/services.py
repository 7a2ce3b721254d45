"""What one running server holds: settings, database, store, webhook engine.

Built and torn down by the app's lifespan; routes reach it through
:mod:`hookbook.server.deps`. Nothing here is a module-level global, so two
servers with different settings live in one process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..catalog.store import CatalogStore
from ..config import Settings
from ..db import Database, is_sqlite
from ..dirlock import DirectoryLock
from ..migrations import prepare_database

if TYPE_CHECKING:
    import httpx

    from ..url_safety import Resolver
    from ..webhooks.service import WebhookService
    from ..webhooks.worker import DeliveryWorker

logger = logging.getLogger(__name__)


@dataclass
class Seams:
    """I/O a test may swap: how targets resolve, how requests go out."""

    resolver: Resolver | None = None
    transport: httpx.AsyncBaseTransport | None = None


@dataclass
class Services:
    settings: Settings
    db: Database
    store: CatalogStore
    webhooks: WebhookService | None = None
    worker: DeliveryWorker | None = None
    lock: DirectoryLock | None = None
    extras: dict[str, Any] = field(default_factory=dict)

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
        try:
            await prepare_database(db)
            store = CatalogStore(db, settings.directory, settings.limits)
            await store.ensure_root()
            services = cls(settings=settings, db=db, store=store, lock=lock)
            if settings.webhooks is not None:
                from ..webhooks.service import WebhookService

                services.webhooks = WebhookService(db, settings.webhooks, resolver=seams.resolver)
                store.on_event = services.webhooks.fanout
                if settings.run_worker:
                    from ..webhooks.worker import DeliveryWorker

                    services.worker = DeliveryWorker(
                        db, services.webhooks, settings.webhooks, transport=seams.transport
                    )
                    await services.worker.start()
        except BaseException:
            await db.dispose()
            if lock is not None:
                lock.release()
            raise
        return services

    async def stop(self) -> None:
        try:
            if self.worker is not None:
                await self.worker.stop()
        finally:
            await self.db.dispose()
            if self.lock is not None:
                self.lock.release()
