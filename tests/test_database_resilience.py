"""Dropped database connections: no pre-ping, yet no failed request for a stale pool.

A transaction whose connection turns out dead before ``COMMIT`` is sent runs
once more (:meth:`hookbook.db.Database.transaction`); one that failed later
is never run twice. On PostgreSQL, pooled connections the server has closed
are replaced at checkout, so requests after ``pg_terminate_backend`` succeed.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conftest import wait_until
from hookbook.client import from_uri
from hookbook.db import Database, is_transient, metadata, nodes
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver
from tcp_proxy import TcpProxy


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


# --------------------------------------------------------------------------- #
# A real outage: the server talks to PostgreSQL through a proxy the test cuts
# --------------------------------------------------------------------------- #


def _through(proxy: TcpProxy, pg_url: str) -> str:
    return make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "1"
    assert "database is unavailable" in response.json()["detail"]


@pytest.mark.postgres
def test_a_database_outage_is_503_writes_nothing_half_and_recovers(pg_url):
    target = make_url(pg_url)
    container = {"structure_family": "container", "metadata": {}, "specs": []}
    with (
        TcpProxy((target.host, target.port)) as proxy,
        WebhookReceiver() as receiver,
        SimpleServer(
            database=_through(proxy, pg_url), webhooks={"retry_schedule": [0.01]}
        ) as server,
        httpx.Client(
            base_url=f"{server.base_url}/api/v1",
            headers={"Authorization": f"Apikey {server.api_key}"},
            timeout=60,
        ) as http,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        assert http.post("metadata/", json={**container, "id": "before"}).status_code == 200
        receiver.wait_for(1, timeout=10)
        server.drain()

        # Cut in the middle of a write: its statements reached PostgreSQL, its
        # COMMIT never does, and every connection (and reconnection) is reset.
        proxy.cut_before(b"COMMIT")
        _assert_unavailable(http.post("metadata/", json={**container, "id": "during"}))
        assert proxy.is_cut
        _assert_unavailable(http.get("metadata/before"))  # a read
        _assert_unavailable(http.post("metadata/", json={**container, "id": "during"}))

        proxy.restore()
        recovered = wait_until(
            lambda: http.get("metadata/before").status_code == 200,
            timeout=30,
            message="reads answer again once the database is back",
        )
        assert recovered
        # Nothing half-written: the cut write left no node, no event, no delivery.
        assert sorted(client.keys()) == ["before"]
        assert [d.payload["key"] for d in client.webhooks.history(hook.id)] == ["before"]
        # Writes work again, and are delivered once each.
        assert http.post("metadata/", json={**container, "id": "after"}).status_code == 200
        assert sorted(client.keys()) == ["after", "before"]
        receiver.wait_for(2, timeout=30)
        server.drain(timeout=30)
        assert [d.key for d in receiver.deliveries] == ["before", "after"]
        history = client.webhooks.history(hook.id)
        assert [(d.payload["key"], d.outcome) for d in history] == [
            ("after", "success"),
            ("before", "success"),
        ]
        assert proxy.cuts == 1
