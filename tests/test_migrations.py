"""Schema migrations: an older database is upgraded when a server opens it,
keeping its data; a new one is created at the head revision directly."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from hookbook.client import from_uri
from hookbook.db import Database, UTCDateTime, event_log, metadata, nodes
from hookbook.errors import ConfigurationError
from hookbook.migrations import HEAD_REVISION, alembic_config, prepare_database
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver


def sqlite_url(directory) -> str:
    return f"sqlite+aiosqlite:///{directory / 'hookbook.db'}"


async def _run_on(url: str, work):
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def run_on(url: str, work):
    return asyncio.run(_run_on(url, work))


#: The nodes table as revision 0001 made it (db.py describes the newest).
NODES_0001 = sa.Table(
    "nodes",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("parent_id", sa.Integer),
    sa.Column("key", sa.String(255)),
    sa.Column("path", sa.Text),
    sa.Column("structure_family", sa.String(16)),
    sa.Column("metadata", sa.JSON),
    sa.Column("specs", sa.JSON),
    sa.Column("structure", sa.JSON),
    sa.Column("data_file", sa.Text),
    sa.Column("stream_closed", sa.Boolean),
    sa.Column("time_created", UTCDateTime),
    sa.Column("time_updated", UTCDateTime),
)


async def _make_old_database(conn) -> None:
    """A catalog at revision 0001 (before webhooks) with a node and an event in it."""
    await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
    old_nodes = NODES_0001
    stamp = datetime.now(UTC)  # recent: older events may be pruned by retention
    common = {"specs": [], "structure": None, "data_file": None, "stream_closed": False}
    # No explicit ids: on PostgreSQL they would leave the sequences behind.
    root = await conn.execute(
        old_nodes.insert().values(
            parent_id=None,
            key="",
            path="",
            structure_family="container",
            metadata={},
            time_created=stamp,
            time_updated=stamp,
            **common,
        )
    )
    await conn.execute(
        old_nodes.insert().values(
            parent_id=root.inserted_primary_key[0],
            key="legacy",
            path="legacy",
            structure_family="container",
            metadata={"from": "0001"},
            time_created=stamp,
            time_updated=stamp,
            **common,
        )
    )
    await conn.execute(
        event_log.insert().values(
            type="container-child-created",
            path="legacy",
            body='{"type": "container-child-created"}',
            time_created=stamp,
        )
    )


async def _state(conn) -> dict:
    def inspect(sync_conn):
        return sorted(sa.inspect(sync_conn).get_table_names())

    return {
        "revision": (
            await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        ).scalar(),
        "tables": await conn.run_sync(inspect),
        "nodes": [
            tuple(r) for r in (await conn.execute(sa.select(nodes.c.path, nodes.c.metadata)))
        ],
        "events": (await conn.execute(sa.select(sa.func.count()).select_from(event_log))).scalar(),
    }


async def _schema_diff(conn) -> list:
    return await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))


ALL_TABLES = [
    "alembic_version",
    "attempts",
    "deliveries",
    "events",
    "fragments",
    "nodes",
    "retired_data",
    "ui_sessions",
    "ui_signin_tokens",
    "upload_blocks",
    "webhooks",
]


def check_upgrade(url: str, directory) -> None:
    run_on(url, _make_old_database)
    before = run_on(url, _state)
    assert before["revision"] == "0001"
    assert "webhooks" not in before["tables"]

    hooks = {"retry_schedule": [0.01]}
    with (
        WebhookReceiver() as receiver,
        SimpleServer(directory, database=url, webhooks=hooks) as server,
    ):
        with from_uri(server.uri) as client:
            assert client.keys() == ["legacy"]
            assert client["legacy"].metadata == {"from": "0001"}
            # The tables of 0002 work: a webhook delivers.
            client.webhooks.register(receiver.url)
            client["legacy"].write_array(np.arange(3), key="new")
        (delivery,) = receiver.wait_for(1, timeout=10)
        server.drain()
    assert delivery.json["path"] == ["legacy", "new"]

    after = run_on(url, _state)
    assert after["revision"] == HEAD_REVISION
    assert after["tables"] == ALL_TABLES
    assert ("legacy", {"from": "0001"}) in after["nodes"]
    assert ("legacy/new", {}) in after["nodes"]
    assert after["events"] == 2
    # The upgraded schema is the schema a new database gets.
    assert run_on(url, _schema_diff) == []


def test_a_sqlite_database_at_0001_is_upgraded_keeping_its_data(tmp_path):
    check_upgrade(sqlite_url(tmp_path), tmp_path)


@pytest.mark.postgres
def test_a_postgres_database_at_0001_is_upgraded_keeping_its_data(pg_url, tmp_path):
    check_upgrade(pg_url, tmp_path)


def check_new_database(url: str) -> None:
    async def prepare_twice():
        db = Database(url)
        try:
            return await prepare_database(db), await prepare_database(db)
        finally:
            await db.dispose()

    assert asyncio.run(prepare_twice()) == ("created", "current")
    state = run_on(url, _state)
    assert state["revision"] == HEAD_REVISION
    assert state["tables"] == ALL_TABLES
    assert run_on(url, _schema_diff) == []


def test_a_new_sqlite_database_is_created_at_head(tmp_path):
    check_new_database(sqlite_url(tmp_path))
    with SimpleServer(tmp_path) as server, from_uri(server.uri) as client:
        client.create_container("c")
    assert run_on(sqlite_url(tmp_path), _state)["revision"] == HEAD_REVISION


@pytest.mark.postgres
def test_a_new_postgres_database_is_created_at_head(pg_url):
    check_new_database(pg_url)


def test_migrations_reach_the_same_schema_as_a_new_database(tmp_path):
    """Every revision applied in turn gives exactly the tables of db.py."""
    url = sqlite_url(tmp_path)
    run_on(url, lambda conn: conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head")))
    assert run_on(url, _state)["revision"] == HEAD_REVISION
    assert run_on(url, _schema_diff) == []


def test_the_head_revision_is_the_newest_script():
    from alembic.script import ScriptDirectory

    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        script = ScriptDirectory.from_config(alembic_config(conn))
        assert script.get_current_head() == HEAD_REVISION


def test_tables_without_a_revision_are_refused_clearly(tmp_path):
    async def bare_tables(conn):
        await conn.run_sync(metadata.create_all)

    run_on(sqlite_url(tmp_path), bare_tables)
    with pytest.raises(ConfigurationError, match="no alembic_version"):
        SimpleServer(tmp_path)


def test_a_database_from_a_newer_hookbook_is_refused_clearly(tmp_path):
    async def from_the_future(conn):
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    run_on(sqlite_url(tmp_path), from_the_future)
    with pytest.raises(ConfigurationError, match=r"revision '9999'.*newer hookbook"):
        SimpleServer(tmp_path)
