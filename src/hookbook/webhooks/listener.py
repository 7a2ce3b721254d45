"""Wake-ups across processes on PostgreSQL: ``LISTEN`` for new outbox rows.

Every transaction that adds deliveries sends ``NOTIFY hookbook_outbox``
(:meth:`hookbook.db.Database.write`). This listener holds one dedicated
connection per process and wakes the local worker on each notification, so a
delivery written through one process is sent at once by whichever process
claims it. Notifications are a latency optimisation only: the worker also
polls, so a missed notification (the connection dropped) costs at most one
poll interval. The listener reconnects with a bounded backoff and wakes the
worker after reconnecting, in case something was missed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from ..db import NOTIFY_CHANNEL

if TYPE_CHECKING:  # asyncpg is imported only on PostgreSQL
    import asyncpg

logger = logging.getLogger(__name__)


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg wants, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class OutboxListener:
    """Calls ``wake()`` whenever another transaction adds deliveries."""

    def __init__(self, url: str, wake: Callable[[], None], *, max_backoff: float = 5.0) -> None:
        self.dsn = asyncpg_dsn(url)
        self.wake = wake
        self.max_backoff = max_backoff
        self.state = "stopped"
        self.reconnects = 0
        self.notifications = 0
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self, *, wait: float = 5.0) -> None:
        """Start listening; waits (bounded) for the first connection."""
        self._task = asyncio.create_task(self._run(), name="hookbook-outbox-listener")
        try:
            await asyncio.wait_for(self._connected.wait(), wait)
        except TimeoutError:
            logger.warning("outbox listener not connected yet; the worker polls meanwhile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.state = "stopped"

    def _on_notify(self, *_args: object) -> None:
        self.notifications += 1
        self.wake()

    async def _run(self) -> None:
        import asyncpg

        backoff = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                self.state = "listening"
                self._connected.set()
                backoff = 0.1
                self.wake()  # anything written while we were away
                while not lost.is_set():
                    # A cheap liveness probe: a dead socket is noticed here too.
                    try:
                        await asyncio.wait_for(lost.wait(), 5.0)
                    except TimeoutError:
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                if conn is not None:
                    await _close_quietly(conn)
                raise
            except Exception as exc:
                self.state = "reconnecting"
                logger.warning("outbox listener lost its connection (%s); reconnecting", exc)
            if conn is not None:
                await _close_quietly(conn)
            self.reconnects += 1
            self.state = "reconnecting"
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2)
    except Exception:
        try:
            conn.terminate()
        except Exception:
            pass
