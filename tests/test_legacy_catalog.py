"""A directory written by hookbook 5067661 (``.npy`` arrays, one Parquet file per
table, the schema at revision 0002) opens after the upgrade and reads back
exactly; its arrays are converted to zarr and its tables keep their files as
the first fragment. ``tests/data/legacy_catalog.py`` made it and says what it holds."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from hookbook.client import from_uri
from hookbook.db import fragments, nodes
from hookbook.server import SimpleServer

sys.path.insert(0, str(Path(__file__).parent / "data"))
import legacy_catalog as legacy


@pytest.fixture
def server(tmp_path):
    directory = tmp_path / "catalog"
    shutil.copytree(legacy.DIRECTORY, directory)  # never change the committed copy
    with SimpleServer(directory, api_key=legacy.API_KEY) as srv:
        yield srv


def rows(server: SimpleServer) -> dict[str, object]:
    async def fetch():
        async with server.app.state.services.db.read() as conn:
            found = (await conn.execute(sa.select(nodes))).all()
            pieces = (await conn.execute(sa.select(fragments))).all()
            return found, pieces

    found, pieces = server.run(fetch())
    by_id = {row.id: row.path for row in found}
    return {row.path: row for row in found}, {by_id[p.node_id]: p for p in pieces}


def test_the_old_catalog_reads_back_exactly(server):
    with from_uri(server.uri) as client:
        assert client.keys() == ["run1", "flags", "scalar", "times", "names", "empty", "summary"]
        for path, expected in legacy.arrays().items():
            got = client[path].read()
            assert got.dtype == expected.dtype, path
            assert got.shape == expected.shape, path
            assert got.tobytes() == expected.tobytes(), path
        for path, columns in legacy.tables().items():
            assert client[path].read().to_dict("list") == columns, path
        for path, metadata in legacy.METADATA.items():
            assert client[path].metadata == metadata
        for path, specs in legacy.SPECS.items():
            assert [s["name"] for s in client[path].specs] == specs
    found, pieces = rows(server)
    assert {p for p, r in found.items() if r.stream_closed} == legacy.CLOSED
    assert all(r.announced for r in found.values())
    # Arrays are zarr now; each table's old Parquet file is its partition 0.
    for path in legacy.arrays():
        assert found[path].data_location.endswith(".zarr"), path
    for path in legacy.tables():
        assert pieces[path].partition == 0 and pieces[path].location.endswith(".parquet")


def test_old_streams_take_appends_and_slices(server):
    with from_uri(server.uri) as client:
        counts = client["run1/counts"]
        counts.append(np.array([7, 8], dtype=">i4"))
        assert counts.read().tolist() == list(range(9))
        assert counts[2:5].tolist() == [2, 3, 4]
        client["summary"].append({"n": [30]})
        assert client["summary"].read()["n"].tolist() == [10, 20, 30]
        image = legacy.arrays()["run1/image"]
        np.testing.assert_array_equal(client["run1/image"][1:3, ::-1], image[1:3, ::-1])


def test_the_old_files_are_retired_then_removed(server):
    store = server.app.state.services.store
    data = server.directory / "data"
    assert len(list(data.glob("*.npy"))) == len(legacy.arrays())  # in the grace period
    server.run(store.reap(now=float("inf")))
    assert list(data.glob("*.npy")) == []
    assert len(list(data.glob("*.parquet"))) == len(legacy.tables())
