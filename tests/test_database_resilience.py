"""Dropped database connections: no pre-ping, yet no failed request for a stale pool.

A transaction whose connection turns out dead before ``COMMIT`` is sent runs
once more (:meth:`hookbook.db.Database.transaction`); one that failed later
is never run twice. On PostgreSQL, pooled connections the server has closed
are replaced at checkout, so requests after ``pg_terminate_backend`` succeed.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from hookbook.client import from_uri
from hookbook.db import Database, is_transient, metadata, nodes
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver


def dropped() -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError(
        "SELECT 1", None, ConnectionResetError("gone"), connection_invalidated=True
    )


async def sqlite_db(tmp_path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with db.writer.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return db


def test_a_transaction_runs_again_once_when_its_connection_dropped_before_commit(tmp_path):
    async def scenario() -> list[int]:
        db = await sqlite_db(tmp_path)
        runs: list[int] = []

        async def body(tx):  # type: ignore[no-untyped-def]
            runs.append(1)
            await tx.execute(sa.select(nodes.c.id))
            if len(runs) == 1:
                raise dropped()
            return len(runs)

        try:
            assert await db.transaction(body) == 2
        finally:
            await db.dispose()
        return runs

    assert len(asyncio.run(scenario())) == 2


def test_it_runs_again_only_once_and_never_for_other_errors(tmp_path):
    async def scenario() -> None:
        db = await sqlite_db(tmp_path)
        calls = {"dropped": 0, "bug": 0}

        async def always_dropped(tx):  # type: ignore[no-untyped-def]
            calls["dropped"] += 1
            raise dropped()

        async def bug(tx):  # type: ignore[no-untyped-def]
            calls["bug"] += 1
            raise sa.exc.ProgrammingError("SELECT", None, ValueError("bad statement"))

        try:
            with pytest.raises(sa.exc.DBAPIError):
                await db.transaction(always_dropped)
            with pytest.raises(sa.exc.ProgrammingError):
                await db.transaction(bug)
        finally:
            await db.dispose()
        assert calls == {"dropped": 2, "bug": 1}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("error", "worth_retrying"),
    [
        (dropped(), True),
        (sa.exc.OperationalError("BEGIN", None, Exception("database is locked")), True),
        (ConnectionRefusedError(), True),
        (sa.exc.IntegrityError("INSERT", None, Exception("unique")), False),
        (sa.exc.ProgrammingError("SELECT", None, Exception("syntax")), False),
        (ValueError("a bug"), False),
    ],
)
def test_which_database_errors_are_worth_retrying(error, worth_retrying):
    assert is_transient(error) is worth_retrying


async def _terminate(pg_url: str) -> int:
    import asyncpg

    from hookbook.webhooks.listener import asyncpg_dsn

    dsn = asyncpg_dsn(pg_url)
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        rows = await conn.fetch(
            # With a timeout, it returns once each backend has exited (PostgreSQL 14+).
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        return len(rows)
    finally:
        await conn.close()


@pytest.mark.postgres
def test_requests_after_the_server_dropped_every_connection_succeed(pg_url):
    with (
        WebhookReceiver() as receiver,
        SimpleServer(database=pg_url, webhooks={"retry_schedule": [0.01]}) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url)
        for key in ("a", "b", "c"):
            client.create_container(key)
        receiver.wait_for(3, timeout=10)
        server.drain()
        assert asyncio.run(_terminate(pg_url)) > 0
        # Every pooled connection is dead now; the next requests still answer 200.
        for key in ("d", "e", "f"):
            client.create_container(key)
        assert sorted(client.keys()) == ["a", "b", "c", "d", "e", "f"]
        receiver.wait_for(6, timeout=10)
        server.drain()
