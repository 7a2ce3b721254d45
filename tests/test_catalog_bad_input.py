"""Every bad-input case of the foundation issue: a 4xx JSON error that names the
problem, and nothing changed (nodes, events and data files are checked after
each request), over HTTP and through the client."""

from __future__ import annotations

import http.client
import io
import json

import httpx
import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from hookbook.client import from_uri
from hookbook.db import event_log, nodes
from hookbook.errors import (
    AlreadyExistsError,
    ClientInputError,
    InvalidDataError,
    InvalidKeyError,
    InvalidPathError,
    NotAStreamError,
    NotFoundError,
    PayloadTooLargeError,
    StreamClosedError,
)
from hookbook.protocol import UNSUPPORTED_ROUTES
from hookbook.server import SimpleServer

BIG = "x" * (256 * 1024)  # over the 256 KiB metadata cap once encoded


@pytest.fixture(scope="module")
def server():
    with SimpleServer() as srv:
        with from_uri(srv.uri) as client:
            client.create_container("ok", metadata={"v": 1})
            client["ok"].write_array(np.arange(6, dtype="<i4").reshape(2, 3), key="arr")
            client["ok"].write_table({"x": [1, 2]}, key="tbl")
            closed = client["ok"].write_array(np.arange(3), key="closed")
            closed.close_stream()
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with from_uri(server.uri) as root:
        yield root


@pytest.fixture(scope="module")
def api(server):
    headers = {"Authorization": f"Apikey {server.api_key}"}
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers=headers) as h:
        yield h


def snapshot(server: SimpleServer) -> tuple:
    async def fetch():
        async with server.app.state.services.db.read() as conn:
            node_rows = (await conn.execute(sa.select(nodes).order_by(nodes.c.id))).all()
            event_rows = (await conn.execute(sa.select(event_log).order_by(event_log.c.id))).all()
            return [tuple(r) for r in node_rows], [tuple(r) for r in event_rows]

    folder = server.directory / "data"
    return (*server.run(fetch()), sorted(p.name for p in folder.iterdir()))


@pytest.fixture
def unchanged(server):
    """Check, after the test, that the catalog, its events and its data files did not change."""
    before = snapshot(server)
    yield
    after = snapshot(server)
    assert after[0] == before[0], "the nodes table changed"
    assert after[1] == before[1], "an event was recorded"
    assert after[2] == before[2], "the data folder changed"


def assert_error(response: httpx.Response, status: int, *words: str, error: str | None = None):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str), body
    for word in words:
        assert word in body["detail"], (word, body["detail"])
    if error is not None:
        assert body["error"] == error
    return body


def container_body(key, **extra):
    return {"id": key, "structure_family": "container", "metadata": {}, "specs": [], **extra}


def array_body(key, structure):
    return {
        "id": key,
        "structure_family": "array",
        "metadata": {},
        "specs": [],
        "data_sources": [
            {
                "structure_family": "array",
                "structure": structure,
                "assets": [],
                "management": "writable",
            }
        ],
    }


INT8 = {"endianness": "not_applicable", "kind": "i", "itemsize": 1}

# ---- keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,words",
    [
        ("", ["non-empty"]),
        ("a/b", ["'/'"]),
        (".", ["'.'", "reserved"]),
        ("..", ["'..'", "reserved"]),
        ("k" * 256, ["256", "255"]),
        ("tab\there", ["control character"]),
    ],
    ids=["empty", "slash", "dot", "dotdot", "too-long", "control"],
)
def test_bad_keys_over_http(api, unchanged, key, words):
    assert_error(
        api.post("/metadata/", json=container_body(key)), 422, *words, error="InvalidKeyError"
    )
    structure = {"data_type": INT8, "chunks": [[1]], "shape": [1]}
    assert_error(api.post("/metadata/ok", json=array_body(key, structure)), 422, *words)


@pytest.mark.parametrize("key", ["", "a/b", ".", "..", "k" * 256])
def test_bad_keys_through_the_client(client, unchanged, key):
    with pytest.raises(InvalidKeyError):
        client.create_container(key)
    with pytest.raises(InvalidKeyError):
        client["ok"].write_array([1, 2], key=key)
    with pytest.raises(InvalidKeyError):
        client.write_table({"x": [1]}, key=key)


def test_existing_key_is_409(api, client, unchanged):
    for key in ("ok", "arr"):
        parent = "" if key == "ok" else "ok"
        body = assert_error(
            api.post(f"/metadata/{parent}", json=container_body(key)),
            409,
            "already exists",
            error="AlreadyExistsError",
        )
        assert body["context"]["path"][-1] == key
    with pytest.raises(AlreadyExistsError, match="'ok/arr' already exists"):
        client["ok"].write_array([1], key="arr")
    with pytest.raises(AlreadyExistsError):
        client["ok"].write_table({"x": [9]}, key="tbl")
    with pytest.raises(AlreadyExistsError):
        client.create_container("ok")
    # The existing node kept its data.
    assert client["ok/arr"].read().tolist() == [[0, 1, 2], [3, 4, 5]]


# ---- paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,route,body",
    [
        ("GET", "/metadata/nope", None),
        ("GET", "/metadata/ok/nope/deeper", None),
        ("POST", "/metadata/nope", container_body("x")),
        ("PUT", "/metadata/nope", {"metadata": {}}),
        ("DELETE", "/metadata/nope", None),
        ("GET", "/search/nope", None),
        ("GET", "/array/full/ok/nope", None),
        ("PUT", "/array/full/ok/nope", None),
        ("GET", "/table/full/ok/nope", None),
        ("DELETE", "/stream/close/ok/nope", None),
    ],
)
def test_a_path_that_does_not_exist_is_404(api, unchanged, method, route, body):
    assert_error(
        api.request(method, route, json=body), 404, "no node at path", error="NotFoundError"
    )


def test_missing_paths_through_the_client(client, unchanged):
    with pytest.raises(NotFoundError, match="no node at path 'nope'"):
        client["nope"]
    with pytest.raises(NotFoundError, match="'ok/missing/deeper'"):
        client["ok/missing/deeper"]


def raw_request(server, method: str, target: str, body: dict | None = None):
    """Send ``target`` exactly as written (httpx would normalise '..' away)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(
            method,
            target,
            body=data,
            headers={
                "Authorization": f"Apikey {server.api_key}",
                "Content-Type": "application/json",
            },
        )
        response = conn.getresponse()
        return response.status, response.getheader("content-type"), json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize(
    "method,target",
    [
        ("GET", "/api/v1/metadata/ok/../ok"),
        ("GET", "/api/v1/metadata/.."),
        ("GET", "/api/v1/metadata/ok/%2E%2E/ok"),
        ("GET", "/api/v1/metadata/ok/./arr"),
        ("POST", "/api/v1/metadata/ok/.."),
        ("PUT", "/api/v1/metadata/ok/../ok"),
        ("DELETE", "/api/v1/metadata/ok/..?recursive=true"),
        ("GET", "/api/v1/array/full/ok/../ok/arr"),
        ("PUT", "/api/v1/array/full/ok/../ok/arr"),
        ("DELETE", "/api/v1/stream/close/ok/../ok/arr"),
        ("GET", "/api/v1/search/ok/.."),
    ],
)
def test_dot_segments_are_refused(server, unchanged, method, target):
    body = (
        container_body("x") if method == "POST" else ({"metadata": {}} if method == "PUT" else None)
    )
    status, content_type, payload = raw_request(server, method, target, body)
    assert status == 422, payload
    assert content_type.startswith("application/json")
    assert payload["error"] == "InvalidPathError"
    assert "invalid segment" in payload["detail"]


def test_dot_segments_through_the_client(client, unchanged):
    with pytest.raises(InvalidPathError, match=r"'\.\.'"):
        client["ok/../ok"]
    with pytest.raises(InvalidPathError):
        client[["ok", ".."]]


# ---- metadata -------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [[1, 2], "text", 3, True], ids=["list", "str", "int", "bool"])
def test_metadata_must_be_an_object(api, client, unchanged, metadata):
    assert_error(
        api.post("/metadata/", json=container_body("m", metadata=metadata)),
        422,
        "metadata",
        error="InvalidRequestError",
    )
    assert_error(api.put("/metadata/ok", json={"metadata": metadata}), 422, "metadata")
    merge = {"content-type": "application/merge-patch+json", "metadata": metadata}
    assert_error(api.patch("/metadata/ok", json=merge), 422, "metadata")
    with pytest.raises(ClientInputError, match="metadata"):
        client.create_container("m", metadata=metadata)
    with pytest.raises(ClientInputError, match="metadata"):
        client["ok"].update_metadata(metadata=metadata)


def test_metadata_over_the_cap_is_413(api, client, unchanged):
    big = {"blob": BIG}
    assert_error(
        api.post("/metadata/", json=container_body("m", metadata=big)),
        413,
        "the limit is 262144",
        error="PayloadTooLargeError",
    )
    assert_error(api.put("/metadata/ok", json={"metadata": big}), 413, "limit")
    merge = {"content-type": "application/merge-patch+json", "metadata": big}
    assert_error(api.patch("/metadata/ok", json=merge), 413, "limit")
    with pytest.raises(PayloadTooLargeError, match="262144") as info:
        client.create_container("m", metadata=big)
    assert info.value.context["limit"] == 262144
    with pytest.raises(PayloadTooLargeError):
        client["ok"].update_metadata(metadata=big)
    with pytest.raises(PayloadTooLargeError):
        client["ok"].write_array([1], key="m", metadata=big)


def test_bad_specs(api, client, unchanged):
    for specs, word in [
        ([{"name": ""}], "name"),
        ([{"name": "a", "colour": "red"}], "colour"),
        (["a", "a"], "duplicate"),
        ([3], "spec"),
    ]:
        assert_error(api.post("/metadata/", json=container_body("s", specs=specs)), 422, word)
    with pytest.raises(ValueError, match="duplicate"):
        client.create_container("s", specs=["a", "a"])


# ---- array data -----------------------------------------------------------------


@pytest.mark.parametrize("nbytes", [0, 5, 23, 25, 48])
def test_array_bytes_must_match_dtype_and_shape(api, unchanged, nbytes):
    body = assert_error(
        api.put("/array/full/ok/arr", content=b"\x01" * nbytes),
        422,
        f"got {nbytes} bytes",
        "need 24",
        error="InvalidDataError",
    )
    assert body["context"] == {"got": nbytes, "expected": 24}
    assert_error(
        api.patch(
            "/array/full/ok/arr",
            params={"offset": "2", "shape": "1,3", "extend": "true"},
            content=b"\x01" * (nbytes + 1),
        ),
        422,
        "need 12",
    )


def test_array_patch_with_the_wrong_number_of_axes(api, unchanged):
    assert_error(
        api.patch(
            "/array/full/ok/arr",
            params={"offset": "2", "shape": "3", "extend": "true"},
            content=b"\x00" * 12,
        ),
        422,
        "axes",
    )
    assert_error(
        api.patch("/array/full/ok/arr", params={"offset": "x", "shape": "1,3"}, content=b""),
        422,
        "offset",
    )
    assert_error(
        api.patch(
            "/array/full/ok/arr", params={"offset": "2,0", "shape": "1,3"}, content=b"\x00" * 12
        ),
        409,
        "extend",
    )


def test_bad_array_structures(api, unchanged):
    cases = [
        ({"data_type": INT8, "chunks": [[2]], "shape": [3]}, "add up"),
        ({"data_type": INT8, "chunks": [[1]], "shape": [-1]}, "negative"),
        (
            {
                "data_type": {"endianness": "little", "kind": "O", "itemsize": 8},
                "chunks": [[1]],
                "shape": [1],
            },
            "object",
        ),
        ({"data_type": INT8, "chunks": [[1]]}, "shape"),
    ]
    for structure, word in cases:
        assert_error(api.post("/metadata/ok", json=array_body("bad", structure)), 422, word)


def test_array_bytes_through_the_client(client, unchanged):
    node = client["ok/arr"]
    with pytest.raises(ValueError, match="rows must have shape"):
        node.append(np.zeros((1, 4), dtype="<i4"))
    with pytest.raises(InvalidDataError, match="need"):
        node._transport.request("PUT", "array/full/ok/arr", content=b"\x00" * 3)


def test_bad_slices(api, unchanged):
    # As Tiled: text its slice pattern refuses is a 422; a slice that parses but
    # does not apply to the array is a 400.
    for text, status, word in [
        ("garbage", 422, "integer"),
        ("1:2:3:4", 422, "too many"),
        ("5", 400, "out of range"),
        ("::0", 400, "zero"),
        ("1,2,3", 400, "axes"),
    ]:
        assert_error(api.get("/array/full/ok/arr", params={"slice": text}), status, word)


# ---- table data -----------------------------------------------------------------


def test_table_bytes_must_be_arrow(api, unchanged):
    assert_error(
        api.put("/table/full/ok/tbl", content=b"not arrow at all"),
        422,
        "Arrow IPC",
        error="InvalidDataError",
    )
    sink = io.BytesIO()
    table = pa.table({"y": ["wrong column"]})
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert_error(api.put("/table/full/ok/tbl", content=sink.getvalue()), 422, "columns")
    assert_error(
        api.patch("/table/partition/ok/tbl", params={"partition": 0}, content=sink.getvalue()),
        422,
        "columns",
    )
    sink = io.BytesIO()
    table = pa.table({"x": ["not an int"]})
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert_error(
        api.patch("/table/partition/ok/tbl", params={"partition": 0}, content=sink.getvalue()),
        422,
        "column types",
    )


# ---- streams --------------------------------------------------------------------


def test_appending_to_a_closed_node_is_409(api, client, unchanged):
    assert_error(
        api.patch(
            "/array/full/ok/closed",
            params={"offset": "3", "shape": "1", "extend": "true"},
            content=np.array([3]).tobytes(),
        ),
        409,
        "'ok/closed' is closed",
        error="StreamClosedError",
    )
    assert_error(
        api.put("/array/full/ok/closed", content=np.zeros(3, dtype=int).tobytes()),
        409,
        "closed",
    )
    assert_error(api.delete("/stream/close/ok/closed"), 409, "already closed")
    with pytest.raises(StreamClosedError, match="is closed"):
        client["ok/closed"].append([3])
    with pytest.raises(StreamClosedError, match="already closed"):
        client["ok/closed"].close_stream()


def test_appending_to_a_container_is_409(api, unchanged):
    assert_error(
        api.patch(
            "/array/full/ok",
            params={"offset": "0", "shape": "1", "extend": "true"},
            content=b"\x00" * 8,
        ),
        409,
        "container",
        error="NotAStreamError",
    )
    sink = io.BytesIO()
    table = pa.table({"x": [1]})
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert_error(
        api.patch("/table/partition/ok", params={"partition": 0}, content=sink.getvalue()),
        409,
        "container",
    )
    assert_error(api.delete("/stream/close/ok"), 409, "container", error="NotAStreamError")
    assert_error(api.delete("/stream/close/"), 409, "container")


def test_closing_a_container_through_the_client(client, unchanged):
    with pytest.raises(NotAStreamError, match="container"):
        client._transport.request("DELETE", "stream/close/ok")


def test_wrong_family_routes_are_409(api, unchanged):
    assert_error(api.get("/array/full/ok/tbl"), 409, "is a table, not an array")
    assert_error(api.get("/table/full/ok/arr"), 409, "is an array, not a table")
    assert_error(api.get("/search/ok/arr"), 409, "not a container")
    assert_error(api.post("/metadata/ok/arr", json=container_body("x")), 409, "not a container")


# ---- request bodies -------------------------------------------------------------


@pytest.mark.parametrize(
    "content,words",
    [
        (b"{not json", ["not valid JSON"]),
        (b"", ["not valid JSON"]),
        (b"[1, 2]", ["body"]),
        (b'{"structure_family": "container"}', ["id"]),
        (b"\xff\xfe", ["not valid JSON"]),
    ],
    ids=["malformed", "empty", "not-an-object", "no-id", "not-utf8"],
)
def test_malformed_bodies(api, unchanged, content, words):
    response = api.post(
        "/metadata/ok", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, *words)
    if not content.startswith(b"{"):
        assert_error(api.put("/metadata/ok", content=content), 422)


@pytest.mark.parametrize("family", ["awkward", "sparse", "composite", "nonsense", 3])
def test_unknown_structure_family(api, unchanged, family):
    body = {"id": "x", "structure_family": family, "metadata": {}, "data_sources": []}
    assert_error(api.post("/metadata/ok", json=body), 422, "structure")


@pytest.mark.parametrize("route", UNSUPPORTED_ROUTES, ids=lambda route: route.prefix)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_unsupported_tiled_routes_say_so(api, unchanged, method, route):
    for path in (f"/{route.prefix}", f"/{route.prefix}/ok/x"):
        body = assert_error(api.request(method, path), 400, route.detail(method))
        assert body["error"] == "UnsupportedError"
        assert body["context"] == {"route": f"/api/v1/{route.prefix}"}


@pytest.mark.parametrize(
    ("route", "params", "native"),
    [
        ("/array/full/ok/arr", {}, "application/octet-stream"),
        ("/array/block/ok/arr", {"block": "0,0"}, "application/octet-stream"),
        ("/table/full/ok/tbl", {}, "application/vnd.apache.arrow.file"),
        ("/table/partition/ok/tbl", {"partition": 0}, "application/vnd.apache.arrow.file"),
    ],
)
def test_only_the_native_format_is_exported(api, unchanged, route, params, native):
    # Tiled's export(file, format="text/csv") must not get native bytes under a CSV name.
    for other in ("text/csv", "csv", "application/json"):
        body = assert_error(api.get(route, params={**params, "format": other}), 406, native)
        assert body["error"] == "NotAcceptableError"
        assert repr(other) in body["detail"]
    assert api.get(route, params={**params, "format": native}).status_code == 200
    assert api.get(route, params=params).status_code == 200


@pytest.mark.parametrize(
    "method,params,content,status,words",
    [
        ("PUT", {}, b"", 422, ["block is required"]),
        ("PUT", {"block": "1,0"}, bytes(12), 422, ["does not exist", "axis 0 has 1 chunks"]),
        ("PUT", {"block": "0"}, bytes(24), 422, ["2 axes"]),
        ("PUT", {"block": "0,0"}, bytes(5), 422, ["got 5 bytes"]),
        ("PUT", {"block": "0,0", "slice": "0:1"}, bytes(24), 400, ["whole blocks"]),
        ("GET", {"block": "0,x"}, None, 422, ["block must be"]),
        ("GET", {"block": "0,3"}, None, 422, ["does not exist"]),
    ],
)
def test_bad_block_requests(api, unchanged, method, params, content, status, words):
    response = api.request(method, "/array/block/ok/arr", params=params, content=content)
    assert_error(response, status, *words)


def test_unknown_routes_are_a_json_404(api, unchanged):
    assert_error(api.get("/no-such-route"), 404, "no route", error="NotFoundError")


def test_bad_paging_parameters(api, unchanged):
    response = api.get("/search/", params={"page[offset]": -1})
    assert response.status_code == 422
    assert "page[offset]" in json.dumps(response.json()["detail"])
    response = api.get("/search/", params={"page[limit]": "many"})
    assert response.status_code == 422


def test_a_body_over_the_data_cap_is_413():
    with SimpleServer() as small:
        from hookbook.config import Limits

        small.app.state.services.store.limits = Limits(max_data_bytes=1000)
        with from_uri(small.uri) as client:
            node = client.write_array(np.zeros(10), key="a")
            before = snapshot(small)
            with pytest.raises(PayloadTooLargeError, match="limit"):
                node.append(np.zeros(200))
            with pytest.raises(PayloadTooLargeError):
                client.write_array(np.zeros(1000), key="big")
            assert snapshot(small)[0] == before[0]
            assert snapshot(small)[2] == before[2]
            response = httpx.put(
                f"{small.base_url}/api/v1/array/full/a",
                content=b"\x00" * 2000,
                headers={"Authorization": f"Apikey {small.api_key}"},
            )
            assert_error(response, 413, "limit is 1000", error="PayloadTooLargeError")


def test_deeply_nested_metadata_and_bodies(api, client, unchanged):
    deep = {"a": 0}
    for _ in range(150):
        deep = {"a": deep}
    assert_error(
        api.post("/metadata/", json=container_body("deep", metadata=deep)),
        400,
        "nested 151 levels deep",
        "the limit is 100",
    )
    nested_lists = b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert_error(
        api.put("/metadata/ok", content=b'{"metadata": ' + nested_lists + b"}"), 400, "nested"
    )
    body = b'{"id": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_error(api.post("/metadata/", content=body), 400, "nested too deeply")
    with pytest.raises(ClientInputError, match="nested"):
        client["ok"].update_metadata(metadata=deep)


def test_extending_an_array_past_the_data_cap_is_413(api, unchanged):
    body = assert_error(
        api.patch(
            "/array/full/ok/arr",
            params={"offset": "100000000000,0", "shape": "1,3", "extend": "true"},
            content=b"\x00" * 12,
        ),
        413,
        "would grow to shape [100000000001, 3]",
        error="PayloadTooLargeError",
    )
    assert body["context"]["limit"] == 1024**3


def test_a_table_with_a_reserved_column_name(api, unchanged):
    sink = io.BytesIO()
    table = pa.table({"_x": [1]})
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert_error(api.put("/table/full/ok/tbl", content=sink.getvalue()), 422, "'_x'")
