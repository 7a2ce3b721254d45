"""The catalog store on SQLite and PostgreSQL: the node tree, metadata, specs,
creation times, and arrays and tables read back exactly (client and HTTP).

Every test here runs twice, once per backend (the ``server`` fixture); the
PostgreSQL run is marked ``postgres``.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from datetime import UTC, datetime

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from conftest import _admin, _pg_base, _unavailable
from hookbook.client import ArrayNode, Container, TableNode, from_uri
from hookbook.db import fragments, nodes
from hookbook.errors import ConflictError
from hookbook.server import SimpleServer


@pytest.fixture(scope="module")
def pg_module_url():
    """One PostgreSQL database for this module's tests (each test empties it first):
    creating and dropping a database per test would cost more than the tests."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        _unavailable("asyncpg is not installed (install hookbook[postgres])")
    name = f"hookbook_test_store_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        _unavailable(f"cannot create a database at {_pg_base()}: {exc}")
    yield _pg_base().rsplit("/", 1)[0] + "/" + name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def empty_database(url: str) -> None:
    """Empty every hookbook table (test_events and test_postgres use it too)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(
            "TRUNCATE nodes, events, webhooks, deliveries, attempts, retired_data "
            "RESTART IDENTITY CASCADE"
        )
    except asyncpg.UndefinedTableError:
        pass  # the first test: no schema yet
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest):
    database = None
    if request.param == "postgres":
        database = request.getfixturevalue("pg_module_url")
        asyncio.run(empty_database(database))
    with SimpleServer(database=database) as srv:
        yield srv


@pytest.fixture
def client(server: SimpleServer):
    with from_uri(server.uri) as root:
        yield root


@pytest.fixture
def http(server: SimpleServer):
    headers = {"Authorization": f"Apikey {server.api_key}"}
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers=headers) as h:
        yield h


def node_rows(server: SimpleServer) -> dict[str, object]:
    """Every row of the nodes table, by path."""

    async def fetch():
        async with server.app.state.services.db.read() as conn:
            return (await conn.execute(sa.select(nodes))).all()

    return {row.path: row for row in server.run(fetch())}


def assert_same_array(got: np.ndarray, expected: np.ndarray) -> None:
    """Same dtype (byte order included), same shape, same bits."""
    assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
    assert got.dtype.byteorder == expected.dtype.byteorder or expected.dtype.itemsize == 1
    assert got.shape == expected.shape
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(expected).tobytes()
    np.testing.assert_array_equal(got, expected)


# ---- the tree -------------------------------------------------------------------


def test_tree_of_containers_arrays_and_tables(server, client):
    run = client.create_container("run1")
    det = run.create_container("det")
    det.write_array(np.arange(4), key="image")
    run.write_dataframe(pd.DataFrame({"x": [1, 2]}), key="table")
    client.write_array([1.0, 2.0], key="top")

    assert client.keys() == ["run1", "top"]
    assert list(client) == ["run1", "top"]
    assert len(client) == 2
    assert "run1" in client and "nope" not in client
    assert run.keys() == ["det", "table"]
    assert len(run) == 2
    assert det.keys() == ["image"]

    assert isinstance(client["run1"], Container)
    assert isinstance(client["run1"]["table"], TableNode)
    assert isinstance(client["run1/det/image"], ArrayNode)
    assert isinstance(client[["run1", "det", "image"]], ArrayNode)
    assert client["run1/det/image"].path == ["run1", "det", "image"]
    assert [n.key for n in run.values()] == ["det", "table"]
    assert [(k, n.structure_family) for k, n in run.items()] == [
        ("det", "container"),
        ("table", "table"),
    ]

    rows = node_rows(server)
    assert set(rows) == {"", "run1", "run1/det", "run1/det/image", "run1/table", "top"}
    assert rows["run1/det"].parent_id == rows["run1"].id
    assert rows["run1/det/image"].parent_id == rows["run1/det"].id
    assert rows["run1"].parent_id == rows[""].id
    assert rows["run1/table"].structure_family == "table"
    # A fresh client sees the same tree (nothing is cached on the server side).
    with from_uri(server.uri) as other:
        assert other["run1"]["det"]["image"].read().tolist() == [0, 1, 2, 3]


def test_metadata_and_specs_round_trip(server, client):
    metadata = {
        "sample": "Fe₂O₃",
        "temperature": 295.5,
        "count": 3,
        "ok": True,
        "missing": None,
        "nested": {"list": [1, "two", {"three": 3.0}], "empty": {}},
    }
    specs = ["raw", {"name": "NXdata", "version": "3.1"}, {"name": "bare"}]
    expected_specs = [
        {"name": "raw", "version": None},
        {"name": "NXdata", "version": "3.1"},
        {"name": "bare", "version": None},
    ]
    container = client.create_container("c", metadata=metadata, specs=specs)
    array = client.write_array(np.zeros(2), key="a", metadata=metadata, specs=["one"])
    table = client.write_table({"x": [1]}, key="t", specs=[{"name": "two", "version": "1"}])

    assert container.metadata == metadata
    assert container.specs == expected_specs
    assert array.metadata == metadata
    assert array.specs == [{"name": "one", "version": None}]
    assert table.metadata == {}
    assert table.specs == [{"name": "two", "version": "1"}]
    with from_uri(server.uri) as other:
        assert other["c"].metadata == metadata
        assert other["c"].specs == expected_specs
    stored = server.run(server.app.state.services.store.get("c"))
    assert stored.metadata == metadata
    assert stored.specs == expected_specs


def test_update_metadata_replaces_what_is_given(server, client):
    node = client.write_array([1, 2], key="a", metadata={"a": 1, "b": 2}, specs=["s1"])
    node.update_metadata(metadata={"c": 3})
    assert node.metadata == {"c": 3}
    assert node.specs == [{"name": "s1", "version": None}]
    node.update_metadata(specs=["s2", {"name": "s3", "version": "9"}])
    assert node.metadata == {"c": 3}
    assert node.specs == [{"name": "s2", "version": None}, {"name": "s3", "version": "9"}]
    fresh = client["a"]
    assert fresh.metadata == {"c": 3}
    assert fresh.specs == node.specs
    # Updating metadata leaves the data alone.
    assert fresh.read().tolist() == [1, 2]


def test_creation_time_is_recorded_in_utc(server, client):
    store = server.app.state.services.store
    before = datetime.now(UTC)
    client.create_container("c")
    client.write_array([1], key="a")
    after = datetime.now(UTC)
    for path in ("c", "a"):
        node = server.run(store.get(path))
        assert node.time_created.utcoffset().total_seconds() == 0
        assert before <= node.time_created <= after
    created = server.run(store.get("c")).time_created
    client["c"].update_metadata(metadata={"x": 1})
    updated = server.run(store.get("c"))
    assert updated.time_created == created
    assert updated.time_updated >= created


def test_store_children_pages_in_creation_order(server, client):
    for key in ["b", "a", "d", "c", "e"]:
        client.create_container(key)
    store = server.app.state.services.store
    first, count = server.run(store.children("", offset=0, limit=2))
    rest, _ = server.run(store.children("", offset=2, limit=10))
    assert count == 5
    assert [n.key for n in first] == ["b", "a"]
    assert [n.key for n in rest] == ["d", "c", "e"]


# ---- arrays ---------------------------------------------------------------------

ARRAYS = {
    "bool": np.array([True, False, True]),
    "bool 0-d": np.array(True),
    "int8": np.array([-128, 0, 127], dtype=np.int8),
    "uint16": np.array([0, 1, 65535], dtype=np.uint16),
    "int32 little": np.arange(5, dtype="<i4"),
    "int64 big-endian 2-d": np.arange(6, dtype=">i8").reshape(2, 3),
    "uint64 max": np.array([np.iinfo(np.uint64).max], dtype=np.uint64),
    "float16": np.array([0.5, -1.0], dtype=np.float16),
    "float32": np.array([1.5, -0.0, np.inf], dtype=np.float32),
    "float64 big-endian nan": np.array([np.nan, 1e300, -1e-300], dtype=">f8"),
    "float64 0-d": np.array(42.5),
    "complex64": np.array([1 + 2j, -3.5j], dtype=np.complex64),
    "complex128 big-endian": np.array([[1 + 1j, 2], [3, 4 - 4j]], dtype=">c16"),
    "datetime64[ns]": np.array(["2024-01-02T03:04:05.123456789", "NaT"], dtype="datetime64[ns]"),
    "datetime64[D]": np.array(["1970-01-01", "2999-12-31"], dtype="datetime64[D]"),
    "datetime64[10s] big-endian": np.array(["2024-01-01T00:00:10"], dtype=">M8[10s]"),
    "timedelta64[ms]": np.array([1, -2], dtype="timedelta64[ms]"),
    "unicode": np.array(["a", "héllo", ""]),
    "bytes": np.array([b"ab", b"c"]),
    "empty 1-d": np.array([], dtype=np.float64),
    "empty 2-d": np.zeros((0, 3), dtype=np.int16),
    "empty middle axis": np.zeros((2, 0, 2), dtype=np.uint8),
    "3-d": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "fortran order": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "non-contiguous view": np.arange(10)[::3],
}


def test_arrays_read_back_exactly(server, client, http):
    for i, (name, expected) in enumerate(ARRAYS.items()):
        key = f"a{i}"
        node = client.write_array(expected, key=key, metadata={"case": name})
        assert node.shape == expected.shape, name
        assert node.dtype == expected.dtype, name
        assert_same_array(node.read(), expected)
        # Through HTTP: raw C-order bytes of the declared dtype.
        response = http.get(f"/array/full/{key}")
        assert response.status_code == 200, (name, response.text)
        assert response.content == np.ascontiguousarray(expected).tobytes(), name
    # A fresh client (nothing cached) reads them all back the same.
    with from_uri(server.uri) as fresh:
        for i, expected in enumerate(ARRAYS.values()):
            node = fresh[f"a{i}"]
            assert node.structure["shape"] == list(expected.shape)
            assert_same_array(node.read(), expected)


def test_array_written_from_array_likes(client):
    assert_same_array(client.write_array([1, 2, 3], key="list").read(), np.array([1, 2, 3]))
    assert_same_array(client.write_array((1.5, 2.5), key="tuple").read(), np.array([1.5, 2.5]))
    assert_same_array(
        client.write_array([[True], [False]], key="nested").read(), np.array([[True], [False]])
    )
    assert_same_array(client.write_array(7, key="scalar").read(), np.array(7))
    assert_same_array(
        client.write_array(memoryview(np.arange(3, dtype=np.int16)), key="buffer").read(),
        np.arange(3, dtype=np.int16),
    )


def test_array_slicing(client, http):
    data = np.arange(60, dtype=">f4").reshape(3, 4, 5)
    node = client.write_array(data, key="cube")
    for key in [
        np.s_[1],
        np.s_[-1],
        np.s_[0:2],
        np.s_[::2],
        np.s_[1, 2:4],
        np.s_[..., 0],
        np.s_[:, 1, ::-2],
        np.s_[2, 3, 4],
        np.s_[5:],
    ]:
        assert_same_array(node[key], np.asarray(data[key], dtype=data.dtype))
    response = http.get("/array/full/cube", params={"slice": "0:2:1,1,::2"})
    assert response.content == np.ascontiguousarray(data[0:2, 1, ::2]).tobytes()


# ---- tables ---------------------------------------------------------------------


def sample_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": np.array([1, 2, 3], dtype=np.int64),
            "f": [1.5, np.nan, -2.0],
            "b": [True, False, True],
            "s": ["a", None, "ç"],
            "n": pd.array([1, None, 3], dtype="Int32"),
            "t": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
        }
    )


def read_ipc(content: bytes) -> pa.Table:
    return pa.ipc.open_file(pa.BufferReader(content)).read_all()


def test_table_reads_back_exactly(client, http):
    df = sample_frame()
    node = client.write_dataframe(df, key="t", metadata={"kind": "frame"})
    assert node.columns == ["i", "f", "b", "s", "n", "t"]
    back = node.read()
    pd.testing.assert_frame_equal(back, df)
    assert back["s"].isna().tolist() == [False, True, False]
    assert back["n"].isna().tolist() == [False, True, False]
    assert pd.isna(back["t"][1])

    expected = pa.Table.from_pandas(df, preserve_index=False)
    for route, params in [("/table/full/t", {}), ("/table/partition/t", {"partition": 0})]:
        response = http.get(route, params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/vnd.apache.arrow.file")
        got = read_ipc(response.content)
        assert got.schema.equals(expected.schema, check_metadata=False)
        assert got.equals(expected)
    one = read_ipc(http.get("/table/full/t", params={"column": ["s", "i"]}).content)
    assert one.column_names == ["s", "i"]
    assert one.column("s").to_pylist() == ["a", None, "ç"]


def test_table_from_dict_and_arrow(client):
    node = client.write_table({"x": [1, 2], "y": ["a", "b"]}, key="d")
    assert node.read().to_dict("list") == {"x": [1, 2], "y": ["a", "b"]}
    arrow = pa.table(
        {
            "u8": pa.array([1, None], pa.uint8()),
            "f32": pa.array([0.5, 1.5], pa.float32()),
            "bin": pa.array([b"\x00", b"\xff"], pa.binary()),
        }
    )
    node = client.write_table(arrow, key="arrow")
    assert node.read_arrow().equals(arrow)
    assert node.read_arrow(["f32"]).column_names == ["f32"]


def test_table_append_adds_rows(client):
    node = client.write_dataframe(sample_frame(), key="t")
    more = sample_frame().iloc[:1]
    node.append(more)
    back = node.read()
    assert len(back) == 4
    pd.testing.assert_frame_equal(
        back, pd.concat([sample_frame(), more], ignore_index=True), check_dtype=True
    )


def test_delete_removes_rows_and_data_files(server, client):
    run = client.create_container("run")
    run.write_array(np.arange(3), key="a")
    run.write_table({"x": [1]}, key="t")
    client.write_array([1], key="keep")
    data_dir = server.directory / "data"
    assert len(list(data_dir.iterdir())) == 3
    run.delete()
    assert client.keys() == ["keep"]
    assert set(node_rows(server)) == {"", "keep"}
    store = server.app.state.services.store
    # Retired, not removed: a read in flight may still need the files.
    assert len(list(data_dir.iterdir())) == 3
    assert server.run(store.reap()) == 0
    assert server.run(store.reap(now=time.time() + store.settings.retire_after)) == 2
    assert len(list(data_dir.iterdir())) == 1
    assert client["keep"].read().tolist() == [1]


def test_a_container_with_children_is_deleted_only_when_asked(server, client):
    """The rule lives in the store, checked in the deletion's own transaction."""
    store = server.app.state.services.store
    client.create_container("run").write_array([1], key="a")
    client.create_container("empty")
    with pytest.raises(ConflictError, match="recursive=true"):
        server.run(store.delete("run"))
    assert set(node_rows(server)) == {"", "run", "run/a", "empty"}
    assert server.run(store.delete("empty")) == 1  # an empty container needs no flag
    assert server.run(store.delete("run", recursive=True)) == 2
    assert set(node_rows(server)) == {""}


def test_data_files_are_standard_formats(server, client):
    import pyarrow.parquet as pq
    import zarr

    client.write_array(np.arange(4, dtype=">i2"), key="a")
    client["a"].append(np.arange(4, 6, dtype=">i2"))
    client.write_table({"x": [1, 2]}, key="t")
    rows = node_rows(server)
    array = zarr.open_array(server.directory / rows["a"].data_location, mode="r")
    np.testing.assert_array_equal(array[:], np.arange(6))
    assert [tuple(s) for s in rows["a"].structure["chunks"]] == [(6,)]

    async def fragments_of_t():
        async with server.app.state.services.db.read() as conn:
            query = sa.select(fragments.c.location).where(fragments.c.node_id == rows["t"].id)
            return list((await conn.execute(query)).scalars())

    (location,) = server.run(fragments_of_t())
    table = pq.read_table(io.BytesIO((server.directory / location).read_bytes()))
    assert table.column("x").to_pylist() == [1, 2]
