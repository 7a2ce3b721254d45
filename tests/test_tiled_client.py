"""The real ``tiled`` client (PyPI ``tiled[client]``) against hookbook, unchanged.

One catalog API, two clients: every operation the Tiled client makes works
with correct data, and it produces the same webhook events as hookbook's own
client.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from conftest import require
from hookbook.client import from_uri as hookbook_from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver
from processes import ServeProcess, write_config

# A test dependency: without it the module skips, and fails under CI=true.
tiled_from_uri = require("tiled.client", install="pip install 'tiled[client]'").from_uri
Conflicts = require("tiled.utils").Conflicts


@pytest.fixture
def tiled():
    """Open tiled clients and close them (and their connections) after the test."""
    opened = []

    def connect(uri: str, **kwargs):
        client = tiled_from_uri(uri, **kwargs)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        client.context.close()


@pytest.fixture
def server() -> Iterator[SimpleServer]:
    with SimpleServer(enable_webhooks=True, webhooks={"retry_schedule": [0.01, 0.01]}) as s:
        yield s


def _register(server: SimpleServer, url: str) -> int:
    response = httpx.post(
        f"{server.base_url}/api/v1/webhooks/target/",
        json={"url": url},
        headers={"Authorization": f"Apikey {server.api_key}"},
    )
    response.raise_for_status()
    return response.json()["id"]


def test_every_operation_round_trips(server: SimpleServer, tiled) -> None:
    client = tiled(server.uri)
    arr = np.arange(24, dtype="float32").reshape(4, 6)
    node = client.write_array(arr, key="a", metadata={"sample": "x"}, specs=["detector"])
    np.testing.assert_array_equal(node.read(), arr)
    assert node.read().dtype == np.float32
    np.testing.assert_array_equal(node[1:3, ::2], arr[1:3, ::2])
    np.testing.assert_array_equal(node[-1], arr[-1])
    assert client["a"].metadata["sample"] == "x"
    assert [s.name for s in client["a"].specs] == ["detector"]

    run = client.create_container("run1", metadata={"n": 1})
    df = pd.DataFrame({"x": [1, 2, 3], "y": [0.5, 1.5, 2.5], "s": ["a", "b", "c"]})
    table = run.write_table(df, key="t")
    # Values and numeric dtypes exactly; pandas may pick another string dtype flavour.
    for got in (table.read(), client["run1"]["t"].read()):
        pd.testing.assert_frame_equal(got, df, check_dtype=False)
        assert got["x"].dtype == df["x"].dtype and got["y"].dtype == df["y"].dtype

    run.update_metadata(metadata={"n": 2, "new": True})
    assert dict(client["run1"].metadata) == {"n": 2, "new": True}

    node.patch(np.ones((2, 6), dtype="float32"), offset=4, extend=True)
    grown = client["a"].read()
    assert grown.shape == (6, 6)
    np.testing.assert_array_equal(grown[4:], np.ones((2, 6)))

    node.close_stream()
    with pytest.raises(Conflicts, match="closed"):
        client["a"].patch(np.ones((1, 6), dtype="float32"), offset=6, extend=True)

    assert list(client) == ["a", "run1"]
    assert len(client) == 2
    assert list(client["run1"]) == ["t"]

    client["run1"].delete(recursive=True)
    assert list(client) == ["a"]
    with hookbook_from_uri(server.uri) as ours:
        assert len(ours) == 1


def test_tiled_and_hookbook_clients_send_the_same_events(server: SimpleServer, tiled) -> None:
    with WebhookReceiver() as receiver:
        _register(server, receiver.url)
        tiled_client = tiled(server.uri)
        ours = hookbook_from_uri(server.uri)
        data = np.array([1.0, 2.0, 3.0])
        tiled_client.write_array(data, key="via_tiled", metadata={"m": 1})
        ours.write_array(data, key="via_hookbook", metadata={"m": 1})
        first, second = receiver.wait_for(2, timeout=10)
        server.drain()
        ours.close()
    events = {d.json["key"]: d.json for d in (first, second)}
    a, b = events["via_tiled"], events["via_hookbook"]
    assert a["type"] == b["type"] == "container-child-created"
    assert (
        set(a)
        == set(b)
        == {
            "type",
            "timestamp",
            "key",
            "path",
            "structure_family",
            "specs",
            "metadata",
        }
    )
    for field in ("structure_family", "specs", "metadata"):
        assert a[field] == b[field]
    assert a["path"] == ["via_tiled"] and b["path"] == ["via_hookbook"]
    # One event each: the created event waits for the data, never twice.
    assert len(receiver.deliveries) == 2


def test_tutorial_flow_with_the_tiled_client(server: SimpleServer, tiled) -> None:
    with WebhookReceiver() as receiver:
        client = tiled(server.uri)
        hook_id = _register(server, receiver.url)
        client.write_array(np.array([1.0, 2.0, 3.0]), key="temperature")
        client.write_array(np.array([10, 20, 30]), key="counts")
        deliveries = receiver.wait_for(2, timeout=10)
        assert {d.json["key"] for d in deliveries} == {"temperature", "counts"}
        # A receiver reading the data when the event arrives sees the values.
        for d in deliveries:
            assert client[d.json["key"]].read().tolist() in ([1.0, 2.0, 3.0], [10, 20, 30])
        server.drain()
        history = httpx.get(
            f"{server.base_url}/api/v1/webhooks/history/{hook_id}",
            headers={"Authorization": f"Apikey {server.api_key}"},
        ).json()
    assert [h["outcome"] for h in history] == ["success", "success"]
    assert history[0]["id"] > history[1]["id"]  # newest first


@pytest.mark.slow
def test_a_200_mb_array_through_the_block_routes(server: SimpleServer, tiled) -> None:
    """The tiled client uploads an array over 100 MB block by block, on the grid
    it declared; hookbook places the blocks onto its own chunks, announces the
    array once the last block is in, and reports its own chunks for block reads."""
    data = np.random.default_rng(0).standard_normal((26_000, 1_000))  # 208 MB
    store = server.app.state.services.store
    blocks: list[tuple[int, ...]] = []
    write_block = store.write_block

    async def counting(path, block, body):
        blocks.append(tuple(block))
        return await write_block(path, block, body)

    store.write_block = counting
    with WebhookReceiver() as receiver:
        _register(server, receiver.url)
        client = tiled(server.uri)
        node = client.write_array(data, key="big")
        (created,) = receiver.wait_for(1, timeout=30)
        server.drain()
    assert created.json["type"] == "container-child-created"
    assert len(receiver.deliveries) == 1  # announced once, after the last block
    assert sorted(blocks) == [(0, 0), (1, 0), (2, 0)]  # the client's grid: 12,500-row blocks

    fresh = client["big"]
    chunks = fresh.structure().chunks
    assert len(chunks[0]) > 1 and chunks[1] == (1_000,)  # hookbook's grid: whole rows
    assert sum(chunks[0]) == 26_000
    np.testing.assert_array_equal(fresh.read(), data)  # over 100 MB: several requests
    rows = chunks[0][0]
    np.testing.assert_array_equal(fresh.read_block((1, 0)), data[rows : 2 * rows])
    np.testing.assert_array_equal(fresh[12_345], data[12_345])

    # Writing a block of the grid the structure reports replaces just that block.
    fresh.write_block(np.zeros((rows, 1_000)), block=(2, 0))
    expected = data.copy()
    expected[2 * rows : 3 * rows] = 0
    np.testing.assert_array_equal(client["big"].read(), expected)
    assert node.structure().shape == (26_000, 1_000)


def test_a_partitioned_appendable_table(server: SimpleServer, tiled) -> None:
    """Tiled's logical partitions: npartitions declared at creation, append_partition(N),
    reads of range(npartitions); closing the stream compacts each partition."""
    import pyarrow as pa
    from tiled.client.utils import ClientError

    client = tiled(server.uri)
    schema = pa.schema([("x", pa.int64()), ("y", pa.float64())])
    table = client.create_appendable_table(schema, npartitions=3, key="t")
    table.append_partition(0, pd.DataFrame({"x": [1, 2], "y": [0.5, 1.5]}))
    table.append_partition(2, pd.DataFrame({"x": [5], "y": [5.5]}))
    table.append_partition(0, pd.DataFrame({"x": [3], "y": [2.5]}))
    with pytest.raises(ClientError, match="partition 3 does not exist"):
        table.append_partition(3, pd.DataFrame({"x": [9], "y": [9.0]}))

    def check(node) -> None:
        assert node.structure().npartitions == 3
        assert node.read_partition(0)["x"].tolist() == [1, 2, 3]
        assert node.read_partition(1)["x"].tolist() == []
        assert node.read_partition(2)["y"].tolist() == [5.5]
        whole = node.read()
        assert whole["x"].tolist() == [1, 2, 3, 5]
        assert whole["y"].tolist() == [0.5, 1.5, 2.5, 5.5]

    check(client["t"])
    store = server.app.state.services.store
    node = server.run(store.get("t"))
    pieces = server.run(_fragment_locations(store, node.id))
    assert len(pieces) == 3
    table.close_stream()
    after = server.run(_fragment_locations(store, node.id))
    assert len(after) == 2 and after[1] == pieces[2]  # partition 0 merged; 2 as it was
    check(client["t"])


async def _fragment_locations(store, node_id: int) -> list[str]:
    import sqlalchemy as sa

    from hookbook.db import fragments

    async with store.db.read() as conn:
        query = (
            sa.select(fragments.c.location)
            .where(fragments.c.node_id == node_id)
            .order_by(fragments.c.partition, fragments.c.id)
        )
        return list((await conn.execute(query)).scalars())


def test_tiled_client_against_hookbook_serve(tmp_path: Path, tiled) -> None:
    config = write_config(
        tmp_path / "config.yml",
        database=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hookbook.db'}",
        directory=tmp_path / "data",
        api_key="servetestkey1",
    )
    with ServeProcess(config) as proc:
        proc.wait_ready()
        client = tiled(f"{proc.base_url}/api/v1", api_key="servetestkey1")
        node = client.write_array(np.eye(3), key="eye")
        np.testing.assert_array_equal(node.read(), np.eye(3))
        assert list(client) == ["eye"]


@pytest.mark.parametrize(
    ("method", "route", "feature"),
    [
        ("POST", "register/x", "registering external files"),
        ("GET", "revisions/x", "metadata revisions"),
        ("GET", "awkward/full/x", "awkward arrays"),
        ("GET", "node/full/x", "exporting"),
    ],
)
def test_unsupported_tiled_routes_say_so(
    server: SimpleServer, method: str, route: str, feature: str
) -> None:
    response = httpx.request(
        method,
        f"{server.base_url}/api/v1/{route}",
        headers={"Authorization": f"Apikey {server.api_key}"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert feature in response.json()["detail"]
