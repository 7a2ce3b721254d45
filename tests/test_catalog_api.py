"""The catalog HTTP API with raw httpx: every route of server/routes/catalog.py."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pyarrow as pa
import pytest

from hookbook.server import SimpleServer

OCTET = "application/octet-stream"
ARROW = "application/vnd.apache.arrow.file"


@pytest.fixture(scope="module")
def server():
    with SimpleServer() as srv:
        yield srv


@pytest.fixture
def http(server: SimpleServer, request: pytest.FixtureRequest):
    """A client on the API root, and a fresh container (the test's name) to work in."""
    headers = {"Authorization": f"Apikey {server.api_key}"}
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers=headers) as h:
        h.root = request.node.name.replace("[", "-").replace("]", "")
        assert create(h, "", h.root).status_code == 200
        yield h


def create(http, parent: str, key: str, family: str = "container", **extra):
    body = {
        "id": key,
        "structure_family": family,
        "metadata": extra.pop("metadata", {}),
        "specs": extra.pop("specs", []),
        "data_sources": [],
    }
    if family != "container":
        body["data_sources"] = [
            {
                "structure_family": family,
                "structure": extra.pop("structure"),
                "mimetype": OCTET if family == "array" else ARROW,
                "parameters": {},
                "properties": {},
                "assets": [],
                "management": "writable",
            }
        ]
    return http.post(f"/metadata/{parent}", json=body)


def array_structure(array: np.ndarray) -> dict:
    from hookbook.protocol import ArrayStructure

    return ArrayStructure.from_array(array.shape, array.dtype).model_dump(mode="json")


def table_structure(table: pa.Table) -> dict:
    from hookbook.protocol import TableStructure

    return TableStructure.from_arrow_schema(table.schema).model_dump(mode="json")


def ipc(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def read_ipc(content: bytes) -> pa.Table:
    return pa.ipc.open_file(pa.BufferReader(content)).read_all()


def put_array(http, path: str, array: np.ndarray) -> None:
    parent, _, key = path.rpartition("/")
    assert create(http, parent, key, "array", structure=array_structure(array)).status_code == 200
    response = http.put(
        f"/array/full/{path}", content=array.tobytes(), headers={"Content-Type": OCTET}
    )
    assert response.status_code == 200, response.text


def put_table(http, path: str, table: pa.Table) -> None:
    parent, _, key = path.rpartition("/")
    assert create(http, parent, key, "table", structure=table_structure(table)).status_code == 200
    response = http.put(f"/table/full/{path}", content=ipc(table), headers={"Content-Type": ARROW})
    assert response.status_code == 200, response.text


# ---- discovery ------------------------------------------------------------------


def test_about_document(server):
    response = httpx.get(f"{server.base_url}/api/v1/")
    assert response.status_code == 200
    about = response.json()
    for key in [
        "api_version",
        "library_version",
        "formats",
        "aliases",
        "queries",
        "authentication",
        "links",
        "meta",
    ]:
        assert key in about
    assert about["links"]["self"] == f"{server.base_url}/api/v1"
    assert about["authentication"]["providers"] == []
    assert about["authentication"]["required"] is True


def test_metadata_items_by_family(http, server):
    root = http.root
    create(http, root, "c", metadata={"a": 1}, specs=[{"name": "s", "version": "1"}])
    put_array(http, f"{root}/arr", np.arange(6, dtype=np.int16).reshape(2, 3))
    put_table(http, f"{root}/tbl", pa.table({"x": [1, 2]}))
    base = f"{server.base_url}/api/v1"

    item = http.get(f"/metadata/{root}/c").json()["data"]
    assert item["id"] == "c"
    attributes = item["attributes"]
    assert attributes["ancestors"] == [root]
    assert attributes["structure_family"] == "container"
    assert attributes["metadata"] == {"a": 1}
    assert attributes["specs"] == [{"name": "s", "version": "1"}]
    assert attributes["structure"] == {"contents": None, "count": 0}
    assert item["links"]["self"] == f"{base}/metadata/{root}/c"
    assert item["links"]["search"] == f"{base}/search/{root}/c"

    item = http.get(f"/metadata/{root}/arr").json()["data"]
    structure = item["attributes"]["structure"]
    assert structure["shape"] == [2, 3]
    assert structure["data_type"] == {
        "endianness": "little",
        "kind": "i",
        "itemsize": 2,
        "dt_units": None,
    }
    assert item["links"]["full"] == f"{base}/array/full/{root}/arr"
    assert item["links"]["block"] == f"{base}/array/block/{root}/arr?block={{0}},{{1}}"

    item = http.get(f"/metadata/{root}/tbl").json()["data"]
    assert item["attributes"]["structure"]["columns"] == ["x"]
    assert item["links"]["partition"] == f"{base}/table/partition/{root}/tbl?partition={{index}}"

    root_item = http.get("/metadata/").json()["data"]
    assert root_item["id"] == ""
    assert root_item["attributes"]["structure"]["count"] >= 1


def test_search_pages_with_next_links(http):
    root = http.root
    keys = [f"k{i:02d}" for i in range(7)]
    for key in keys:
        assert create(http, root, key).status_code == 200
    page = http.get(f"/search/{root}", params={"page[offset]": 0, "page[limit]": 3}).json()
    assert page["meta"]["count"] == 7
    seen = []
    pages = 0
    while True:
        pages += 1
        seen += [item["id"] for item in page["data"]]
        assert len(page["data"]) <= 3
        if page["links"]["next"] is None:
            break
        assert "page[offset]" in page["links"]["next"]
        page = http.get(page["links"]["next"]).json()
    assert pages == 3
    assert seen == keys
    middle = http.get(f"/search/{root}", params={"page[offset]": 5, "page[limit]": 10}).json()
    assert [i["id"] for i in middle["data"]] == ["k05", "k06"]
    assert middle["links"]["next"] is None
    count_only = http.get(f"/search/{root}", params={"page[limit]": 0}).json()
    assert count_only["data"] == [] and count_only["meta"]["count"] == 7
    refused = http.get(f"/search/{root}", params={"filter[fulltext][condition][text]": "x"})
    assert refused.status_code == 400
    assert "filter" in refused.json()["detail"]


# ---- create, update, delete -----------------------------------------------------


def test_create_answers_id_and_links(http, server):
    response = create(http, http.root, "new", metadata={"m": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "new"
    assert body["links"]["self"] == f"{server.base_url}/api/v1/metadata/{http.root}/new"
    assert body["metadata"] == {"m": 1}


def test_patch_metadata_json_patch_and_merge_patch(http):
    path = f"{http.root}/c"
    create(http, http.root, "c", metadata={"a": 1, "b": {"c": 2}}, specs=["s1"])
    response = http.patch(
        f"/metadata/{path}",
        json={
            "content-type": "application/json-patch+json",
            "metadata": [
                {"op": "replace", "path": "/a", "value": 10},
                {"op": "add", "path": "/b/d", "value": 3},
            ],
            "specs": [{"op": "add", "path": "/1", "value": {"name": "s2", "version": "2"}}],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"a": 10, "b": {"c": 2, "d": 3}}
    attributes = http.get(f"/metadata/{path}").json()["data"]["attributes"]
    assert attributes["metadata"] == {"a": 10, "b": {"c": 2, "d": 3}}
    assert attributes["specs"] == [
        {"name": "s1", "version": None},
        {"name": "s2", "version": "2"},
    ]
    response = http.patch(
        f"/metadata/{path}",
        json={"content-type": "application/merge-patch+json", "metadata": {"a": None, "z": 1}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == {"b": {"c": 2, "d": 3}, "z": 1}
    stale = http.patch(
        f"/metadata/{path}",
        json={
            "content-type": "application/json-patch+json",
            "metadata": [{"op": "remove", "path": "/gone"}],
        },
    )
    assert stale.status_code == 409
    assert "gone" in stale.json()["detail"] or "patch" in stale.json()["detail"]


def test_put_metadata_replaces(http):
    path = f"{http.root}/c"
    create(http, http.root, "c", metadata={"a": 1}, specs=["s1"])
    response = http.put(f"/metadata/{path}", json={"metadata": {"b": 2}})
    assert response.status_code == 200
    assert response.json() == {
        "id": "c",
        "metadata": {"b": 2},
        "specs": [{"name": "s1", "version": None}],
    }
    response = http.put(f"/metadata/{path}", json={"specs": ["s9"]})
    assert response.json()["specs"] == [{"name": "s9", "version": None}]
    assert response.json()["metadata"] == {"b": 2}


def test_delete_leaf_and_recursive(http):
    root = http.root
    create(http, root, "run")
    create(http, f"{root}/run", "inner")
    put_array(http, f"{root}/run/inner/a", np.arange(3))
    put_array(http, f"{root}/leaf", np.arange(3))

    response = http.delete(f"/metadata/{root}/leaf")
    assert response.status_code == 200
    assert response.json()["deleted"] == [root, "leaf"]
    assert http.get(f"/metadata/{root}/leaf").status_code == 404

    refused = http.delete(f"/metadata/{root}/run")
    assert refused.status_code == 409
    assert "recursive" in refused.json()["detail"]
    assert refused.json()["error"] == "ConflictError"
    assert http.get(f"/array/full/{root}/run/inner/a").status_code == 200

    response = http.delete(f"/metadata/{root}/run", params={"recursive": "true"})
    assert response.status_code == 200
    assert response.json()["nodes"] == 3
    for path in ("run", "run/inner", "run/inner/a"):
        assert http.get(f"/metadata/{root}/{path}").status_code == 404
    # An empty container needs no recursive flag.
    create(http, root, "empty")
    assert http.delete(f"/metadata/{root}/empty").status_code == 200
    # The root itself cannot go.
    assert http.delete("/metadata/", params={"recursive": "true"}).status_code == 400


# ---- arrays and streams ---------------------------------------------------------


def test_array_full_put_get_patch_and_block(http):
    path = f"{http.root}/a"
    data = np.arange(12, dtype="<f8").reshape(4, 3)
    put_array(http, path, data)
    got = http.get(f"/array/full/{path}")
    assert got.headers["content-type"].startswith(OCTET)
    assert got.content == data.tobytes()
    sliced = http.get(f"/array/full/{path}", params={"slice": "1:3,::2", "expected_shape": "2,2"})
    assert sliced.content == np.ascontiguousarray(data[1:3, ::2]).tobytes()
    wrong = http.get(f"/array/full/{path}", params={"slice": "1:3", "expected_shape": "5,3"})
    assert wrong.status_code == 422

    # Overwrite a region in place (no extend).
    response = http.patch(
        f"/array/full/{path}",
        params={"offset": "1,0", "shape": "1,3"},
        content=np.array([[-1.0, -2.0, -3.0]]).tobytes(),
    )
    assert response.status_code == 200, response.text
    data[1] = [-1, -2, -3]
    assert http.get(f"/array/full/{path}").content == data.tobytes()

    block = http.get(f"/array/block/{path}", params={"block": "0,0"})
    assert block.status_code == 200
    assert block.content == data.tobytes()
    missing = http.get(f"/array/block/{path}", params={"block": "1,0"})
    assert missing.status_code == 422
    assert "block" in missing.json()["detail"]


def test_array_append_extends_axis_zero_and_readers_see_it(http, server):
    path = f"{http.root}/stream"
    put_array(http, path, np.arange(6, dtype=np.int32).reshape(2, 3))
    headers = {"Authorization": f"Apikey {server.api_key}"}
    with httpx.Client(base_url=f"{server.base_url}/api/v1", headers=headers) as reader:
        for step in range(3):
            rows = np.full((2, 3), 100 + step, dtype=np.int32)
            length = 2 + 2 * step
            response = http.patch(
                f"/array/full/{path}",
                params={"offset": str(length), "shape": "2,3", "extend": "true"},
                content=rows.tobytes(),
            )
            assert response.status_code == 200, response.text
            assert response.json()["shape"] == [length + 2, 3]
            # Another client sees the new rows at once.
            shape = reader.get(f"/metadata/{path}").json()["data"]["attributes"]["structure"]
            assert shape["shape"] == [length + 2, 3]
            got = np.frombuffer(reader.get(f"/array/full/{path}").content, dtype=np.int32)
            assert got.reshape(-1, 3)[-2:].tolist() == rows.tolist()
    final = np.frombuffer(http.get(f"/array/full/{path}").content, dtype=np.int32).reshape(-1, 3)
    assert final[:2].tolist() == np.arange(6).reshape(2, 3).tolist()
    assert final.shape == (8, 3)


def test_close_stream_route(http):
    root = http.root
    put_array(http, f"{root}/a", np.arange(3))
    response = http.delete(f"/stream/close/{root}/a")
    assert response.status_code == 200
    assert response.json() == {"closed": [root, "a"]}
    again = http.delete(f"/stream/close/{root}/a")
    assert again.status_code == 409
    assert again.json()["error"] == "StreamClosedError"
    assert "already closed" in again.json()["detail"]
    append = http.patch(
        f"/array/full/{root}/a",
        params={"offset": "3", "shape": "1", "extend": "true"},
        content=np.array([3]).tobytes(),
    )
    assert append.status_code == 409
    assert "closed" in append.json()["detail"]
    container = http.delete(f"/stream/close/{root}")
    assert container.status_code == 409
    assert container.json()["error"] == "NotAStreamError"
    assert "container" in container.json()["detail"]
    assert http.delete(f"/stream/close/{root}/missing").status_code == 404


# ---- tables ---------------------------------------------------------------------


def test_table_routes(http):
    path = f"{http.root}/t"
    table = pa.table({"x": [1, 2], "s": ["a", None]})
    put_table(http, path, table)
    full = http.get(f"/table/full/{path}")
    assert full.headers["content-type"].startswith(ARROW)
    assert read_ipc(full.content).equals(table)
    assert read_ipc(http.get(f"/table/partition/{path}", params={"partition": 0}).content).equals(
        table
    )
    assert read_ipc(
        http.get(f"/table/full/{path}", params={"column": "s"}).content
    ).column_names == ["s"]
    assert http.get(f"/table/full/{path}", params={"column": "nope"}).status_code == 400
    assert http.get(f"/table/partition/{path}", params={"partition": 1}).status_code == 400

    more = pa.table({"x": [3], "s": ["c"]})
    response = http.patch(f"/table/partition/{path}", params={"partition": 0}, content=ipc(more))
    assert response.status_code == 200, response.text
    assert response.json()["columns"] == ["x", "s"]
    got = read_ipc(http.get(f"/table/full/{path}").content)
    assert got.column("x").to_pylist() == [1, 2, 3]
    assert got.column("s").to_pylist() == ["a", None, "c"]

    replacement = pa.table({"x": [9], "s": ["z"]})
    response = http.put(
        f"/table/partition/{path}", params={"partition": 0}, content=ipc(replacement)
    )
    assert response.status_code == 200
    assert read_ipc(http.get(f"/table/full/{path}").content).equals(replacement)

    wrong_columns = http.patch(
        f"/table/partition/{path}", params={"partition": 0}, content=ipc(pa.table({"y": [1]}))
    )
    assert wrong_columns.status_code == 422
    assert "columns" in wrong_columns.json()["detail"]
    closed = http.delete(f"/stream/close/{path}")
    assert closed.status_code == 200
    refused = http.patch(f"/table/partition/{path}", params={"partition": 0}, content=ipc(more))
    assert refused.status_code == 409


def test_keys_are_percent_encoded(http):
    root = http.root
    for key in ["with space", "ünï", "a%2Fb", "q?x"]:
        assert create(http, root, key).status_code == 200, key
    listed = http.get(f"/search/{root}").json()["data"]
    assert [item["id"] for item in listed] == ["with space", "ünï", "a%2Fb", "q?x"]
    for item in listed:
        assert http.get(item["links"]["self"]).json()["data"]["id"] == item["id"]


def test_a_block_upload_on_the_declared_grid(http, server):
    """Blocks of the grid a client declared land on hookbook's chunks, in any
    order and more than once; the array is readable (and announced) only once
    every block is in, and then reports hookbook's chunks."""
    path = f"{http.root}/blocks"
    data = np.arange(7 * 3, dtype=">i4").reshape(7, 3)
    declared = array_structure(data) | {"chunks": [[3, 3, 1], [2, 1]]}
    assert create(http, http.root, "blocks", "array", structure=declared).status_code == 200
    grid = {(0, 0): data[0:3, 0:2], (2, 1): data[6:7, 2:3], (1, 0): data[3:6, 0:2]}
    grid |= {(0, 1): data[0:3, 2:3], (1, 1): data[3:6, 2:3]}
    for block, piece in grid.items():
        put = http.put(
            f"/array/block/{path}",
            params={"block": ",".join(map(str, block))},
            content=np.ascontiguousarray(piece).tobytes(),
        )
        assert put.status_code == 200, put.text
        assert http.get(f"/array/full/{path}").status_code == 409  # not complete yet
    again = http.put(
        f"/array/block/{path}", params={"block": "0,0"}, content=data[0:3, 0:2].tobytes()
    )
    assert again.status_code == 200
    assert http.get(f"/array/full/{path}").status_code == 409
    last = np.ascontiguousarray(data[6:7, 0:2])
    put = http.put(f"/array/block/{path}", params={"block": "2,0"}, content=last.tobytes())
    assert put.status_code == 200, put.text
    assert http.get(f"/array/full/{path}").content == data.tobytes()
    structure = http.get(f"/metadata/{path}").json()["data"]["attributes"]["structure"]
    assert structure["chunks"] == [[7], [3]]  # hookbook's grid: whole rows
    block = http.get(f"/array/block/{path}", params={"block": "0,0", "expected_shape": "7,3"})
    assert block.content == data.tobytes()
    sliced = http.get(f"/array/block/{path}", params={"block": "0,0", "slice": "2:4,1"})
    assert sliced.content == np.ascontiguousarray(data[2:4, 1]).tobytes()

    async def events_for(key):
        import sqlalchemy as sa

        from hookbook.db import event_log

        async with server.app.state.services.db.read() as conn:
            query = sa.select(event_log.c.type).where(event_log.c.path == key)
            return list((await conn.execute(query)).scalars())

    assert server.run(events_for(path)) == ["container-child-created"]


def test_block_reads_keep_the_byte_order_of_scalars(http):
    path = f"{http.root}/be"
    data = np.arange(6, dtype=">i4").reshape(2, 3)
    put_array(http, path, data)
    one = http.get(f"/array/block/{path}", params={"block": "0,0", "slice": "1,2"})
    assert one.content == b"\x00\x00\x00\x05"  # big-endian, as declared
    assert one.headers["x-hookbook-shape"] == ""
    whole = http.get(f"/array/full/{path}", params={"slice": "1,2"})
    assert whole.content == b"\x00\x00\x00\x05"
