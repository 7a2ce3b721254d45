"""The catalog on PostgreSQL, where writers really run at once: racing creates,
appends, closes and first writes each land exactly once, and readers never see
a missing file. The same races run on SQLite too, where one writer at a time
must give the same answers."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import sqlalchemy as sa

from hookbook.client import from_uri
from hookbook.db import event_log
from hookbook.errors import AlreadyExistsError, ConflictError, NotFoundError, StreamClosedError
from hookbook.server import SimpleServer
from test_store import empty_database, pg_module_url  # noqa: F401 - a shared PG database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest):
    database = None
    if request.param == "postgres":
        database = request.getfixturevalue("pg_module_url")
        asyncio.run(empty_database(database))
    with SimpleServer(database=database) as srv:
        yield srv


def event_types(server: SimpleServer, path: str) -> list[str]:
    async def fetch():
        async with server.app.state.services.db.read() as conn:
            query = (
                sa.select(event_log.c.type).where(event_log.c.path == path).order_by(event_log.c.id)
            )
            return list((await conn.execute(query)).scalars())

    return server.run(fetch())


def gather(server: SimpleServer, coroutines):
    """Run coroutines at once on the server's loop; their results or exceptions."""

    async def run_all():
        return await asyncio.gather(*coroutines, return_exceptions=True)

    return server.run(run_all())


def test_concurrent_appends_from_many_clients_all_land(server):
    client = from_uri(server.uri)
    array = client.write_array(np.zeros((1, 2)), key="a")
    table = client.write_table({"x": [0]}, key="t")

    def append(i: int) -> None:
        with from_uri(server.uri) as other:
            other["a"].append(np.full((1, 2), float(i)))
            other["t"].append({"x": [i]})

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(append, range(1, 13)))
    got = array.read()
    assert got.shape == (13, 2)
    assert sorted(got[:, 0].tolist()) == [float(i) for i in range(13)]
    assert (got[:, 0] == got[:, 1]).all()
    assert sorted(table.read()["x"].tolist()) == list(range(13))
    assert event_types(server, "a") == ["container-child-created"]
    client.close()


def test_concurrent_creates_of_one_key_give_one_node_and_409s(server):
    store = server.app.state.services.store
    results = gather(server, [store.create("", "same", "container") for _ in range(8)])
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == 1
    assert len(refused) == 7
    assert all(isinstance(r, AlreadyExistsError) for r in refused), refused
    assert event_types(server, "same") == ["container-child-created"]


def test_concurrent_closes_record_one_event(server):
    with from_uri(server.uri) as client:
        client.write_array([1, 2], key="a")
    store = server.app.state.services.store
    results = gather(server, [store.close_stream("a") for _ in range(6)])
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, StreamClosedError) for r in results if isinstance(r, BaseException))
    assert event_types(server, "a") == ["container-child-created", "stream-closed"]


def test_concurrent_first_writes_announce_once(server):
    store = server.app.state.services.store
    structure = {
        "data_type": {"endianness": "little", "kind": "i", "itemsize": 8},
        "chunks": [[3]],
        "shape": [3],
    }
    server.run(store.create("", "a", "array", structure=structure))
    payloads = [np.full(3, i, dtype="<i8").tobytes() for i in range(6)]
    results = gather(server, [store.write_array("a", p) for p in payloads])
    assert not [r for r in results if isinstance(r, BaseException)]
    assert event_types(server, "a") == ["container-child-created"]
    with from_uri(server.uri) as client:
        values = client["a"].read()
    assert len(set(values.tolist())) == 1  # one whole write won, not a mix
    # Each write replaced the one before; the replaced ones go after the grace period.
    server.run(store.reap(now=time.time() + store.settings.retire_after))
    assert len(list((server.directory / "data").iterdir())) == 1


def test_readers_never_fail_while_a_stream_grows(server):
    with from_uri(server.uri) as client:
        client.write_array(np.zeros(1), key="a")
        client.write_table({"x": [0]}, key="t")
    stop = threading.Event()
    problems: list[BaseException] = []
    lengths: dict[int, list[int]] = {0: [], 1: []}

    def read_forever(number: int) -> None:
        with from_uri(server.uri) as reader:
            while not stop.is_set():
                try:
                    lengths[number].append(len(reader["a"].read()))
                    reader["t"].read()
                except BaseException as exc:
                    problems.append(exc)
                    return

    readers = [threading.Thread(target=read_forever, args=(n,)) for n in lengths]
    for thread in readers:
        thread.start()
    try:
        with from_uri(server.uri) as writer:
            for i in range(1, 16):
                writer["a"].append([float(i)])
                writer["t"].append({"x": [i]})
    finally:
        stop.set()
        for thread in readers:
            thread.join(30)
    assert problems == []
    for seen in lengths.values():
        assert seen, "a reader read nothing"
        assert seen == sorted(seen), "a reader saw the stream shrink"
        assert set(seen) <= set(range(1, 17))


@pytest.mark.postgres
def test_a_restart_on_postgres_keeps_the_catalog(pg_url, tmp_path):
    with SimpleServer(tmp_path, database=pg_url) as first, from_uri(first.uri) as client:
        client.create_container("run", metadata={"n": 1}).write_array([1, 2], key="a")
    with SimpleServer(tmp_path, database=pg_url) as second, from_uri(second.uri) as client:
        assert client["run"].metadata == {"n": 1}
        assert client["run/a"].read().tolist() == [1, 2]
        assert second.app.state.services.db.sqlite is False


@pytest.fixture
def pg_server(pg_module_url):  # noqa: F811 - the shared database fixture
    asyncio.run(empty_database(pg_module_url))
    with SimpleServer(database=pg_module_url) as srv:
        yield srv


async def _until_a_query_waits_on_a_lock(db, timeout: float = 10.0) -> None:
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + timeout
    while True:
        async with db.read() as conn:
            if (await conn.execute(query)).scalar_one():
                return
        assert time.monotonic() < deadline, "no query waited on a lock"
        await asyncio.sleep(0.01)


def _held_inside(store, segments: tuple[str, ...]):
    """An ``on_event`` hook that holds the transaction of the change at ``segments``
    open (its rows written, not committed) until ``release`` is set."""
    inside, release = asyncio.Event(), asyncio.Event()

    async def hook(tx, row_id, event_type, at):
        if at == segments:
            inside.set()
            await release.wait()

    return hook, inside, release


@pytest.mark.postgres
def test_a_child_created_while_its_container_is_deleted_without_recursive_refuses_it(
    pg_server, monkeypatch
):
    store = pg_server.app.state.services.store
    pg_server.run(store.create("", "run", "container"))

    async def race():
        hook, inside, release = _held_inside(store, ("run", "late"))
        monkeypatch.setattr(store, "on_event", hook)
        creating = asyncio.create_task(store.create("run", "late", "container"))
        await inside.wait()
        deleting = asyncio.create_task(store.delete("run"))
        await _until_a_query_waits_on_a_lock(store.db)  # the delete waits for the child
        release.set()
        await creating
        return await asyncio.gather(deleting, return_exceptions=True)

    (outcome,) = pg_server.run(race())
    assert isinstance(outcome, ConflictError), outcome
    assert pg_server.run(store.get("run/late")).path == ("run", "late")


@pytest.mark.postgres
def test_a_child_created_while_its_container_is_being_deleted_finds_no_container(
    pg_server, monkeypatch
):
    store = pg_server.app.state.services.store
    pg_server.run(store.create("", "run", "container"))

    async def race():
        hook, inside, release = _held_inside(store, ("run",))
        monkeypatch.setattr(store, "on_event", hook)
        deleting = asyncio.create_task(store.delete("run"))
        await inside.wait()
        creating = asyncio.create_task(store.create("run", "late", "container"))
        await _until_a_query_waits_on_a_lock(store.db)  # the create waits for the delete
        release.set()
        await deleting
        return await asyncio.gather(creating, return_exceptions=True)

    (outcome,) = pg_server.run(race())
    assert isinstance(outcome, NotFoundError), outcome  # not a foreign-key violation (500)


def test_an_append_does_not_wait_for_another_nodes_write(server, monkeypatch):
    """A write holds its own node's lock while it writes its bytes, not anyone else's."""
    client = from_uri(server.uri)
    client.write_array(np.zeros((1, 2)), key="a")
    slow_node = client.write_array(np.zeros((1, 2)), key="b")
    store = server.app.state.services.store
    slow_location = server.run(store.get("b")).data_location
    release, writing = threading.Event(), threading.Event()
    real_write = store.storage.arrays.write

    async def held_write(location, shape, region, data):
        if location == slow_location:
            writing.set()
            await asyncio.to_thread(release.wait, 30)
        await real_write(location, shape, region, data)

    monkeypatch.setattr(store.storage.arrays, "write", held_write)
    slow = threading.Thread(target=lambda: slow_node.append(np.ones((1, 2))))
    slow.start()
    try:
        assert writing.wait(10), "the write to b did not start"
        client["a"].append(np.ones((1, 2)))  # while b's write is held
        assert client["a"].read().shape == (2, 2)
        assert client["b"].read().shape == (1, 2)  # b's append is not visible yet
    finally:
        release.set()
        slow.join(30)
    assert client["b"].read().shape == (2, 2)
    client.close()
