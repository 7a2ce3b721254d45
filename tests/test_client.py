"""hookbook's Python client: connection, navigation, writing, streams, typed errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from hookbook.client import ArrayNode, Container, TableNode, from_uri
from hookbook.config import Limits
from hookbook.db import nodes
from hookbook.errors import (
    AlreadyExistsError,
    ClientInputError,
    ConflictError,
    NotAStreamError,
    NotFoundError,
    PayloadTooLargeError,
    StreamClosedError,
)
from hookbook.server import SimpleServer


@pytest.fixture
def server():
    with SimpleServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    with from_uri(server.uri) as root:
        yield root


def test_from_uri_forms(server):
    with from_uri(server.uri) as root:
        assert isinstance(root, Container)
        assert root.path == [] and root.key == ""
        assert root.structure_family == "container"
    bare = f"{server.base_url}/api/v1"
    with from_uri(bare, api_key=server.api_key) as root:
        assert root.keys() == []
    with from_uri(f"{server.base_url}/api/v1/", api_key=server.api_key) as root:
        assert len(root) == 0
    # An api_key argument overrides the one in the URI.
    with pytest.raises(Exception) as info:
        from_uri(server.uri, api_key="not-the-key-at-all")
    assert info.value.status_code == 401


def test_client_closes(server):
    root = from_uri(server.uri)
    root.create_container("c")
    root.close()
    assert root._transport.http.is_closed
    with pytest.raises(RuntimeError):
        root.keys()


def test_works_inside_a_running_event_loop(server):
    """A Jupyter cell runs inside an event loop: the client must still work."""

    async def cell():
        with from_uri(server.uri) as root:
            root.write_array([1, 2, 3], key="x")
            return root["x"].read().tolist()

    assert asyncio.run(cell()) == [1, 2, 3]


def test_navigation_and_paging(server, client):
    db = server.app.state.services.db

    async def many():  # more than one page (100), in one transaction: fast
        stamp = datetime.now(UTC)
        async with db.write() as tx:
            root = (await tx.execute(sa.select(nodes.c.id).where(nodes.c.path == ""))).scalar()
            rows = [
                {
                    "parent_id": root,
                    "key": f"n{i:03d}",
                    "path": f"n{i:03d}",
                    "structure_family": "container",
                    "metadata": {},
                    "specs": [],
                    "structure": None,
                    "data_file": None,
                    "stream_closed": False,
                    "time_created": stamp,
                    "time_updated": stamp,
                }
                for i in range(105)
            ]
            await tx.execute(nodes.insert(), rows)

    server.run(many())
    keys = client.keys()
    assert len(keys) == 105
    assert keys == [f"n{i:03d}" for i in range(105)]
    assert len(client) == 105
    assert list(client) == keys
    assert "n104" in client
    assert "nope" not in client
    assert 42 not in client
    assert [n.key for n in client.values()][-2:] == ["n103", "n104"]


def test_indexing_paths_and_node_types(client):
    run = client.create_container("run", metadata={"m": 1})
    inner = run.create_container("inner")
    inner.write_array(np.arange(3), key="a")
    inner.write_table({"x": [1]}, key="t")
    assert isinstance(client["run"], Container)
    assert isinstance(client["run/inner/a"], ArrayNode)
    assert isinstance(client["run"]["inner"]["t"], TableNode)
    assert client[("run", "inner", "a")].path == ["run", "inner", "a"]
    assert client["run"].metadata == {"m": 1}
    with pytest.raises(NotFoundError, match="no node at path 'run/missing'"):
        client["run/missing"]


def test_write_array_returns_a_readable_node(client):
    data = np.arange(20, dtype=">u2").reshape(4, 5)
    node = client.write_array(data, key="a", metadata={"unit": "counts"}, specs=["raw"])
    assert isinstance(node, ArrayNode)
    assert node.shape == (4, 5)
    assert node.dtype == np.dtype(">u2")
    assert node.metadata == {"unit": "counts"}
    assert node.specs == [{"name": "raw", "version": None}]
    np.testing.assert_array_equal(node.read(), data)
    np.testing.assert_array_equal(node[1:3, ::2], data[1:3, ::2])
    np.testing.assert_array_equal(node[-1], data[-1])
    assert node[2, 3] == data[2, 3]
    assert "shape=(4, 5)" in repr(node)
    dims = client.write_array(np.zeros((2, 2)), key="d", dims=["y", "x"])
    assert dims.structure["dims"] == ["y", "x"]


def test_write_array_refuses_unsupported_dtypes_without_leaving_a_node(client):
    with pytest.raises(TypeError, match="object"):
        client.write_array(np.array([{"a": 1}], dtype=object), key="bad")
    with pytest.raises(TypeError, match="structured"):
        client.write_array(np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), key="bad")
    assert client.keys() == []


def test_a_refused_upload_takes_the_declaration_back(server, client):
    server.app.state.services.store.limits = Limits(max_data_bytes=2000)
    with pytest.raises(PayloadTooLargeError, match="limit is 2000"):
        client.write_array(np.zeros(1000), key="big")
    assert client.keys() == []
    small = client.write_array(np.zeros(10), key="small")
    assert small.shape == (10,)


def test_write_table_from_dataframe_dict_and_arrow(client):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    node = client.write_dataframe(df, key="df", metadata={"k": "v"})
    assert isinstance(node, TableNode)
    assert node.columns == ["a", "b"]
    pd.testing.assert_frame_equal(node.read(), df)
    pd.testing.assert_frame_equal(node.read(["b"]), df[["b"]])
    assert client.write_table({"c": [1.5]}, key="dict").read()["c"].tolist() == [1.5]
    arrow = pa.table({"d": pa.array([1, None], pa.int16())})
    assert client.write_table(arrow, key="arrow").read_arrow().equals(arrow)
    assert "columns=['a', 'b']" in repr(node)


def test_array_stream_append_and_close(server, client):
    node = client.write_array(np.array([1.0, 2.0]), key="s")
    node.append([3.0])
    node.append(np.array([4.0, 5.0]))
    node.append(6)
    assert node.shape == (6,)
    np.testing.assert_array_equal(node.read(), [1, 2, 3, 4, 5, 6])
    # Another client sees the appended data at once.
    with from_uri(server.uri) as other:
        np.testing.assert_array_equal(other["s"].read(), [1, 2, 3, 4, 5, 6])
        other["s"].append([7.0])
    np.testing.assert_array_equal(node.read(), [1, 2, 3, 4, 5, 6, 7])
    node.close_stream()
    with pytest.raises(StreamClosedError, match="'s' is closed: it takes no more data"):
        node.append([8.0])
    with pytest.raises(StreamClosedError, match="'s' is already closed"):
        node.close_stream()
    assert node.read().shape == (7,)


def test_array_append_2d_rows(client):
    node = client.write_array(np.zeros((1, 3), dtype=np.int64), key="img")
    node.append(np.ones((2, 3), dtype=np.int64))
    node.append([2, 2, 2])  # one row
    assert node.shape == (4, 3)
    assert node.read().tolist() == [[0, 0, 0], [1, 1, 1], [1, 1, 1], [2, 2, 2]]
    with pytest.raises(ValueError, match=r"rows must have shape \(3,\)"):
        node.append(np.ones((1, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="rows must have shape"):
        node.append(np.ones((1, 1, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="rows must have shape"):
        node.append(np.ones(6, dtype=np.int64))  # not silently reshaped into two rows
    assert node.refresh().shape == (4, 3)
    named = client.write_array(np.zeros((1, 2)), key="named", dims=["time", "x"])
    named.append(np.ones((2, 2)))
    assert named.refresh().structure["dims"] == ["time", "x"]  # kept by appends
    assert named.shape == (3, 2)
    scalar = client.write_array(np.array(1.5), key="scalar")
    with pytest.raises(ValueError, match="0-d"):
        scalar.append([1.0])


def test_table_stream_append_and_close(client):
    node = client.write_dataframe(pd.DataFrame({"x": [1], "y": ["a"]}), key="t")
    node.append(pd.DataFrame({"x": [2, 3], "y": ["b", None]}))
    node.append({"x": [4], "y": ["d"]})
    back = node.read()
    assert back["x"].tolist() == [1, 2, 3, 4]
    assert back["y"].tolist()[:2] == ["a", "b"] and pd.isna(back["y"][2])
    with pytest.raises(ClientInputError, match="columns"):
        node.append({"z": [1]})
    node.close_stream()
    with pytest.raises(StreamClosedError):
        node.append({"x": [5], "y": ["e"]})
    assert len(node.read()) == 4


def test_containers_are_not_streams(client):
    run = client.create_container("run")
    with pytest.raises(AttributeError):
        run.append  # noqa: B018
    # Through the route, as any client would call it.
    with pytest.raises(NotAStreamError, match="container"):
        run._transport.request("DELETE", "stream/close/run")


def test_update_metadata_and_refresh(server, client):
    node = client.create_container("c", metadata={"a": 1})
    with from_uri(server.uri) as other:
        other["c"].update_metadata(metadata={"a": 2})
    assert node.metadata == {"a": 1}  # cached until refreshed
    assert node.refresh().metadata == {"a": 2}


def test_delete_from_the_client(client):
    run = client.create_container("run")
    run.write_array([1], key="a")
    run.create_container("sub").write_table({"x": [1]}, key="t")
    client.write_array([2], key="b")
    client["b"].delete()
    assert client.keys() == ["run"]
    run.delete()  # a container with everything below it
    assert client.keys() == []
    with pytest.raises(NotFoundError):
        run.refresh()


def test_server_errors_come_back_typed_with_the_server_message(client):
    client.create_container("c")
    with pytest.raises(AlreadyExistsError, match="'c' already exists") as info:
        client.create_container("c")
    assert isinstance(info.value, ConflictError)
    assert info.value.status_code == 409
    assert info.value.context == {"path": ["c"]}
    with pytest.raises(NotFoundError, match="no node at path 'nope'"):
        client["nope"]
    with pytest.raises(ClientInputError, match="'/'"):
        client.create_container("a/b")


def test_repr_html(client):
    node = client.write_array([1, 2], key="a", specs=["s"], metadata={"m": "<b>"})
    html = node._repr_html_()
    assert "<table>" in html and "array" in html
    assert "&lt;b&gt;" in html  # escaped
    assert repr(client) == "<Container '/'>"
