"""Hand-off after commit: rows the worker has room for are leased at insert and
sent from memory, with no claim and no query before their first attempt."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import ExitStack

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from conftest import wait_until
from hookbook.client import from_uri
from hookbook.db import Database, WriteTransaction, nodes
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver


def outbox(server: SimpleServer, sql: str, *params: object) -> list[tuple]:
    conn = sqlite3.connect(server.directory / "hookbook.db", timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_a_write_is_sent_without_a_claim_or_any_query_of_the_outbox():
    with (
        WebhookReceiver() as receiver,
        SimpleServer(webhooks={"retry_schedule": [0.01]}) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url)
        client.create_container("warm-up")
        receiver.wait_for(1, timeout=10)
        server.drain()
        statements: list[tuple[float, str]] = []

        def log(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
            statements.append((time.time(), statement))

        db = server.app.state.services.db
        engines = {db.reader.sync_engine, db.writer.sync_engine}
        for engine in engines:
            event.listen(engine, "before_cursor_execute", log)
        try:
            client.create_container("a")
            delivery = receiver.wait_for(2, timeout=10)[-1]
            server.drain()
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", log)
    arrived = delivery.received_at.timestamp()
    before = [s for t, s in statements if t < arrived and "deliveries" in s]
    assert len(before) == 1, before
    assert before[0].startswith("INSERT INTO deliveries")  # leased in the insert itself
    after = [s for t, s in statements if t >= arrived and "deliveries" in s]
    assert any(s.startswith("UPDATE deliveries") for s in after)  # the outcome, recorded


def test_rows_are_leased_at_insert_only_up_to_the_free_room():
    # Per endpoint: 1 attempt in flight and 1 queued behind it. In all: 2 attempts
    # in flight and 2 queued, so 4 rows.
    settings = {"max_in_flight": 2, "max_in_flight_per_host": 1, "retry_schedule": [0.01]}
    with ExitStack() as stack:
        slow = [stack.enter_context(WebhookReceiver()) for _ in range(3)]
        for receiver in slow:
            receiver.delay(30)  # in flight until the server closes
        server = stack.enter_context(SimpleServer(webhooks=settings))
        client = stack.enter_context(from_uri(server.uri))
        for receiver, count in zip(slow, (3, 3, 1), strict=True):
            for i in range(count):
                client.webhooks.register(receiver.url_for(f"/h{i}"))
        client.create_container("a")  # 7 rows: 2 + 2 leased (each endpoint's room), 3 not

        def leased_per_endpoint() -> list[int]:
            return [
                outbox(
                    server,
                    "SELECT COUNT(*) FROM deliveries JOIN webhooks "
                    "ON webhooks.id = deliveries.webhook_id "
                    "WHERE lease_token IS NOT NULL AND webhooks.url LIKE ?",
                    receiver.url_for("") + "%",
                )[0][0]
                for receiver in slow
            ]

        wait_until(
            lambda: outbox(server, "SELECT COUNT(*) FROM deliveries")[0][0] == 7,
            timeout=5,
            message="the rows are written",
        )
        assert leased_per_endpoint() == [2, 2, 0]
        assert outbox(server, "SELECT COUNT(*) FROM deliveries WHERE lease_token IS NULL") == [(3,)]


def test_a_server_without_a_worker_leases_nothing(tmp_path):
    with WebhookReceiver() as receiver:
        with SimpleServer(tmp_path, webhooks={}) as server, from_uri(server.uri) as client:
            client.webhooks.register(receiver.url)
        # The same directory, now without a worker: nothing is leased at insert.
        from hookbook.config import parse_settings
        from hookbook.server.services import Services

        settings = parse_settings(
            {
                "directory": str(tmp_path),
                "api_keys": [{"key": server.api_key}],
                "webhooks": {
                    "secret_keys": [server.webhook_secret_key],
                    "allow_http": True,
                    "allow_private_addresses": True,
                },
                "run_worker": False,
            }
        )

        async def write() -> None:
            services = await Services.start(settings)
            try:
                await services.store.create("", "offline", "container")
            finally:
                await services.stop()

        asyncio.run(write())
        conn = sqlite3.connect(tmp_path / "hookbook.db")
        try:
            assert conn.execute("SELECT lease_token, attempts FROM deliveries").fetchall() == [
                (None, 0)
            ]
        finally:
            conn.close()


def test_a_write_that_rolls_back_gives_the_room_back(tmp_path):
    """A reservation made inside a transaction that rolls back is returned."""

    async def scenario() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
        from hookbook.db import metadata

        async with db.writer.begin() as conn:
            await conn.run_sync(metadata.create_all)
        undone: list[str] = []
        with pytest.raises(RuntimeError):
            async with db.write() as tx:
                assert isinstance(tx, WriteTransaction)
                tx.after_rollback.append(lambda: undone.append("room"))
                tx.after_commit.append(lambda: undone.append("sent"))
                await tx.execute(sa.select(nodes.c.id))
                raise RuntimeError("the write fails")
        assert undone == ["room"]
        await db.dispose()

    asyncio.run(scenario())
