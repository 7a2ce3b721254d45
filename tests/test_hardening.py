"""The attacker's probe of issue 11, request by request: each is a 4xx that names the
problem, nothing is written, and every reader (listings, nodes, data, webhooks,
history, deliveries, what the receiver got) still answers 200 afterwards.

One server serves the module: a container, an array and a table, and a webhook
on the root that has delivered their events.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from hookbook.client import from_uri
from hookbook.config import Limits
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver
from readers import check_readers, snapshot


class World:
    def __init__(self, server: SimpleServer, receiver: WebhookReceiver, hook_id: int) -> None:
        self.server = server
        self.receiver = receiver
        self.hook_id = hook_id
        self.http = httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Apikey {server.api_key}"},
            timeout=60,
        )

    def send(self, method: str, route: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        """``body`` as JSON text with ``ensure_ascii`` (a lone surrogate travels as ``\\ud800``)."""
        content = None if body is None else json.dumps(body).encode()
        route = route.replace("{hook}", str(self.hook_id))
        return self.http.request(
            method, route, content=content, headers={"Content-Type": "application/json"}, **kwargs
        )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with (
        WebhookReceiver() as receiver,
        SimpleServer(webhooks={"retry_schedule": [0.01]}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        container = client.create_container("c", metadata={"token": "CONFIDENTIAL"})
        container.write_array(np.arange(6).reshape(2, 3), key="arr")
        container.write_table({"x": [1, 2], "y": ["a", "b"]}, key="tbl")
        receiver.wait_for(3, timeout=10)
        server.drain()
        world = World(server, receiver, hook.id)
        try:
            yield world
        finally:
            world.http.close()


@pytest.fixture
def refused(world: World) -> Iterator[World]:
    """The test's requests change nothing, and every reader works afterwards."""
    before = snapshot(world.server)
    yield world
    world.server.drain()
    assert snapshot(world.server) == before
    assert check_readers(world.server, world.receiver) == 3


def assert_error(response: httpx.Response, status: int, *words: str, error: str | None = None):
    assert response.status_code == status, (response.status_code, response.text[:1000])
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    for word in words:
        assert word in json.dumps(body["detail"]), (word, body["detail"])
    if error is not None:
        assert body["error"] == error, body
    return body


def container(key: str, **extra: Any) -> dict[str, Any]:
    return {"id": key, "structure_family": "container", "metadata": {}, "specs": [], **extra}


def array(key: str, shape: list[int], **structure: Any) -> dict[str, Any]:
    return {
        "id": key,
        "structure_family": "array",
        "metadata": {},
        "data_sources": [
            {
                "structure_family": "array",
                "structure": {
                    "data_type": {"endianness": "little", "kind": "f", "itemsize": 8},
                    "chunks": [[n] for n in shape],
                    "shape": shape,
                    **structure,
                },
                "management": "writable",
            }
        ],
    }


def table(key: str, columns: list[str], arrow_schema: str | None = None) -> dict[str, Any]:
    schema = arrow_schema or "data:application/vnd.apache.arrow.file;base64,"
    return {
        "id": key,
        "structure_family": "table",
        "metadata": {},
        "data_sources": [
            {
                "structure_family": "table",
                "structure": {"arrow_schema": schema, "columns": columns, "npartitions": 1},
                "management": "writable",
            }
        ],
    }


JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
LONE = "\ud800"

# ---- 2. text that can never be served -----------------------------------------------


@pytest.mark.parametrize(
    ("method", "route", "body", "field"),
    [
        ("POST", "/api/v1/metadata/", container(LONE), "body.id"),
        ("POST", "/api/v1/metadata/", container("k", metadata={"t": LONE}), "body.metadata.t"),
        ("POST", "/api/v1/metadata/", container("k", metadata={"\udc00": 1}), "body.metadata."),
        ("POST", "/api/v1/metadata/", container("k", specs=[{"name": LONE}]), "body.specs[0].name"),
        (
            "POST",
            "/api/v1/metadata/c",
            array("a", [2], dims=[LONE]),
            "body.data_sources[0].structure.dims[0]",
        ),
        (
            "POST",
            "/api/v1/metadata/c",
            table("t", [LONE]),
            "body.data_sources[0].structure.columns[0]",
        ),
        ("PUT", "/api/v1/metadata/c", {"metadata": {"x": ["ok", LONE]}}, "body.metadata.x[1]"),
        ("PUT", "/api/v1/metadata/c", {"specs": [LONE]}, "body.specs[0]"),
        (
            "PATCH",
            "/api/v1/metadata/c",
            {"content-type": JSON_PATCH, "metadata": [{"op": "add", "path": "/x", "value": LONE}]},
            "body.metadata[0].value",
        ),
        (
            "PATCH",
            "/api/v1/metadata/c",
            {"content-type": MERGE_PATCH, "metadata": {"x": {"y": LONE}}},
            "body.metadata.x.y",
        ),
        ("POST", "/api/v1/webhooks/target/", {"url": f"http://127.0.0.1:9/{LONE}"}, "body.url"),
        (
            "POST",
            "/api/v1/webhooks/target/c",
            {"url": "http://127.0.0.1:9/x", "secret": LONE},
            "body.secret",
        ),
        ("PATCH", "/api/v1/webhooks/{hook}", {"secret": "\udfff"}, "body.secret"),
        ("PATCH", "/api/v1/webhooks/{hook}", {"url": f"http://{LONE}.example.com/"}, "body.url"),
    ],
)
def test_a_lone_surrogate_is_422_naming_the_field(refused, method, route, body, field):
    response = refused.send(method, route, body)
    body = assert_error(response, 422, field, "not valid Unicode", error="InvalidTextError")
    assert body["context"]["field"].startswith(field)


def test_surrogate_pairs_are_text_like_any_other(world):
    # An emoji arrives as a pair of escapes: valid, stored and served as it came.
    response = world.send("PUT", "/api/v1/metadata/c", {"metadata": {"e": "\ud83d\ude00"}})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"e": "\U0001f600"}
    restore = world.send("PUT", "/api/v1/metadata/c", {"metadata": {"token": "CONFIDENTIAL"}})
    assert restore.status_code == 200
    world.server.drain()
    assert check_readers(world.server, world.receiver) == 3


# ---- 3. JSON Patch that doubles the document -----------------------------------------


def doubling(n: int) -> list[dict[str, Any]]:
    return [{"op": "add", "path": "/a", "value": "x" * 32}] + [
        {"op": "copy", "from": "", "path": f"/{i}"} for i in range(n)
    ]


@pytest.mark.parametrize("copies", [17, 25, 60])
def test_a_patch_whose_copies_double_the_document_stops_at_the_limit(refused, copies):
    body = {"content-type": JSON_PATCH, "metadata": doubling(copies)}
    response = refused.send("PATCH", "/api/v1/metadata/c", body)
    assert_error(response, 413, "of the patch takes the metadata to", "the limit is 262144")


def test_a_patch_with_too_many_operations(refused):
    ops = [{"op": "test", "path": "/token", "value": "CONFIDENTIAL"}] * 1001
    response = refused.send(
        "PATCH", "/api/v1/metadata/c", {"content-type": JSON_PATCH, "metadata": ops}
    )
    assert_error(response, 413, "1001 operations; the limit is 1000")


@pytest.mark.parametrize("content_type", [JSON_PATCH, MERGE_PATCH])
@pytest.mark.parametrize("route", ["/api/v1/metadata/c", "/api/v1/metadata/"])
def test_a_value_nested_900_deep(refused, content_type, route):
    deep = "[" * 900 + "]" * 900
    op = '{"op": "add", "path": "/x", "value": ' + deep + "}"
    inner = "[" + op + "]" if content_type == JSON_PATCH else '{"x": ' + deep + "}"
    body = '{"content-type": "' + content_type + '", "metadata": ' + inner + "}"
    response = refused.http.patch(route, content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 400, "nested more than")
    for method, text in (
        ("PUT", '{"metadata": {"x": '),
        ("POST", '{"id": "d", "metadata": {"x": '),
    ):
        response = refused.http.request(method, route, content=text + deep + "}}")
        assert_error(response, 400, "nested")


# ---- 5. more that was a 500 ----------------------------------------------------------


@pytest.mark.parametrize("shape", [[2**70], [2**32, 2**32], [0, 2**64], [2**40, 2**40, 0]])
def test_an_array_whose_byte_count_overflows_is_413(refused, shape):
    response = refused.send("POST", "/api/v1/metadata/c", array("big", shape))
    assert_error(response, 413, "the limit is 1073741824", error="PayloadTooLargeError")


@pytest.mark.parametrize("offset", [2**63, 2**64, 10**30])
def test_a_page_offset_beyond_the_databases_integers_is_422(refused, offset):
    response = refused.http.get("/api/v1/search/", params={"page[offset]": str(offset)})
    assert_error(response, 422, "page[offset]")
    last = refused.http.get("/api/v1/search/", params={"page[offset]": str(2**63 - 1)})
    assert last.status_code == 200
    assert last.json()["data"] == [] and last.json()["meta"]["count"] == 1


# ---- 8. structures are capped --------------------------------------------------------


def test_a_5mb_axis_name_is_413_before_it_is_parsed(refused):
    response = refused.send("POST", "/api/v1/metadata/c", array("a", [2], dims=["d" * 5_000_000]))
    assert_error(response, 413, "the limit is 1048576")


def test_a_long_axis_name_is_422(refused):
    response = refused.send("POST", "/api/v1/metadata/c", array("a", [2], dims=["d" * 300]))
    assert_error(response, 422, "axis name (dims) is 300 characters", "the limit is 255")


def test_too_many_axes_is_422(refused):
    response = refused.send("POST", "/api/v1/metadata/c", array("a", [1] * 33))
    assert_error(response, 422, "33 axes; the limit is 32")


def test_too_many_columns_is_413(refused):
    columns = [f"c{i}" for i in range(2000)]
    response = refused.send("POST", "/api/v1/metadata/c", table("t", columns))
    assert_error(response, 413, "2000 columns; the limit is 1024")


def test_a_huge_arrow_schema_is_413(refused):
    schema = "data:application/vnd.apache.arrow.file;base64," + "QUFB" * 200_000
    response = refused.send("POST", "/api/v1/metadata/c", table("t", ["x"], schema))
    assert_error(response, 413, "table structure is", "the limit is 524288")


def test_too_many_partitions_is_413(refused):
    body = table("t", ["x"])
    body["data_sources"][0]["structure"]["npartitions"] = 2**40
    response = refused.send("POST", "/api/v1/metadata/c", body)
    assert_error(response, 413, "1099511627776 partitions; the limit is 10000")


@pytest.mark.parametrize("partition", [1, 2**31, 2**63, 10**30])
def test_a_partition_that_does_not_exist_is_a_4xx_whatever_its_number(refused, partition):
    route = f"/api/v1/table/partition/c/tbl?partition={partition}"
    body = arrow(pa.table({"x": [1], "y": ["a"]}))
    for method in ("GET", "PUT", "PATCH"):
        response = refused.http.request(method, route, content=None if method == "GET" else body)
        assert_error(response, 400, f"partition {partition} does not exist")


@pytest.mark.parametrize("block", ["1,0", "99999999999999999999,0", "0,0,0", "-1,0", "0", "x"])
def test_a_block_that_does_not_exist_is_a_422(refused, block):
    for method in ("GET", "PUT"):
        response = refused.http.request(
            method, f"/api/v1/array/block/c/arr?block={block}", content=b"\x00" * 24
        )
        assert response.status_code == 422, (method, block, response.text)
        assert response.json()["detail"]


@pytest.mark.parametrize(("columns", "word"), [(["a", "a"], "'a' is used twice"), ([""], "empty")])
def test_declared_column_names_must_be_unique_and_named(refused, columns, word):
    response = refused.send("POST", "/api/v1/metadata/c", table("t", columns))
    assert_error(response, 422, word)


def test_a_node_deeper_than_max_path_depth_is_422(refused):
    store = refused.server.app.state.services.store
    store.limits = Limits(max_path_depth=1)
    try:
        response = refused.send("POST", "/api/v1/metadata/c", container("deep"))
    finally:
        store.limits = Limits()
    assert_error(response, 422, "would be 2 levels deep; the limit is 1", error="InvalidPathError")


# ---- 4 and 5. data: decoded sizes, truncated and malformed Arrow ---------------------


def arrow(table: pa.Table, *, file: bool = True, compression: str | None = None) -> bytes:
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    opener = pa.ipc.new_file if file else pa.ipc.new_stream
    with opener(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue()


TABLE_WRITES = [
    ("PUT", "/api/v1/table/full/c/tbl"),
    ("PUT", "/api/v1/table/partition/c/tbl?partition=0"),
    ("PATCH", "/api/v1/table/partition/c/tbl?partition=0"),
]


@pytest.fixture
def small_data_cap(refused):
    store = refused.server.app.state.services.store
    store.limits = Limits(max_data_bytes=1_000_000)
    yield refused
    store.limits = Limits()


@pytest.mark.parametrize(("method", "route"), TABLE_WRITES)
@pytest.mark.parametrize("file", [True, False], ids=["file", "stream"])
def test_a_compressed_table_is_capped_by_what_it_decodes_to(small_data_cap, method, route, file):
    big = pa.table({"x": np.zeros(2_500_000, dtype="i8"), "y": pa.nulls(2_500_000, pa.string())})
    body = arrow(big, file=file, compression="zstd")
    assert len(body) < 100_000  # 20 MB of zeros, a few kB on the wire
    response = small_data_cap.http.request(method, route, content=body)
    error = assert_error(response, 413, "the table decodes to", "the limit is 1000000")
    assert error["context"]["size"] >= 20_000_000


@pytest.mark.parametrize(("method", "route"), TABLE_WRITES)
def test_a_null_column_of_a_billion_rows_is_413(refused, method, route):
    body = arrow(pa.table({"x": pa.nulls(10**9)}))
    assert len(body) < 1000
    response = refused.http.request(method, route, content=body)
    assert_error(response, 413, "1000000000 rows", "a null column counts 8 bytes a row")


@pytest.mark.parametrize(("method", "route"), TABLE_WRITES)
def test_a_struct_of_nulls_counts_its_rows_too(refused, method, route):
    column = pa.StructArray.from_arrays([pa.nulls(2 * 10**9)], names=["a"])
    response = refused.http.request(method, route, content=arrow(pa.table({"x": column})))
    assert_error(response, 413, "2000000000 rows")


def test_a_compressed_buffer_declaring_a_negative_length_is_422(refused):
    body = arrow(pa.table({"x": np.arange(1000)}), file=False, compression="zstd")
    head, _, tail = body.rpartition(np.int64(8000).tobytes())  # the buffer's declared size
    lying = head + np.int64(-5).tobytes() + tail
    for method, route in TABLE_WRITES:
        response = refused.http.request(method, route, content=lying)
        assert_error(response, 422, "negative length")


@pytest.mark.parametrize("file", [True, False], ids=["file", "stream"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_truncated_arrow_body_is_422(refused, file, keep):
    body = arrow(pa.table({"x": [1, 2], "y": ["a", "b"]}), file=file)
    for method, route in TABLE_WRITES:
        response = refused.http.request(method, route, content=body[: int(len(body) * keep)])
        assert_error(
            response,
            422,
            "not a usable Arrow IPC",
            "cut short" if file and keep > 0.8 else "",
            error="InvalidDataError",
        )


DENSE_UNION = pa.UnionArray.from_dense(
    pa.array([0], pa.int8()), pa.array([0], pa.int32()), [pa.array([1])]
)


@pytest.mark.parametrize(
    ("column", "type_name"),
    [
        (pa.array([(1, 2, 3)], pa.month_day_nano_interval()), "month_day_nano_interval"),
        (DENSE_UNION, "dense_union"),
        (pa.RunEndEncodedArray.from_arrays([1], [7]), "run_end_encoded"),
        (pa.array([{}], pa.struct([])), "struct<>"),
    ],
)
def test_a_type_parquet_cannot_store_is_422_naming_it(refused, column, type_name):
    body = arrow(pa.table({"x": column}))
    for method, route in TABLE_WRITES:
        response = refused.http.request(method, route, content=body)
        assert_error(response, 422, "column 'x' has type", type_name, "cannot store")


@pytest.mark.parametrize(
    ("names", "word"), [(["x", "x"], "'x' is used twice"), (["", "y"], "empty")]
)
def test_column_names_are_checked_when_data_is_written(refused, names, word):
    table = pa.Table.from_arrays([pa.array([1]), pa.array(["a"])], names=names)
    for method, route in TABLE_WRITES:
        response = refused.http.request(method, route, content=arrow(table))
        assert_error(response, 422, word, error="InvalidDataError")


def test_string_buffers_that_are_not_utf8_or_overrun_are_422(refused):
    bad_utf8 = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.py_buffer(np.array([0, 2], "i4")), pa.py_buffer(b"\xff\xfe")]
    )
    # A valid 515-character string whose end offset (in the body, after the metadata)
    # is then rewritten past its data.
    valid = arrow(pa.table({"x": pa.array([1]), "y": ["s" * 515]}), file=False)
    head, _, tail = valid.rpartition(np.array([0, 515], "<i4").tobytes())
    overrun = head + np.array([0, 2**30], "<i4").tobytes() + tail
    assert tail.startswith(b"s" * 515)  # it was the offsets buffer, before the data
    for body in (arrow(pa.table({"x": pa.array([1]), "y": bad_utf8})), overrun):
        for method, route in TABLE_WRITES:
            response = refused.http.request(method, route, content=body)
            assert_error(response, 422, "not a usable Arrow IPC")


@pytest.mark.parametrize("shape", ["4294967296,4294967296", "0,18446744073709551616"])
def test_an_array_patch_whose_byte_count_overflows_is_413(refused, shape):
    response = refused.http.patch(
        "/api/v1/array/full/c/arr",
        params={"offset": "0,0", "shape": shape, "extend": "true"},
        content=b"\x00" * 8,
    )
    assert_error(response, 413, "would grow to shape")


# ---- 8. a listing cannot be made huge -----------------------------------------------


def test_a_listing_page_stops_at_max_page_bytes_and_the_next_link_carries_on():
    with SimpleServer() as server, from_uri(server.uri) as client:
        for i in range(5):
            client.create_container(f"n{i}", metadata={"blob": "x" * 100_000})
        server.app.state.services.store.limits = Limits(max_page_bytes=250_000)
        with httpx.Client(headers={"Authorization": f"Apikey {server.api_key}"}) as api:
            url: str | None = f"{server.base_url}/api/v1/search/"
            pages = []
            while url:
                page = api.get(url).json()
                pages.append([item["id"] for item in page["data"]])
                assert page["meta"]["count"] == 5
                url = page["links"]["next"]
        assert pages == [["n0", "n1"], ["n2", "n3"], ["n4"]]
        assert list(client) == [f"n{i}" for i in range(5)]
        # One node over the budget still comes, alone: a page always holds one.
        server.app.state.services.store.limits = Limits(max_page_bytes=1024)
        assert list(client) == [f"n{i}" for i in range(5)]
