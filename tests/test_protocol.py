"""Tests of hookbook.protocol: the Tiled-protocol wire models.

Where the tiled client is installed (the test extra), documents are also
checked with the client's own parsers.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import require
from hookbook import protocol as P
from hookbook.errors import ConflictError
from hookbook.patching import PatchBudget

BASE = "http://127.0.0.1:8000/api/v1"


# ---------------------------------------------------------------------------
# DataType
# ---------------------------------------------------------------------------

ROUND_TRIP_DTYPES = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    np.longdouble,
    np.clongdouble,
    ">i2",
    ">i4",
    ">u8",
    ">f4",
    ">f8",
    ">c16",
    "<f8",
    "datetime64[ns]",
    "datetime64[s]",
    "datetime64[D]",
    "datetime64[10s]",
    "datetime64",
    ">M8[us]",
    "timedelta64[ms]",
    "timedelta64[25ns]",
    "S5",
    "U3",
    ">U2",
    "V8",
]


@pytest.mark.parametrize("spec", ROUND_TRIP_DTYPES, ids=str)
def test_dtype_round_trip(spec):
    dtype = np.dtype(spec)
    data_type = P.DataType.from_numpy(dtype)
    assert data_type.to_numpy() == dtype
    assert data_type.to_numpy().str == dtype.str
    # Through JSON and back.
    again = P.DataType.model_validate_json(data_type.model_dump_json())
    assert again == data_type
    assert again.to_numpy() == dtype


@pytest.mark.parametrize("spec", ROUND_TRIP_DTYPES, ids=str)
def test_dtype_matches_tiled(spec):
    array_module = require("tiled.structures.array")
    dtype = np.dtype(spec)
    ours = P.DataType.from_numpy(dtype).model_dump(mode="json")
    theirs = dataclasses.asdict(array_module.BuiltinDtype.from_numpy_dtype(dtype))
    theirs = json.loads(json.dumps(theirs))  # enums -> their values
    assert ours == theirs
    assert array_module.BuiltinDtype.from_json(ours).to_numpy_dtype() == dtype


def test_dtype_fields():
    data_type = P.DataType.from_numpy("<M8[ns]")
    assert data_type.model_dump() == {
        "endianness": "little",
        "kind": "M",
        "itemsize": 8,
        "dt_units": "[ns]",
    }
    assert P.DataType.from_numpy("u1").endianness == "not_applicable"
    assert P.DataType.from_numpy("bool").kind == "b"
    assert P.DataType.from_numpy("U3").itemsize == 12
    assert P.DataType.from_numpy(f"={'i4'}").endianness == sys.byteorder


@pytest.mark.parametrize(
    "dtype, word",
    [
        (np.dtype(object), "object"),
        (np.dtype([("a", "<i4"), ("b", "<f8")]), "structured"),
        (np.dtype(("<f8", (2,))), "sub-array"),
        (np.dtypes.StringDType(), "not supported"),
    ],
    ids=["object", "structured", "subarray", "stringdtype"],
)
def test_dtype_rejected(dtype, word):
    with pytest.raises(ValueError, match=word) as info:
        P.DataType.from_numpy(dtype)
    assert repr(dtype) in str(info.value)


@pytest.mark.parametrize(
    "document",
    [
        {"endianness": "little", "kind": "i", "itemsize": 3},
        {"endianness": "little", "kind": "O", "itemsize": 8},
        {"endianness": "middle", "kind": "i", "itemsize": 4},
        {"endianness": "little", "kind": "f", "itemsize": 8, "dt_units": "[ns]"},
        {"endianness": "little", "kind": "M", "itemsize": 8, "dt_units": "ns"},
        {"endianness": "little", "kind": "U", "itemsize": 6},
        {"itemsize": 8, "fields": [{"name": "a"}]},
    ],
)
def test_dtype_document_rejected(document):
    with pytest.raises(ValidationError):
        P.DataType.model_validate(document)


# ---------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------


def test_array_structure_from_array():
    structure = P.ArrayStructure.from_array((3, 4), "float64", dims=["x", "y"])
    assert structure.chunks == ((3,), (4,))
    assert structure.shape == (3, 4)
    assert structure.nbytes == 96
    document = structure.model_dump(mode="json")
    assert document == {
        "data_type": {"endianness": "little", "kind": "f", "itemsize": 8, "dt_units": None},
        "chunks": [[3], [4]],
        "shape": [3, 4],
        "dims": ["x", "y"],
        "resizable": False,
    }
    assert P.ArrayStructure.model_validate(document) == structure


def test_array_structure_zero_d_and_empty():
    scalar = P.ArrayStructure.from_array((), "int32")
    assert scalar.chunks == () and scalar.shape == ()
    empty = P.ArrayStructure.from_array((0, 5), "int32")
    assert empty.chunks == ((0,), (5,))
    assert P.ArrayStructure.from_array(np.zeros((2, 3)).shape, np.float32).shape == (2, 3)


def test_array_structure_with_shape():
    structure = P.ArrayStructure.from_array((3, 4), "<i4", dims=["t", "x"])
    grown = structure.with_shape((5, 4), ((2, 2, 1), (4,)))
    assert grown.shape == (5, 4) and grown.chunks == ((2, 2, 1), (4,))
    assert grown.dims == ("t", "x") and grown.data_type == structure.data_type
    assert grown.nblocks == 3
    assert grown.block_region((1, 0)) == (slice(2, 4), slice(0, 4))
    assert grown.block_region((2, 0)) == (slice(4, 5), slice(0, 4))
    with pytest.raises(ValueError, match="axis 0 has 3 chunks"):
        grown.block_region((3, 0))
    with pytest.raises(ValueError, match="2 axes"):
        grown.block_region((0,))
    with pytest.raises(ValueError, match="do not add up"):
        structure.with_shape((5, 4), ((2, 2), (4,)))


def test_array_structure_parsed_by_tiled():
    array_module = require("tiled.structures.array")
    structure = P.ArrayStructure.from_array((2, 3), ">f4")
    theirs = array_module.ArrayStructure.from_json(structure.model_dump(mode="json"))
    assert theirs.shape == (2, 3)
    assert theirs.chunks == ((2,), (3,))
    assert theirs.data_type.to_numpy_dtype() == np.dtype(">f4")
    assert theirs.resizable is False


@pytest.mark.parametrize(
    "change",
    [
        {"chunks": [[2], [2]]},
        {"chunks": [[3]]},
        {"shape": [3, -4], "chunks": [[3], [-4]]},
        {"dims": ["only-one"]},
        {"shape": "34"},
    ],
)
def test_array_structure_rejected(change):
    document = P.ArrayStructure.from_array((3, 4), "f8").model_dump(mode="json")
    document.update(change)
    with pytest.raises(ValidationError):
        P.ArrayStructure.model_validate(document)


def test_table_structure_round_trip():
    pa = require("pyarrow")
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    structure = P.TableStructure.from_arrow_schema(schema)
    assert structure.arrow_schema.startswith(P.ARROW_SCHEMA_PREFIX)
    assert structure.columns == ("a", "b")
    assert structure.npartitions == 1
    assert structure.decoded_schema().equals(schema)
    document = structure.model_dump(mode="json")
    assert document["columns"] == ["a", "b"] and document["resizable"] is False
    assert P.TableStructure.model_validate(document) == structure
    assert P.TableStructure.from_arrow_schema(schema, npartitions=3).npartitions == 3


def test_table_structure_leaves_out_pandas_index():
    pa = require("pyarrow")
    pd = require("pandas")
    frame = pd.DataFrame({"q": [1.0, 2.0]}, index=[10, 20])
    schema = pa.Table.from_pandas(frame).schema
    assert "__index_level_0__" in schema.names
    structure = P.TableStructure.from_arrow_schema(schema)
    assert structure.columns == ("q",)
    assert structure.decoded_schema().equals(schema)


def test_table_structure_matches_tiled():
    pa = require("pyarrow")
    pd = require("pandas")
    table_module = require("tiled.structures.table")
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    theirs = table_module.TableStructure.from_pandas(frame)
    ours = P.TableStructure.model_validate(dataclasses.asdict(theirs))
    assert ours.decoded_schema().equals(pa.Table.from_pandas(frame).schema)
    back = table_module.TableStructure.from_json(
        P.TableStructure.from_arrow_schema(ours.decoded_schema()).model_dump(mode="json")
    )
    assert list(back.meta.columns) == ["a", "b"]


@pytest.mark.parametrize(
    "change, word",
    [
        ({"arrow_schema": "data:text/plain;base64,AAAA"}, "data URI"),
        ({"arrow_schema": P.ARROW_SCHEMA_PREFIX + "!!!"}, "base64"),
        ({"columns": ["_hidden"]}, "reserves"),
        ({"npartitions": 0}, "greater than or equal"),
    ],
)
def test_table_structure_rejected(change, word):
    document = {"arrow_schema": P.ARROW_SCHEMA_PREFIX + "AAAA", "npartitions": 1, "columns": ["a"]}
    document.update(change)
    with pytest.raises(ValidationError, match=word):
        P.TableStructure.model_validate(document)


def test_table_structure_unreadable_schema():
    require("pyarrow")
    structure = P.TableStructure(arrow_schema=P.ARROW_SCHEMA_PREFIX + "AAAA", columns=["a"])
    with pytest.raises(ValueError, match="Arrow schema"):
        structure.decoded_schema()


def test_container_structure_keeps_contents_key():
    assert P.ContainerStructure(count=2).model_dump() == {"contents": None, "count": 2}


def test_parse_structure():
    assert isinstance(P.parse_structure("container", {"count": 0}), P.ContainerStructure)
    with pytest.raises(ValueError, match="'sparse' is not supported"):
        P.parse_structure("sparse", {})
    with pytest.raises(ValueError, match="invalid array structure"):
        P.parse_structure("array", {"shape": [1]})


def test_importing_protocol_needs_neither_pyarrow_nor_tiled():
    code = (
        "import sys, hookbook.protocol\n"
        "assert 'pyarrow' not in sys.modules, 'pyarrow'\n"
        "assert 'tiled' not in sys.modules, 'tiled'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# About document
# ---------------------------------------------------------------------------


def test_about_document_shape():
    document = P.about_document(BASE + "/", "1.2.3")
    assert set(document) == {
        "api_version",
        "library_version",
        "formats",
        "aliases",
        "queries",
        "authentication",
        "links",
        "meta",
    }
    assert document["links"]["self"] == BASE
    assert document["authentication"]["providers"] == []
    assert document["authentication"]["required"] is True
    assert document["formats"]["array"] == ["application/octet-stream"]
    assert document["formats"]["table"] == ["application/vnd.apache.arrow.file"]
    assert document["formats"]["container"] == ["application/json"]
    assert document["meta"]["hookbook_version"] == "1.2.3"
    assert json.loads(json.dumps(document)) == document
    open_document = P.about_document(BASE, "1", api_key_required=False)
    assert open_document["authentication"]["required"] is False


def test_about_document_accepted_by_tiled():
    schemas = require("tiled.schemas")
    from packaging.version import Version
    from pydantic import TypeAdapter

    about = TypeAdapter(schemas.About).validate_python(P.about_document(BASE, "0.1.0"))
    # What tiled.client.context.Context and from_context read at connect:
    assert about.links["self"] == BASE
    assert about.authentication.providers == []
    assert about.authentication.required is True
    # tiled.client.container.Container.new drops data-source fields below 0.2.4.
    assert Version(about.library_version) >= Version("0.2.4")
    for family in ("array", "table", "container"):
        assert family in about.formats


def test_api_key_pattern():
    import secrets

    assert P.TILED_API_KEY_PATTERN.match(secrets.token_hex(16))
    assert not P.TILED_API_KEY_PATTERN.match("abc-def")


# ---------------------------------------------------------------------------
# Items and links
# ---------------------------------------------------------------------------


def test_links_for_each_family():
    container = P.links_for("container", BASE, ["run1"])
    assert container == {
        "self": f"{BASE}/metadata/run1",
        "search": f"{BASE}/search/run1",
        "full": f"{BASE}/container/full/run1",
    }
    array = P.links_for("array", BASE, ["run1", "det"], ndim=2)
    assert array["full"] == f"{BASE}/array/full/run1/det"
    assert array["block"] == f"{BASE}/array/block/run1/det?block={{0}},{{1}}"
    assert array["block"].format(0, 1).endswith("?block=0,1")
    table = P.links_for("table", BASE, ["t"])
    assert table["full"] == f"{BASE}/table/full/t"
    assert table["partition"].format(index=0) == f"{BASE}/table/partition/t?partition=0"
    with pytest.raises(ValueError, match="ndim"):
        P.links_for("array", BASE, ["a"])


def test_root_links_keep_the_metadata_slash():
    root = P.links_for("container", BASE + "/", [])
    assert root["self"] == f"{BASE}/metadata/"
    # tiled.client.base.BaseClient.close_stream derives its URL like this:
    assert root["self"].replace("/metadata/", "/stream/close/", 1) == f"{BASE}/stream/close/"
    child = P.links_for("array", BASE, ["a"], ndim=0)
    assert child["self"].replace("/metadata/", "/stream/close/", 1) == f"{BASE}/stream/close/a"
    assert child["block"].format() == f"{BASE}/array/block/a?block="


def test_links_quote_keys():
    links = P.links_for("container", BASE, ["a b", "c%d"])
    assert links["self"] == f"{BASE}/metadata/a%20b/c%25d"


def test_item_document():
    structure = P.ArrayStructure.from_array((3,), "f8")
    document = P.item(
        ["run1", "det"],
        structure_family="array",
        structure=structure,
        base_url=BASE,
        metadata={"a": 1},
        specs=["s", {"name": "t", "version": "2"}],
    )
    assert document["id"] == "det"
    attributes = document["attributes"]
    assert attributes["ancestors"] == ["run1"]
    assert attributes["structure_family"] == "array"
    assert attributes["specs"] == [{"name": "s", "version": None}, {"name": "t", "version": "2"}]
    assert attributes["metadata"] == {"a": 1}
    assert attributes["structure"]["dims"] is None
    assert attributes["access_tags"] == []
    assert document["links"]["self"] == f"{BASE}/metadata/run1/det"
    assert document["links"]["block"] == f"{BASE}/array/block/run1/det?block={{0}}"
    assert None not in document["links"].values()
    assert P.Item.model_validate(document).attributes.structure == structure
    assert P.metadata_response(document) == {"data": document, "meta": {}}


def test_root_item_and_container_structure():
    document = P.item(
        [], structure_family="container", structure=P.ContainerStructure(count=3), base_url=BASE
    )
    assert document["id"] == ""
    assert document["attributes"]["ancestors"] == []
    assert document["attributes"]["structure"] == {"contents": None, "count": 3}
    assert set(document["links"]) == {"self", "search", "full"}


def test_item_family_mismatch():
    with pytest.raises(ValueError):
        P.item(["a"], structure_family="table", structure={"count": 1}, base_url=BASE)


def _tiled_client_for(document):
    container = require("tiled.client.container")
    utils = require("tiled.client.utils")
    dispatch = container.DEFAULT_STRUCTURE_CLIENT_DISPATCH["numpy"]
    # No HTTP happens while a client object is built from an item.
    return utils.client_for_item(None, dispatch, document)


def test_items_build_tiled_client_objects():
    array = _tiled_client_for(
        P.item(
            ["run1", "x"],
            structure_family="array",
            structure=P.ArrayStructure.from_array((2, 2), "<i8"),
            base_url=BASE,
            metadata={"a": 1},
            specs=["s"],
        )
    )
    assert type(array).__name__ == "ArrayClient"
    assert array.shape == (2, 2) and array.dtype == np.dtype("<i8")
    assert array.structure().resizable is False
    assert dict(array.metadata) == {"a": 1}
    assert [s.name for s in array.specs] == ["s"]
    assert array.path_parts == ["run1", "x"]
    assert array.metadata_copy()[0] == {"a": 1}  # reads attributes.access_tags

    root = _tiled_client_for(
        P.item([], structure_family="container", structure={"count": 0}, base_url=BASE)
    )
    assert type(root).__name__ == "Container"
    assert root.item["attributes"]["structure"]["contents"] is None
    assert root.sorting == [("", 1)]  # the server's default order; no sort= is sent

    pa = require("pyarrow")
    table = _tiled_client_for(
        P.item(
            ["t"],
            structure_family="table",
            structure=P.TableStructure.from_arrow_schema(pa.schema([("v", pa.float64())])),
            base_url=BASE,
        )
    )
    assert type(table).__name__ == "DataFrameClient"
    assert table.columns == ["v"]


# ---------------------------------------------------------------------------
# Search paging
# ---------------------------------------------------------------------------


def _offset(link):
    if link is None:
        return None
    query = link.split("?", 1)[1]
    params = dict(part.split("=") for part in query.split("&"))
    return int(params["page[offset]"]), int(params["page[limit]"])


@pytest.mark.parametrize(
    "offset, limit, count, next_, prev, last",
    [
        (0, 100, 0, None, None, 0),
        (0, 100, 5, None, None, 0),
        (0, 2, 5, 2, None, 4),
        (2, 2, 5, 4, 0, 4),
        (4, 2, 5, None, 2, 4),
        (0, 2, 4, 2, None, 2),
        (2, 2, 4, None, 0, 2),
        (3, 2, 10, 5, 1, 8),
        (1, 2, 10, 3, 0, 8),
        (10, 5, 3, None, 5, 0),
        (0, 0, 7, None, None, 0),
    ],
)
def test_pagination_links(offset, limit, count, next_, prev, last):
    links = P.pagination_links(BASE, ["run1"], offset=offset, limit=limit, count=count)
    assert set(links) == {"self", "first", "last", "next", "prev"}
    assert links["self"] == f"{BASE}/search/run1?page[offset]={offset}&page[limit]={limit}"
    assert _offset(links["first"]) == (0, limit)
    assert _offset(links["last"]) == (last, limit)
    assert _offset(links["next"]) == (None if next_ is None else (next_, limit))
    assert _offset(links["prev"]) == (None if prev is None else (prev, limit))


def test_search_response_follows_to_the_end():
    keys = [f"k{i}" for i in range(7)]

    def page(offset, limit):
        items = [
            P.item([k], structure_family="container", structure={"count": 0}, base_url=BASE)
            for k in keys[offset : offset + limit]
        ]
        return P.search_response(
            items, base_url=BASE, path_segments=[], offset=offset, limit=limit, count=len(keys)
        )

    seen, response = [], page(0, 3)
    while True:
        assert response["meta"] == {"count": 7}
        seen += [i["id"] for i in response["data"]]
        if response["links"]["next"] is None:
            break
        response = page(*_offset(response["links"]["next"]))
    assert seen == keys
    assert P.SearchResponse.model_validate(response).meta.count == 7


def test_search_response_root_route():
    response = P.search_response([], base_url=BASE, path_segments=[], offset=0, limit=10, count=0)
    assert response["links"]["self"] == f"{BASE}/search/?page[offset]=0&page[limit]=10"
    assert response["data"] == [] and response["links"]["next"] is None


def test_parse_fields_and_sort():
    assert P.parse_fields(None) is None
    assert P.parse_fields([""]) == {""}
    assert P.parse_fields(["count"]) == {"count"}
    with pytest.raises(ValueError, match="bogus"):
        P.parse_fields(["bogus"])
    assert P.parse_sort(None) == []
    assert P.parse_sort(["-"]) == [("", -1)]
    assert P.parse_sort(["", ""]) == []
    assert P.parse_sort(["a", "-b", "+c"]) == [("a", 1), ("b", -1), ("c", 1)]
    with pytest.raises(ValueError, match="duplicate"):
        P.parse_sort(["a", "-a"])
    with pytest.raises(ValueError, match="last"):
        P.parse_sort(["-", "a"])


# ---------------------------------------------------------------------------
# Slicing
# ---------------------------------------------------------------------------

SLICE_CASES = [
    # (text, shape, numpy index)
    (None, (3, 4), ()),
    ("", (3, 4), ()),
    ("1", (3, 4), np.s_[1]),
    ("-1", (3, 4), np.s_[-1]),
    ("1:3", (3, 4), np.s_[1:3]),
    ("1:3,::2", (3, 4), np.s_[1:3, ::2]),
    (":", (3, 4), np.s_[:]),
    ("::", (3, 4), np.s_[:]),
    ("1:", (5,), np.s_[1:]),
    (":2", (5,), np.s_[:2]),
    ("::-1", (5,), np.s_[::-1]),
    ("4:-6:-1", (5,), np.s_[4:-6:-1]),  # how the client expands [::-1]
    ("-3:", (5,), np.s_[-3:]),
    ("1:3:1,0:4:1", (3, 4), np.s_[1:3, 0:4]),
    ("2,0:4:1", (3, 4), np.s_[2, :]),
    ("0:3:1,2", (3, 4), np.s_[:, 2]),
    ("...,2", (3, 4), np.s_[..., 2]),
    ("1,...", (2, 3, 4), np.s_[1, ...]),
    ("...", (2, 3), np.s_[...]),
    ("(1:3, 2)", (3, 4), np.s_[1:3, 2]),
    ("[0]", (3,), np.s_[0]),
    ("1,", (3, 4), np.s_[1]),
    (" 1 : 3 ", (5,), np.s_[1:3]),
    ("10:20", (5,), np.s_[10:20]),
    ("", (), ()),
    ("...", (), ()),
    (":0", (4,), np.s_[:0]),
]


@pytest.mark.parametrize("text, shape, index", SLICE_CASES, ids=lambda v: repr(v))
def test_parse_slice(text, shape, index):
    array = np.arange(int(np.prod(shape))).reshape(shape)
    key = P.parse_slice(text, shape)
    assert len(key) == len(shape)
    np.testing.assert_array_equal(array[key], array[index])
    assert P.sliced_shape(key, shape) == np.shape(array[index])


@pytest.mark.parametrize(
    "text, shape, word",
    [
        ("a", (3,), "not an integer"),
        ("1.5", (3,), "not an integer"),
        ("1:2:3:4", (5,), "too many"),
        ("::0", (5,), "zero"),
        ("1,,2", (3, 3), "empty"),
        (",", (3,), "empty"),
        ("...,...", (3,), "more than one"),
        ("3", (3,), "out of range"),
        ("-4", (3,), "out of range"),
        ("1,2,3", (3, 3), "indices"),
        ("1", (), "indices"),
        ("1;2", (3, 3), "not an integer"),
    ],
)
def test_parse_slice_rejects(text, shape, word):
    with pytest.raises(ValueError, match=word):
        P.parse_slice(text, shape)


@pytest.mark.parametrize(
    "index",
    [np.s_[1:3], np.s_[::-1], np.s_[-1], np.s_[..., 2], np.s_[::2, 1], np.s_[-3:, 1:2], np.s_[5]],
    ids=repr,
)
def test_parse_slice_as_tiled_client_formats_it(index):
    ndslice = require("tiled.ndslice")
    shape = (10, 4)
    value = ndslice.NDSlice(index)
    if value:
        value = value.expand_for_shape(shape)
    text = value.to_numpy_str()
    array = np.arange(40).reshape(shape)
    key = P.parse_slice(text, shape)
    np.testing.assert_array_equal(array[key], array[index])
    assert P.sliced_shape(key, shape) == value.shape_after_slice(shape)


@pytest.mark.parametrize(
    "index, text",
    [
        (np.s_[1:3], "1:3"),
        (np.s_[1:3, 2], "1:3,2"),
        (np.s_[::2], "::2"),
        (np.s_[..., -1], "...,-1"),
        (np.int64(4), "4"),
    ],
)
def test_format_slice(index, text):
    assert P.format_slice(index) == text
    shape = (6, 6)
    array = np.arange(36).reshape(shape)
    np.testing.assert_array_equal(array[P.parse_slice(text, shape)], array[index])


def test_format_slice_rejects():
    with pytest.raises(ValueError):
        P.format_slice(np.s_[[1, 2]])


def test_parse_expected_shape_and_ints():
    assert P.parse_expected_shape(None) is None
    assert P.parse_expected_shape("scalar") == ()
    assert P.parse_expected_shape("3,4") == (3, 4)
    assert P.parse_int_tuple("3", name="offset") == (3,)
    with pytest.raises(ValueError, match="offset"):
        P.parse_int_tuple("-1", name="offset")
    with pytest.raises(ValueError, match="shape"):
        P.parse_int_tuple("", name="shape")


# ---------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, []),
        ([], []),
        ("xdi", [("xdi", None)]),
        (["a", "b"], [("a", None), ("b", None)]),
        ({"name": "a", "version": "1"}, [("a", "1")]),
        ([{"name": "a"}], [("a", None)]),
        ([P.Spec(name="a", version="2")], [("a", "2")]),
        (("a", {"name": "b", "version": None}), [("a", None), ("b", None)]),
    ],
)
def test_normalise_specs(value, expected):
    assert [(s.name, s.version) for s in P.normalise_specs(value)] == expected


def test_normalise_specs_accepts_tiled_spec():
    core = require("tiled.structures.core")
    assert P.normalise_specs([core.Spec("a", version="1")]) == [P.Spec(name="a", version="1")]


@pytest.mark.parametrize(
    "value, word",
    [
        (3, "int"),
        ([3], "int"),
        ([["a"]], "list"),
        (b"a", "bytes"),
        ([{"version": "1"}], "needs a 'name'"),
        ([{"name": "a", "other": 1}], "only 'name' and 'version'"),
        ([{"name": 1}], "name must be a string"),
        ([{"name": "a", "version": 1}], "version must be a string"),
        ([""], "invalid spec"),
        (["a", "a"], "duplicate"),
        ([f"s{i}" for i in range(P.MAX_SPECS + 1)], "at most"),
    ],
)
def test_normalise_specs_rejects(value, word):
    with pytest.raises(ValueError, match=word):
        P.normalise_specs(value)


def test_spec_serialises_with_version_key():
    assert P.Spec(name="a").model_dump() == {"name": "a", "version": None}


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------


def _array_create_body(**changes):
    # As tiled.client.container.Container.new sends it (write_array under the root).
    body = {
        "ancestors": [""],
        "metadata": {"u": 1},
        "structure_family": "array",
        "specs": [{"name": "s1", "version": None}],
        "data_sources": [
            {
                "structure_family": "array",
                "structure": P.ArrayStructure.from_array((3, 4), ">i4").model_dump(mode="json"),
                "id": None,
                "mimetype": None,
                "parameters": {},
                "properties": {},
                "assets": [],
                "management": "writable",
            }
        ],
        "access_tags": None,
        "id": "temp",
    }
    body.update(changes)
    return body


def test_create_array_request():
    request = P.CreateNodeRequest.model_validate(_array_create_body())
    assert request.id == "temp"
    assert request.structure_family is P.StructureFamily.array
    assert request.specs == [P.Spec(name="s1")]
    assert request.structure().shape == (3, 4)
    assert request.structure().data_type.endianness == "big"


def test_create_container_request():
    body = {
        "ancestors": [""],
        "metadata": {"x": 1},
        "structure_family": "container",
        "specs": [],
        "data_sources": [],
        "access_tags": None,
        "id": "run1",
    }
    request = P.CreateNodeRequest.model_validate(body)
    assert request.structure() is None and request.metadata == {"x": 1}


def test_create_table_request():
    pa = require("pyarrow")
    structure = P.TableStructure.from_arrow_schema(pa.schema([("x", pa.int64())]))
    body = {
        "structure_family": "table",
        "data_sources": [
            {
                "structure_family": "table",
                "structure": structure.model_dump(mode="json"),
                "mimetype": "application/x-tiled-sql-table",
                "parameters": {"table_name": "t"},
            }
        ],
        "id": "app",
    }
    assert P.CreateNodeRequest.model_validate(body).structure() == structure


@pytest.mark.parametrize(
    "changes, word",
    [
        ({"structure_family": "sparse"}, "'sparse' is not supported"),
        ({"structure_family": "container"}, "without data_sources"),
        ({"data_sources": []}, "exactly one data source"),
        ({"id": None}, "id"),
        ({"metadata": [1, 2]}, "JSON object"),
        ({"specs": [{"name": "a"}, {"name": "a"}]}, "duplicate"),
    ],
)
def test_create_request_rejected(changes, word):
    with pytest.raises(ValidationError, match=word):
        P.CreateNodeRequest.model_validate(_array_create_body(**changes))


@pytest.mark.parametrize(
    "source_change, word",
    [
        ({"assets": [{"data_uri": "file:///x"}]}, "external assets"),
        ({"management": "external"}, "'external' is not supported"),
        ({"structure_family": "table"}, "the node a 'array'"),
        ({"structure": None}, "needs a structure"),
        ({"structure": {"shape": [1]}}, "invalid array structure"),
    ],
)
def test_create_request_bad_data_source(source_change, word):
    body = _array_create_body()
    body["data_sources"][0].update(source_change)
    with pytest.raises(ValidationError, match=word):
        P.CreateNodeRequest.model_validate(body)


def test_create_response_never_carries_structure():
    links = P.links_for("array", BASE, ["temp"], ndim=2)
    document = P.CreateNodeResponse(
        id="temp", links=P.NodeLinks.model_validate(links), metadata={"u": 1}
    ).model_dump(mode="json")
    assert document == {"id": "temp", "links": links, "metadata": {"u": 1}, "access_tags": []}


BUDGET = PatchBudget(max_bytes=256 * 1024, max_operations=1000)


def test_metadata_patch_as_update_metadata_sends_it():
    body = {
        "content-type": "application/json-patch+json",
        "metadata": [
            {"op": "add", "path": "/v", "value": {"w": 3}},
            {"op": "replace", "path": "/u", "value": 2},
        ],
        "specs": [{"op": "add", "path": "/1", "value": {"name": "s2", "version": None}}],
        "access_tags": None,
    }
    request = P.MetadataPatchRequest.model_validate(body)
    metadata, specs = request.apply({"u": 1}, [P.Spec(name="s1")], budget=BUDGET)
    assert metadata == {"u": 2, "v": {"w": 3}}
    assert specs == [P.Spec(name="s1"), P.Spec(name="s2")]

    second = P.MetadataPatchRequest.model_validate(
        {
            "content-type": "application/json-patch+json",
            "metadata": [],
            "specs": [
                {"op": "replace", "path": "/0", "value": "s3"},
                {"op": "remove", "path": "/1"},
            ],
        }
    )
    metadata2, specs2 = second.apply(metadata, specs, budget=BUDGET)
    assert metadata2 == metadata and specs2 == [P.Spec(name="s3")]


def test_metadata_patch_without_specs_keeps_them():
    request = P.MetadataPatchRequest.model_validate(
        {"content-type": P.JSON_PATCH_MIME_TYPE, "metadata": [], "specs": None}
    )
    assert request.apply({"a": 1}, [P.Spec(name="s")], budget=BUDGET) == (
        {"a": 1},
        [P.Spec(name="s")],
    )


def test_metadata_patch_stale():
    request = P.MetadataPatchRequest.model_validate(
        {"content-type": P.JSON_PATCH_MIME_TYPE, "metadata": [{"op": "remove", "path": "/gone"}]}
    )
    with pytest.raises(ConflictError, match="does not apply"):
        request.apply({"a": 1}, [], budget=BUDGET)


def test_metadata_merge_patch():
    request = P.MetadataPatchRequest.model_validate(
        {
            "content-type": P.MERGE_PATCH_MIME_TYPE,
            "metadata": {"a": None, "b": {"c": 2}},
            "specs": ["x"],
        }
    )
    metadata, specs = request.apply({"a": 1, "b": {"d": 1}}, [P.Spec(name="old")], budget=BUDGET)
    assert metadata == {"b": {"c": 2, "d": 1}}
    assert specs == [P.Spec(name="x")]


@pytest.mark.parametrize(
    "body",
    [
        {"content-type": "application/json", "metadata": []},
        {"content-type": P.JSON_PATCH_MIME_TYPE, "metadata": {"a": 1}},
        {"content-type": P.JSON_PATCH_MIME_TYPE, "metadata": [{"value": 1}]},
        {"content-type": P.JSON_PATCH_MIME_TYPE, "specs": ["a"]},
        {"content-type": P.MERGE_PATCH_MIME_TYPE, "metadata": [{"op": "add", "path": "/a"}]},
        {"content-type": P.MERGE_PATCH_MIME_TYPE, "specs": [3]},
        {"metadata": []},
    ],
)
def test_metadata_patch_rejected(body):
    with pytest.raises(ValidationError):
        P.MetadataPatchRequest.model_validate(body)


def test_metadata_replace():
    request = P.MetadataReplaceRequest.model_validate(
        {"metadata": {"only": True}, "specs": None, "access_tags": None}
    )
    assert request.apply({"a": 1}, [P.Spec(name="s")]) == ({"only": True}, [P.Spec(name="s")])
    request = P.MetadataReplaceRequest.model_validate({"specs": ["t"]})
    assert request.apply({"a": 1}, []) == ({"a": 1}, [P.Spec(name="t")])


def test_metadata_update_response():
    document = P.MetadataUpdateResponse(
        id="a", metadata={"x": 1}, specs=[P.Spec(name="s")]
    ).model_dump(mode="json")
    assert document == {"id": "a", "metadata": {"x": 1}, "specs": [{"name": "s", "version": None}]}


def test_array_patch_extend():
    params = P.ArrayPatchParams.from_query(offset="3", shape="1,4", extend=True)
    plan = params.plan((3, 4))
    assert plan.new_shape == (4, 4)
    assert plan.region == (slice(3, 4), slice(0, 4))
    assert plan.conflict is None
    assert params.nbytes(8) == 32
    array = np.zeros(plan.new_shape)
    array[plan.region] = 1
    assert array[3].sum() == 4


def test_array_patch_inside_and_conflict():
    inside = P.ArrayPatchParams.from_query(offset="0,1", shape="2,2").plan((3, 4))
    assert inside.new_shape == (3, 4) and inside.conflict is None
    outside = P.ArrayPatchParams.from_query(offset="4", shape="1,4").plan((4, 4))
    assert outside.new_shape == (5, 4)
    # tiled.client.array.ArrayClient.patch rewrites "Use ?" into "Pass keyword argument ".
    assert "Use ?extend=true" in outside.conflict


@pytest.mark.parametrize(
    "offset, shape, persist, word",
    [
        ("0", "1", True, "axes"),
        ("0,0,0", "1,4", True, "more entries"),
        ("0", "1,4", False, "persist"),
    ],
)
def test_array_patch_rejected(offset, shape, persist, word):
    params = P.ArrayPatchParams.from_query(offset=offset, shape=shape, persist=persist)
    with pytest.raises(ValueError, match=word):
        params.plan((3, 4))


def test_delete_params_default_to_tileds():
    assert P.DeleteParams().model_dump() == {"recursive": False, "external_only": True}


def test_unsupported_routes_name_themselves():
    prefixes = {route.prefix for route in P.UNSUPPORTED_ROUTES}
    assert {"stream/single", "register", "revisions"} <= prefixes
    for route in P.UNSUPPORTED_ROUTES:
        detail = route.detail("GET")
        assert route.feature in detail and f"GET /api/v1/{route.prefix}/..." in detail


@pytest.mark.parametrize(
    "rest, prefix",
    [
        ("register", "register"),
        ("register/a/b", "register"),
        ("asset/bytes/x", "asset"),
        ("registered/x", None),  # a prefix is a whole segment
        ("array/block/x", None),  # served since the streams work
        ("metadata/x", None),
    ],
)
def test_find_unsupported(rest, prefix):
    found = P.find_unsupported(rest)
    assert (found and found.prefix) == prefix
