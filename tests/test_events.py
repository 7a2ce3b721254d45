"""Catalog events: recorded in the change's own transaction, with exactly the
payload fields of DESIGN.md, never for a change that rolls back, and only
once the data they announce is readable."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Response

from conftest import wait_until
from hookbook.client import from_uri
from hookbook.db import event_log, nodes
from hookbook.errors import HookbookError, StreamClosedError
from hookbook.server import SimpleServer
from test_store import empty_database, pg_module_url  # noqa: F401 - a shared PG database

CREATED = {"type", "timestamp", "key", "path", "structure_family", "specs", "metadata"}
UPDATED = {"type", "timestamp", "key", "path", "specs", "metadata"}
BARE = {"type", "timestamp", "key", "path"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest):
    database = None
    if request.param == "postgres":
        database = request.getfixturevalue("pg_module_url")
        asyncio.run(empty_database(database))
    with SimpleServer(database=database) as srv:
        yield srv


@pytest.fixture
def sqlite_server():
    with SimpleServer() as srv:
        yield srv


def headers(server: SimpleServer) -> dict[str, str]:
    return {"Authorization": f"Apikey {server.api_key}"}


def event_rows(server: SimpleServer) -> list[dict]:
    """The events table, oldest first: type, path column, decoded body, row time."""

    async def fetch():
        async with server.app.state.services.db.read() as conn:
            return (await conn.execute(sa.select(event_log).order_by(event_log.c.id))).all()

    return [
        {"type": r.type, "path": r.path, "body": json.loads(r.body), "time": r.time_created}
        for r in server.run(fetch())
    ]


def node_rows(server: SimpleServer) -> dict[str, tuple]:
    async def fetch():
        async with server.app.state.services.db.read() as conn:
            return (await conn.execute(sa.select(nodes))).all()

    return {
        r.path: (r.metadata, r.specs, r.structure, r.data_location, r.announced, r.stream_closed)
        for r in server.run(fetch())
    }


def data_files(server: SimpleServer) -> set[str]:
    folder = server.directory / "data"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def parse_timestamp(text: str) -> datetime:
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert stamp.utcoffset() == timedelta(0), text
    assert text.endswith(("Z", "+00:00")), text
    return stamp


# ---- payloads -------------------------------------------------------------------


def test_every_change_records_its_event_with_the_design_fields(server):
    client = from_uri(server.uri)
    before = datetime.now(UTC)
    run = client.create_container("run1", metadata={"scan": 1}, specs=["raw"])
    det = run.write_array(np.arange(3), key="det", metadata={"m": 1}, specs=[{"name": "s"}])
    det.append([3, 4])  # appends record no event
    det.update_metadata(metadata={"m": 2}, specs=["s2"])
    det.close_stream()
    run.write_dataframe(pd.DataFrame({"x": [1]}), key="tbl")
    run.delete()
    after = datetime.now(UTC)
    client.close()

    rows = event_rows(server)
    assert [(r["type"], r["path"]) for r in rows] == [
        ("container-child-created", "run1"),
        ("container-child-created", "run1/det"),
        ("container-child-metadata-updated", "run1/det"),
        ("stream-closed", "run1/det"),
        ("container-child-created", "run1/tbl"),
        ("container-child-deleted", "run1"),
    ]
    bodies = [r["body"] for r in rows]
    assert set(bodies[0]) == CREATED
    assert bodies[0] | {"timestamp": None} == {
        "type": "container-child-created",
        "timestamp": None,
        "key": "run1",
        "path": ["run1"],
        "structure_family": "container",
        "specs": [{"name": "raw", "version": None}],
        "metadata": {"scan": 1},
    }
    assert set(bodies[1]) == CREATED
    assert bodies[1] | {"timestamp": None} == {
        "type": "container-child-created",
        "timestamp": None,
        "key": "det",
        "path": ["run1", "det"],
        "structure_family": "array",
        "specs": [{"name": "s", "version": None}],
        "metadata": {"m": 1},
    }
    assert set(bodies[2]) == UPDATED
    assert bodies[2] | {"timestamp": None} == {
        "type": "container-child-metadata-updated",
        "timestamp": None,
        "key": "det",
        "path": ["run1", "det"],
        "specs": [{"name": "s2", "version": None}],
        "metadata": {"m": 2},
    }
    assert set(bodies[3]) == BARE
    assert bodies[3] | {"timestamp": None} == {
        "type": "stream-closed",
        "timestamp": None,
        "key": "det",
        "path": ["run1", "det"],
    }
    assert bodies[4]["structure_family"] == "table"
    assert bodies[4]["path"] == ["run1", "tbl"]
    assert set(bodies[5]) == BARE
    assert bodies[5] | {"timestamp": None} == {
        "type": "container-child-deleted",
        "timestamp": None,
        "key": "run1",
        "path": ["run1"],
    }
    stamps = [parse_timestamp(b["timestamp"]) for b in bodies]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] and stamps[-1] <= after
    for row, stamp in zip(rows, stamps, strict=True):
        assert row["time"] == stamp


def test_arrays_and_tables_are_announced_only_by_their_first_data_write(sqlite_server):
    server = sqlite_server
    base = f"{server.base_url}/api/v1"
    with httpx.Client(headers=headers(server)) as http:
        body = {
            "id": "a",
            "structure_family": "array",
            "metadata": {},
            "specs": [],
            "data_sources": [
                {
                    "structure_family": "array",
                    "structure": {
                        "data_type": {"endianness": "little", "kind": "i", "itemsize": 8},
                        "chunks": [[2]],
                        "shape": [2],
                    },
                    "assets": [],
                    "management": "writable",
                }
            ],
        }
        assert http.post(f"{base}/metadata/", json=body).status_code == 200
        assert event_rows(server) == []
        # Declared but not written: reading it is a clear 409, not zeros.
        response = http.get(f"{base}/array/full/a")
        assert response.status_code == 409
        assert "no data has been written" in response.json()["detail"]
        # Deleting a node that was never announced announces nothing either.
        assert http.delete(f"{base}/metadata/a").status_code == 200
        assert event_rows(server) == []

        assert http.post(f"{base}/metadata/", json=body).status_code == 200
        put = http.put(
            f"{base}/array/full/a",
            content=np.array([5, 6], dtype="<i8").tobytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert put.status_code == 200, put.text
        assert [r["type"] for r in event_rows(server)] == ["container-child-created"]
        # Writing it again (a full replace) is not a second creation.
        http.put(f"{base}/array/full/a", content=np.array([7, 8], dtype="<i8").tobytes())
        assert len(event_rows(server)) == 1


# ---- the same transaction -------------------------------------------------------


def test_event_and_change_commit_together(server):
    """Inside the hook the change is visible on the transaction's own connection
    and invisible to a separate reader: one transaction holds both."""
    store = server.app.state.services.store
    db = server.app.state.services.db
    seen: list[tuple] = []

    async def hook(tx, row_id, event_type, segments):
        path = "/".join(segments)
        own = (await tx.conn.execute(sa.select(nodes.c.id).where(nodes.c.path == path))).first()
        own_event = (
            await tx.conn.execute(sa.select(event_log.c.type).where(event_log.c.id == row_id))
        ).scalar_one()
        async with db.read() as other:
            outside = (
                await other.execute(sa.select(nodes.c.id).where(nodes.c.path == path))
            ).first()
            outside_event = (
                await other.execute(sa.select(event_log.c.id).where(event_log.c.id == row_id))
            ).first()
        seen.append((event_type, own is not None, own_event, outside, outside_event))

    store.on_event = hook
    with from_uri(server.uri) as client:
        client.create_container("c")
    assert seen == [("container-child-created", True, "container-child-created", None, None)]
    assert [r["type"] for r in event_rows(server)] == ["container-child-created"]


async def _failing_hook(tx, row_id, event_type, segments):
    raise RuntimeError("injected failure in on_event")


@pytest.mark.parametrize("how", ["record", "on_event"])
def test_failed_writes_record_nothing_and_leave_no_file(server, monkeypatch, how):
    store = server.app.state.services.store
    client = from_uri(server.uri)
    run = client.create_container("run", metadata={"v": 1})
    arr = run.write_array(np.arange(3), key="arr")
    run.write_table({"x": [1]}, key="tbl")
    arr.append([3])
    # A declared array with no data yet: its first write would announce it.
    declared = server.run(
        store.create(
            "run", "fresh", "array", structure=arr.structure | {"shape": [2], "chunks": [[2]]}
        )
    )
    assert declared.data_location is None and not declared.announced

    before_events = event_rows(server)
    before_nodes = node_rows(server)
    before_files = data_files(server)

    async def failing_record(tx, event):
        raise RuntimeError("injected failure while recording the event")

    if how == "record":
        monkeypatch.setattr(store, "_record", failing_record)
    else:
        monkeypatch.setattr(store, "on_event", _failing_hook)

    attempts = {
        "create container": lambda: store.create("run", "new", "container", metadata={"a": 1}),
        "first array write": lambda: store.write_array(["run", "fresh"], np.zeros(2).tobytes()),
        "update metadata": lambda: store.update_metadata("run/arr", metadata={"changed": True}),
        "close stream": lambda: store.close_stream("run/arr"),
        "delete": lambda: store.delete("run", recursive=True),
    }
    for name, make in attempts.items():
        with pytest.raises(RuntimeError, match="injected"):
            server.run(make())
        assert event_rows(server) == before_events, name
        assert node_rows(server) == before_nodes, name
        assert data_files(server) == before_files, name

    monkeypatch.undo()
    # Nothing half-done: the catalog works on, from where it was.
    assert arr.read().tolist() == [0, 1, 2, 3]
    assert run.keys() == ["arr", "tbl", "fresh"]
    arr.close_stream()
    assert event_rows(server)[-1]["type"] == "stream-closed"
    client.close()


def test_a_transaction_that_fails_at_commit_keeps_old_data_and_files(server, monkeypatch):
    """Every write path (appends included, which record no event) cleans up the
    new file when its transaction does not commit."""
    db = server.app.state.services.db
    client = from_uri(server.uri)
    arr = client.write_array(np.arange(4), key="arr")
    tbl = client.write_table({"x": [1, 2]}, key="tbl")
    before_events = event_rows(server)
    before_nodes = node_rows(server)
    before_files = data_files(server)
    location = node_rows(server)["arr"][3]
    zarr_json = (server.directory / location / "zarr.json").read_text()
    real_write = db.write

    @asynccontextmanager
    async def write_then_fail():
        async with real_write() as tx:
            yield tx
            raise RuntimeError("injected failure before commit")

    monkeypatch.setattr(db, "write", write_then_fail)
    for name, call in {
        "array append": lambda: arr.append([9]),
        "array replace": lambda: server.run(
            server.app.state.services.store.write_array("arr", np.ones(4, dtype=int).tobytes())
        ),
        "table append": lambda: tbl.append({"x": [3]}),
        "create": lambda: client.create_container("c"),
        "metadata": lambda: arr.update_metadata(metadata={"x": 1}),
    }.items():
        with pytest.raises((HookbookError, RuntimeError)):
            call()
        assert event_rows(server) == before_events, name
        assert node_rows(server) == before_nodes, name
        assert data_files(server) == before_files, name
    # An outside reader of the zarr folder never sees the append that did not commit.
    assert (server.directory / location / "zarr.json").read_text() == zarr_json
    monkeypatch.undo()
    assert arr.read().tolist() == [0, 1, 2, 3]
    assert tbl.read()["x"].tolist() == [1, 2]
    client.close()


# ---- data before event ----------------------------------------------------------


def test_a_reader_at_the_moment_of_the_event_sees_the_data(sqlite_server):
    server = sqlite_server
    store = server.app.state.services.store
    url = f"{server.base_url}/api/v1"
    seen: dict[str, object] = {}
    threads: list[threading.Thread] = []
    tasks: list[asyncio.Task] = []

    def read_over_http(path: str) -> None:
        with httpx.Client(headers=headers(server)) as http:
            seen[f"http {path}"] = http.get(f"{url}/array/full/{path}")

    async def read_from_store(path: tuple[str, ...]) -> None:
        node = await store.get(path)
        seen[f"store {'/'.join(path)}"] = await store.read_array(node, (slice(None),))

    async def hook(tx, row_id, event_type, segments):
        path = "/".join(segments)
        row = (await tx.conn.execute(sa.select(nodes).where(nodes.c.path == path))).first()
        if row.structure_family != "array":
            return
        # The data the event announces is already in place, complete.
        shape = tuple(row.structure["shape"])
        seen[f"file {path}"] = await store.storage.arrays.read(
            row.data_location, shape, (slice(None),)
        )
        loop = asyncio.get_running_loop()

        def after_commit() -> None:
            tasks.append(loop.create_task(read_from_store(segments)))
            thread = threading.Thread(target=read_over_http, args=(path,))
            threads.append(thread)
            thread.start()

        tx.after_commit.append(after_commit)

    store.on_event = hook
    values = np.array([1.5, 2.5, 3.5])
    with from_uri(server.uri) as client:
        client.create_container("run")
        client["run"].write_array(values, key="det")
    wait_until(lambda: len(seen) == 3, timeout=10, message=f"reads so far: {sorted(seen)}")
    for thread in threads:
        thread.join(10)
    np.testing.assert_array_equal(seen["file run/det"], values)
    np.testing.assert_array_equal(seen["store run/det"], values)
    response = seen["http run/det"]
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(np.frombuffer(response.content, dtype=values.dtype), values)


def test_a_webhook_receiver_that_reads_at_once_sees_the_data():
    """End to end: the receiver's handler reads the array over HTTP while
    answering the delivery."""
    reads: list[tuple[str, int, bytes]] = []
    with (
        HTTPServer(host="127.0.0.1", port=0) as receiver,
        SimpleServer(webhooks={"retry_schedule": [0.01, 0.01]}) as server,
    ):

        def handler(request):
            payload = json.loads(request.data)
            path = "/".join(payload["path"])
            if payload["structure_family"] == "array":
                got = httpx.get(
                    f"{server.base_url}/api/v1/array/full/{path}", headers=headers(server)
                )
                reads.append((path, got.status_code, got.content))
            else:
                got = httpx.get(
                    f"{server.base_url}/api/v1/table/full/{path}", headers=headers(server)
                )
                reads.append((path, got.status_code, got.content))
            return Response("ok")

        receiver.expect_request("/hook", method="POST").respond_with_handler(handler)
        with from_uri(server.uri) as client:
            client.webhooks.register(receiver.url_for("/hook"), events=["container-child-created"])
            client.write_array(np.array([7, 8, 9], dtype=np.int32), key="a")
            client.write_table({"x": [1, 2]}, key="t")
        wait_until(lambda: len(reads) == 2, timeout=10, message=f"reads: {reads}")
        server.drain()
    by_path = {path: (status, content) for path, status, content in reads}
    assert by_path["a"] == (200, np.array([7, 8, 9], dtype=np.int32).tobytes())
    assert by_path["t"][0] == 200
    import pyarrow as pa

    table = pa.ipc.open_file(pa.BufferReader(by_path["t"][1])).read_all()
    assert table.column("x").to_pylist() == [1, 2]


# ---- streams --------------------------------------------------------------------


def test_streams_close_once_and_then_refuse_data(sqlite_server):
    server = sqlite_server
    with from_uri(server.uri) as client:
        arr = client.write_array(np.zeros((2, 2)), key="a")
        tbl = client.write_table({"x": [1]}, key="t")
        arr.close_stream()
        tbl.close_stream()
        for node in (arr, tbl):
            with pytest.raises(StreamClosedError, match="already closed"):
                node.close_stream()
        with pytest.raises(StreamClosedError, match="takes no more data"):
            arr.append(np.ones((1, 2)))
        with pytest.raises(StreamClosedError, match="takes no more data"):
            tbl.append({"x": [2]})
        assert arr.read().shape == (2, 2)
        assert tbl.read()["x"].tolist() == [1]
    closed = [r["body"]["path"] for r in event_rows(server) if r["type"] == "stream-closed"]
    assert closed == [["a"], ["t"]]


def test_event_names_have_one_home():
    from hookbook import events as ev

    # The subscribable names (request bodies, history filters, the dashboard) are
    # the event types without ping, in the same order.
    assert (*ev.CATALOG_EVENT_TYPES, "ping") == tuple(t.value for t in ev.EventType)
