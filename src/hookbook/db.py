"""Tables, the engine, and transactions.

One schema serves the embedded default (SQLite, one process per directory)
and PostgreSQL (several processes). :class:`Database` hands out two kinds of
transaction:

- :meth:`Database.read`: a plain transaction (SQLite: deferred; WAL lets
  readers run beside the writer).
- :meth:`Database.write`: a write transaction. On SQLite it starts as a write
  (``BEGIN IMMEDIATE``) and one runs at a time in this process, so writers
  never deadlock on a lock upgrade. On PostgreSQL writers run concurrently.

After a write transaction that added deliveries commits, the registered
wake-up callbacks run (the worker in this process; ``NOTIFY`` for the others
on PostgreSQL).

Connections are not pinged before use (no round trip per checkout). A pooled
PostgreSQL connection whose socket the server has closed (a restart,
``pg_terminate_backend``) is noticed at checkout without a round trip and
replaced; one that dies silently fails its first statement, and
:meth:`Database.transaction` runs such a transaction once more, but only when
the failure came before ``COMMIT`` was sent, so nothing is ever applied twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOTIFY_CHANNEL = "hookbook_outbox"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (stored naive, in UTC)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE")),
    sa.Column("key", sa.String(255), nullable=False),
    # Slash-joined segments from the root ("" for the root itself).
    sa.Column("path", sa.Text, nullable=False, unique=True),
    sa.Column("structure_family", sa.String(16), nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("specs", sa.JSON, nullable=False),
    # What readers see (an array's shape included): the truth, whatever the files say.
    sa.Column("structure", sa.JSON),
    # An array's zarr folder in the storage (``data/<hex>.zarr``); None for
    # containers and tables (whose data is the rows of ``fragments``).
    sa.Column("data_location", sa.Text),
    # Its created event is recorded: a container at once, an array or a table
    # once its data is complete and readable.
    sa.Column("announced", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("stream_closed", sa.Boolean, nullable=False, default=False),
    sa.Column("time_created", UTCDateTime, nullable=False),
    sa.Column("time_updated", UTCDateTime, nullable=False),
    sa.UniqueConstraint("parent_id", "key", name="uq_nodes_parent_key"),
    sa.Index("ix_nodes_parent", "parent_id"),
)

fragments = sa.Table(
    "fragments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("node_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False),
    # Tiled's logical partition (0 .. npartitions - 1); its rows are its
    # fragments' rows in id order.
    sa.Column("partition", sa.Integer, nullable=False),
    # A Parquet file in the storage (``data/<hex>.parquet``).
    sa.Column("location", sa.Text, nullable=False),
    sa.Index("ix_fragments_node", "node_id", "partition", "id"),
)

upload_blocks = sa.Table(
    "upload_blocks",
    metadata,
    # The blocks of an array's declared chunk grid written so far, while it is
    # uploaded block by block (``PUT /array/block``); gone once it is complete.
    sa.Column(
        "node_id",
        sa.Integer,
        sa.ForeignKey("nodes.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("block", sa.String(255), primary_key=True),
)

retired_data = sa.Table(
    "retired_data",
    metadata,
    # Data no node refers to any more (replaced, compacted, deleted), removed
    # once a grace period has passed so that reads in flight can finish.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("retired_at", sa.Float, nullable=False),
    sa.Index("ix_retired_data_time", "retired_at"),
)

#: The ``events`` table (not named ``events`` here: that is the public module of
#: event models, :mod:`hookbook.events`).
event_log = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    # The exact JSON body that is delivered and signed.
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("time_created", UTCDateTime, nullable=False),
    sa.Index("ix_events_time", "time_created"),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("node_path", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("secret_ciphertext", sa.Text),
    # None: every event type.
    sa.Column("events", sa.JSON),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, default=0),
    sa.Column("time_created", UTCDateTime, nullable=False),
    sa.Column("time_updated", UTCDateTime, nullable=False),
    sa.UniqueConstraint("node_path", "url", name="uq_webhooks_node_url"),
    sa.Index("ix_webhooks_node_path", "node_path"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "webhook_id",
        sa.Integer,
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_row_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False),
    # X-Tiled-Event-ID / webhook-id: one per delivery, the same on every retry.
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("status_code", sa.Integer),
    sa.Column("error_detail", sa.Text),
    # Epoch seconds when the row is next due: the next attempt, or the end of
    # the current claim's lease. NULL once settled.
    sa.Column("next_attempt_at", sa.Float),
    sa.Column("lease_token", sa.String(32)),
    sa.Column("redelivery_of", sa.Integer),
    sa.Column("time_created", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime),
    sa.Index("ix_deliveries_due", "next_attempt_at"),
    sa.Index("ix_deliveries_webhook", "webhook_id", "id"),
    sa.Index("ix_deliveries_outcome", "outcome"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "delivery_id",
        sa.Integer,
        sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("response_excerpt", sa.Text),
    sa.Column("address", sa.String(64)),
    sa.Index("ix_attempts_delivery", "delivery_id"),
)


# The dashboard's sign-ins (hookbook.server.ui.sessions). Only hashes are stored:
# of the session id (the cookie), of the one-time token, and of the API key.
ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("time_created", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_ui_sessions_expires", "expires_at"),
)

ui_signin_tokens = sa.Table(
    "ui_signin_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        pool_size=pool_size,
        max_overflow=0,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (the pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    """The engine(s) of one server, and its read and write transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        self.wakeups: list[Callable[[], None]] = []
        if self.sqlite:
            self.reader = _sqlite_engine(url, immediate=False, pool_size=4)
            self.writer = _sqlite_engine(url, immediate=True, pool_size=1)
            self._write_lock: asyncio.Lock | None = asyncio.Lock()
        else:
            # Small pools: several processes share one server's max_connections
            # (100 by default); each process also holds one LISTEN connection.
            self.reader = self.writer = create_async_engine(
                url, pool_size=5, max_overflow=10, pool_timeout=30, pool_recycle=3600
            )
            event.listen(self.writer.sync_engine.pool, "checkout", _refuse_closed_connection)
            self._write_lock = None

    def on_new_deliveries(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each commit that added deliveries."""
        self.wakeups.append(callback)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.begin() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTransaction]:
        """A write transaction; commits on success, rolls back on any error."""
        if self._write_lock is not None:
            await self._write_lock.acquire()
        tx: WriteTransaction | None = None
        try:
            async with self.writer.begin() as conn:
                tx = WriteTransaction(conn)
                yield tx
                if (tx.new_deliveries or tx.notify_others) and not self.sqlite:
                    await conn.execute(sa.text(f"NOTIFY {NOTIFY_CHANNEL}"))
                tx.committing = True
        except BaseException:
            if tx is not None:
                for undo in tx.after_rollback:
                    undo()
            raise
        finally:
            if self._write_lock is not None:
                self._write_lock.release()
        if tx.new_deliveries:
            for wake in self.wakeups:
                wake()
        for callback in tx.after_commit:
            callback()

    async def transaction(self, body: Callable[[WriteTransaction], Awaitable[T]]) -> T:
        """Run ``body`` in a write transaction; once more if the connection was found
        dropped before ``COMMIT`` was sent (everything it did was rolled back then)."""
        for attempt in (1, 2):
            tx_seen: list[WriteTransaction] = []
            try:
                async with self.write() as tx:
                    tx_seen.append(tx)
                    return await body(tx)
            except exc.DBAPIError as error:
                before_commit = not tx_seen or not tx_seen[0].committing
                if attempt == 2 or not error.connection_invalidated or not before_commit:
                    raise
                logger.info("database connection dropped; running the transaction again")
        raise AssertionError("unreachable")  # pragma: no cover

    async def dispose(self) -> None:
        await self.reader.dispose()
        if self.writer is not self.reader:
            await self.writer.dispose()


class WriteTransaction:
    """A connection in a write transaction, plus what to do once it commits."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.new_deliveries = 0
        #: Wake the workers of other processes (NOTIFY) even without new rows.
        self.notify_others = False
        #: Set once COMMIT is about to be sent: a failure after it may have committed.
        self.committing = False
        #: Called after the transaction commits (not after a rollback).
        self.after_commit: list[Callable[[], None]] = []
        #: Called if the transaction rolls back (or fails to commit).
        self.after_rollback: list[Callable[[], None]] = []

    async def execute(self, statement: Any, params: Any = None) -> Any:
        return await self.conn.execute(statement, params)


def _refuse_closed_connection(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection the server has closed is replaced, at no round trip
    (asyncpg notices the closed socket itself; SQLAlchemy then connects anew)."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("the database closed this pooled connection")


def is_transient(error: BaseException) -> bool:
    """Whether a database error is worth retrying: the connection went away or the
    database is busy or unreachable, not a bug in the statement or a constraint."""
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(error, exc.OperationalError | exc.InterfaceError) and not isinstance(
            error, exc.IntegrityError
        )
    return isinstance(error, OSError | TimeoutError | exc.DisconnectionError | exc.TimeoutError)
