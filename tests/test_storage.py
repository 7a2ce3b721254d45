"""The storage layer: zarr arrays chunked along the first axis (an append writes
only its own chunks, a slice reads only the chunks it needs), Parquet
fragments, the sweep, and zarr imported only when an array is touched."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pytest

from hookbook.protocol import parse_slice
from hookbook.storage import open_storage
from hookbook.storage.arrays import CHUNK_BYTES, chunk_lengths, chunk_shape

MB = CHUNK_BYTES
run = asyncio.run


@pytest.mark.parametrize(
    "shape,itemsize,expected",
    [
        ((), 8, ()),
        ((3,), 8, (MB // 8,)),
        ((0, 100_000), 8, (1, 100_000)),
        ((10, 1000), 8, (MB // 8000, 1000)),
        ((5, 0), 4, (MB, 1)),  # a zero-length axis still has a chunk length of 1
        ((2, 4096, 4096), 1, (1, MB // 4096, 4096)),  # rows over 1 MiB: split further
    ],
)
def test_chunks_hold_whole_rows_up_to_the_target(shape, itemsize, expected):
    assert chunk_shape(shape, itemsize) == expected


def test_chunk_lengths_as_tiled_lists_them():
    assert chunk_lengths((10, 3), (4, 3)) == ((4, 4, 2), (3,))
    assert chunk_lengths((8,), (4,)) == ((4, 4),)
    assert chunk_lengths((0, 3), (4, 3)) == ((0,), (3,))


@pytest.fixture
def storage(tmp_path):
    return open_storage(tmp_path)


def chunk_files(storage, location):
    folder = storage.backend.directory / location / "c"
    return {
        p.relative_to(folder).as_posix(): p.stat().st_ino for p in folder.rglob("*") if p.is_file()
    }


def test_an_append_writes_only_its_own_chunks(storage):
    rows = np.random.default_rng(0).standard_normal((7, MB // 8 // 2))  # two rows per chunk
    arrays = storage.arrays
    location = run(arrays.create(rows.dtype, (5, rows.shape[1]), None))
    run(arrays.write(location, (5, rows.shape[1]), (slice(0, 5), slice(None)), rows[:5]))
    before = chunk_files(storage, location)
    assert sorted(before) == ["0/0", "1/0", "2/0"]
    run(arrays.write(location, (7, rows.shape[1]), (slice(5, 7), slice(None)), rows[5:]))
    after = chunk_files(storage, location)
    # The full chunks are untouched (same files); the partial one is rewritten; one is new.
    assert after["0/0"] == before["0/0"] and after["1/0"] == before["1/0"]
    assert after["2/0"] != before["2/0"]
    assert sorted(after) == ["0/0", "1/0", "2/0", "3/0"]
    np.testing.assert_array_equal(
        run(arrays.read(location, (7, rows.shape[1]), parse_slice(None, (7, rows.shape[1])))), rows
    )


def test_a_slice_reads_only_the_chunks_it_needs(storage):
    data = np.arange(40 * 1000, dtype="<f8").reshape(40, 1000)
    arrays = storage.arrays
    location = run(arrays.create(data.dtype, data.shape, None))
    run(arrays.write(location, data.shape, (slice(None), slice(None)), data))
    per_chunk = run(arrays.chunk_shape(location))[0]
    assert per_chunk == MB // 8000
    # Spoil every chunk but the one holding rows 0..per_chunk-1: reading them would fail.
    for name in chunk_files(storage, location):
        if name != "0/0":
            (storage.backend.directory / location / "c" / name).write_bytes(b"garbage")
    for text in ("3", "0:5", "5:0:-2", "0:3,10:20:3", "..., 7"):
        key = parse_slice(text, data.shape)
        np.testing.assert_array_equal(run(arrays.read(location, data.shape, key)), data[key])


@pytest.mark.parametrize("dtype", ["<i4", ">f8", "|b1", "<M8[ns]", ">U3", "|S4", "|V2", "<c16"])
def test_every_supported_dtype_round_trips(storage, dtype):
    values = np.frombuffer(bytes(range(60)) * 4, dtype=np.uint8)
    data = values[: 6 * np.dtype(dtype).itemsize].view(dtype).reshape(2, 3)
    if np.dtype(dtype).kind == "b":
        data = data.astype(bool)
    location = run(storage.arrays.create(data.dtype, data.shape, ["y", "x"]))
    run(storage.arrays.write(location, data.shape, (slice(None), slice(None)), data))
    back = run(storage.arrays.read(location, data.shape, (slice(None), slice(None))))
    assert back.astype(data.dtype).tobytes() == data.tobytes()


def test_zarr_json_says_only_the_published_shape(storage):
    arrays = storage.arrays
    location = run(arrays.create(np.dtype("<i8"), (2,), None))
    run(arrays.write(location, (3,), (slice(0, 3),), np.arange(3)))
    metadata = storage.backend.directory / location / "zarr.json"
    assert json.loads(metadata.read_text())["shape"] == [2]
    assert arrays.publish(location, (3,)) is True
    assert arrays.publish(location, (3,)) is False
    assert json.loads(metadata.read_text())["shape"] == [3]


def test_trim_removes_chunks_past_the_shape_once_old(storage):
    arrays = storage.arrays
    row = MB // 8
    location = run(arrays.create(np.dtype("<f8"), (1, row), None))
    run(arrays.write(location, (3, row), (slice(0, 3), slice(None)), np.ones((3, row))))
    assert arrays.trim(location, (1, row), older_than=time.time() - 60) == []  # too young
    removed = arrays.trim(location, (1, row), older_than=time.time() + 1)
    assert sorted(removed) == [f"{location}/c/1", f"{location}/c/2"]


def test_fragments_read_back_in_order_with_the_table_schema(storage):
    schema = pa.schema([("x", pa.int64()), ("y", pa.string())], metadata={b"k": b"v"})
    first = storage.tables.write(pa.table({"x": [1, 2], "y": ["a", "b"]}))
    second = storage.tables.write(pa.table({"x": [3], "y": ["c"]}))
    table = storage.tables.read([first, second], schema)
    assert table.to_pydict() == {"x": [1, 2, 3], "y": ["a", "b", "c"]}
    assert table.schema.metadata == {b"k": b"v"}
    assert storage.tables.read([], schema).num_rows == 0
    merged = storage.tables.merge([first, second], schema)
    assert storage.tables.read([merged], schema).equals(table)


def test_the_sweep_keeps_what_is_referenced_and_what_is_young(storage):
    kept = storage.tables.write(pa.table({"x": [1]}))
    orphan = storage.tables.write(pa.table({"x": [2]}))
    assert storage.sweep({kept}, older_than=time.time() - 60) == []
    assert storage.sweep({kept}, older_than=time.time() + 1) == [orphan]
    assert (storage.backend.directory / kept).exists()


def test_only_local_directories(tmp_path):
    from hookbook.errors import ConfigurationError

    assert open_storage(f"file://{tmp_path}").location == str(tmp_path)
    with pytest.raises(ConfigurationError, match="not a local directory"):
        open_storage("s3://bucket/prefix")


def test_zarr_is_imported_only_when_an_array_is_touched():
    script = textwrap.dedent(
        """
        import sys
        import hookbook.client
        assert "zarr" not in sys.modules, "import hookbook.client imported zarr"
        from hookbook.server import SimpleServer
        with SimpleServer() as server, hookbook.client.from_uri(server.uri) as client:
            client.create_container("run")
            client["run"].write_table({"x": [1, 2]}, key="t")
            client["run"]["t"].append({"x": [3]})
            assert "zarr" not in sys.modules, "a server without arrays imported zarr"
            client.write_array([1, 2], key="a")
            assert "zarr" in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
