"""Catalog routes, following Tiled's ``/api/v1`` protocol (see ``docs/tiled-protocol.md``).

Both clients use these: the real ``tiled`` client and hookbook's own.
Handlers parse the request with :mod:`hookbook.protocol`, call one store
method, and answer with a protocol document.
"""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import Callable
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response

from ... import protocol
from ..._version import __version__
from ...catalog.decoding import table_from_ipc
from ...catalog.store import CatalogStore, Node
from ...errors import ClientInputError, InvalidRequestError, NotAcceptableError, UnsupportedError
from ...patching import PatchBudget
from ...paths import parse_path
from ..bodies import decode_json, read_body
from ..deps import ReadMetadata, StoreDep, WriteMetadata

router = APIRouter(prefix="/api/v1", tags=["catalog"])

#: The database's integer range (a 64-bit signed OFFSET on SQLite and PostgreSQL):
#: a larger page offset is a 422, not an overflow in the driver (500).
MAX_OFFSET = 2**63 - 1

ARROW_FILE = protocol.APACHE_ARROW_FILE_MIME_TYPE
SHAPE_HEADER = protocol.SHAPE_HEADER


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/api/v1"


async def _data(request: Request, store: CatalogStore) -> bytes:
    """An array's or a table's bytes, capped at ``max_data_bytes``."""
    return await read_body(request, store.limits.max_data_bytes, what="the data")


#: Tables bigger than this are decoded off the event loop.
_DECODE_ON_LOOP_BYTES = 1024 * 1024


async def _table(request: Request, store: CatalogStore) -> Any:
    """A table from an Arrow IPC body: capped, sized before it is decoded, checked."""
    data = await _data(request, store)
    if len(data) > _DECODE_ON_LOOP_BYTES:
        return await asyncio.to_thread(table_from_ipc, data, store.limits)
    return table_from_ipc(data, store.limits)


async def _json(request: Request, store: CatalogStore) -> Any:
    """A catalog JSON body (metadata, specs, structure), capped at ``max_json_body_bytes``.

    Nesting is bounded well above the metadata limit (which the store checks
    exactly), so that no recursive step on the way can overflow."""
    limits = store.limits
    raw = await read_body(request, limits.max_json_body_bytes)
    return decode_json(raw, max_depth=2 * limits.max_metadata_depth + 8)


async def node_item(store: CatalogStore, node: Node, base: str) -> dict[str, Any]:
    if node.structure_family == "container":
        structure: Any = protocol.ContainerStructure(count=await store.count_children(node))
    else:
        structure = node.structure
    return protocol.item(
        list(node.path),
        structure_family=node.structure_family,
        structure=structure,
        base_url=base,
        metadata=node.metadata,
        specs=node.specs,
    )


# ---- discovery ----------------------------------------------------------------


@router.get("/", summary="The about document (Tiled protocol)")
async def about(request: Request) -> dict[str, Any]:
    return protocol.about_document(base_url(request), __version__)


@router.get("/metadata/{path:path}", summary="A node's item")
async def get_metadata(
    path: str,
    request: Request,
    store: StoreDep,
    _: ReadMetadata,
    fields: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    protocol.parse_fields(fields)  # known names only; an item always carries every field
    node = await store.get(path)
    return protocol.metadata_response(await node_item(store, node, base_url(request)))


@router.get("/search/{path:path}", summary="A page of a container's children")
async def search(
    path: str,
    request: Request,
    store: StoreDep,
    _: ReadMetadata,
    offset: Annotated[int, Query(alias="page[offset]", ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(alias="page[limit]", ge=0)] = protocol.DEFAULT_PAGE_LIMIT,
    sort: Annotated[list[str] | None, Query()] = None,
    fields: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    protocol.parse_fields(fields)  # known names only; an item always carries every field
    filters = sorted(k for k in request.query_params if k.startswith("filter["))
    if filters:
        raise ClientInputError(f"hookbook does not support search filters ({filters[0]})")
    order = protocol.parse_sort(sort)
    if any(key for key, _ in order):
        raise ClientInputError(
            "hookbook lists children in creation order only: sort by a metadata key "
            "is not supported (sort=- reverses the order)"
        )
    descending = bool(order) and order[-1][1] < 0
    limit = min(limit, protocol.MAX_PAGE_LIMIT)
    children, count = await store.children(path, offset=offset, limit=limit, descending=descending)
    if offset + len(children) < count:  # a short page (max_page_bytes): the links follow it
        limit = len(children)
    base = base_url(request)
    items = [await node_item(store, child, base) for child in children]
    return protocol.search_response(
        items,
        base_url=base,
        path_segments=list(parse_path(path)),
        offset=offset,
        limit=limit,
        count=count,
    )


# ---- creating, updating, deleting ---------------------------------------------


@router.post("/metadata/{path:path}", summary="Create a child node")
async def create(path: str, request: Request, store: StoreDep, _: WriteMetadata) -> dict[str, Any]:
    data = await _json(request, store)
    body = protocol.parse_body(protocol.CreateNodeRequest, data)
    structure = body.structure()
    node = await store.create(
        path,
        body.id,
        body.structure_family.value,
        metadata=body.metadata,
        specs=[s.model_dump() for s in body.specs],
        structure=None if structure is None else structure.model_dump(mode="json"),
    )
    shape = node.structure["shape"] if node.structure and node.structure_family == "array" else None
    ndim = None if shape is None else len(shape)
    links = protocol.links_for(node.structure_family, base_url(request), list(node.path), ndim=ndim)
    return protocol.CreateNodeResponse(
        id=node.key, links=protocol.NodeLinks.model_validate(links), metadata=node.metadata
    ).model_dump(mode="json")


async def _update(
    store: CatalogStore,
    path: str,
    apply: Callable[[dict[str, Any], list[protocol.Spec]], tuple[dict[str, Any], Any]],
) -> dict[str, Any]:
    node = await store.get(path)
    # Off the event loop: a patch of a large document takes milliseconds.
    metadata, specs = await asyncio.to_thread(
        apply, node.metadata, protocol.normalise_specs(node.specs)
    )
    updated = await store.update_metadata(
        path, metadata=metadata, specs=[s.model_dump() for s in specs]
    )
    return protocol.MetadataUpdateResponse(
        id=updated.key, metadata=updated.metadata, specs=protocol.normalise_specs(updated.specs)
    ).model_dump(mode="json")


@router.patch("/metadata/{path:path}", summary="Patch a node's metadata and specs")
async def patch_metadata(
    path: str, request: Request, store: StoreDep, _: WriteMetadata
) -> dict[str, Any]:
    body = protocol.parse_body(protocol.MetadataPatchRequest, await _json(request, store))
    limits = store.limits
    budget = PatchBudget(limits.max_metadata_bytes, limits.max_patch_operations)
    return await _update(store, path, functools.partial(body.apply, budget=budget))


@router.put("/metadata/{path:path}", summary="Replace a node's metadata and specs")
async def replace_metadata(
    path: str, request: Request, store: StoreDep, _: WriteMetadata
) -> dict[str, Any]:
    body = protocol.parse_body(protocol.MetadataReplaceRequest, await _json(request, store))
    return await _update(store, path, body.apply)


@router.delete("/metadata/{path:path}", summary="Delete a node (recursive=true: and below)")
async def delete(
    path: str,
    store: StoreDep,
    _: WriteMetadata,
    params: Annotated[protocol.DeleteParams, Query()],
) -> dict[str, Any]:
    removed = await store.delete(path, recursive=params.recursive)
    return {"deleted": list(parse_path(path)), "nodes": removed}


@router.delete("/stream/close/{path:path}", summary="Close a live stream")
async def close_stream(path: str, store: StoreDep, _: WriteMetadata) -> dict[str, Any]:
    node = await store.close_stream(path)
    return {"closed": list(node.path)}


# ---- arrays -------------------------------------------------------------------


@router.put("/array/full/{path:path}", summary="Write an array's data (raw C-order bytes)")
async def put_array(
    path: str, request: Request, store: StoreDep, _: WriteMetadata
) -> dict[str, Any]:
    await store.write_array(path, await _data(request, store))
    return {}


@router.patch("/array/full/{path:path}", summary="Write into an array, or extend it")
async def patch_array(
    path: str,
    request: Request,
    store: StoreDep,
    _: WriteMetadata,
    offset: str | None = None,
    shape: str | None = None,
    extend: bool = False,
    persist: bool = True,
    append: bool = False,
) -> dict[str, Any]:
    """``append=true`` (hookbook's own, instead of ``offset``) appends along the
    first axis at the length the array has when the write lands, so concurrent
    appends never overwrite one another."""
    params = protocol.ArrayPatchParams.from_query(
        offset="0" if append else offset, shape=shape, extend=extend, persist=persist
    )
    body = await _data(request, store)
    if append:
        node = await store.append_array(path, body, params.shape)
    else:
        node = await store.patch_array(path, body, params)
    return node.structure or {}


class _RawResponse(Response):
    """A response whose body is sent as given (an array's memory, not a copy)."""

    def render(self, content: Any) -> Any:
        return content


def _array_response(data: np.ndarray) -> Response:
    """Raw C-order bytes in the stored byte order, and the shape in a header."""
    flat = np.asarray(data, order="C").reshape(-1).view(np.uint8)
    return _RawResponse(
        flat.data,
        media_type=protocol.ARRAY_MIME_TYPE,
        headers={SHAPE_HEADER: ",".join(str(n) for n in data.shape)},
    )


def _parse_key(
    slice_text: str | None, shape: tuple[int, ...], expected: str | None
) -> tuple[slice | int, ...]:
    """The ``slice`` parameter for an array of ``shape``, checked against the
    client's ``expected_shape``."""
    key = protocol.parse_slice(slice_text, shape)
    expected_shape = protocol.parse_expected_shape(expected)
    if expected_shape is not None:
        actual = protocol.sliced_shape(key, shape)
        if tuple(actual) != tuple(expected_shape):
            raise InvalidRequestError(
                f"the slice has shape {list(actual)}; the client expected {list(expected_shape)}"
            )
    return key


def _block_index(block: str, ndim: int) -> tuple[int, ...]:
    return protocol.parse_int_tuple(block, name="block") if ndim else ()


def _only(media_type: str) -> Any:
    """A dependency answering 406 to ``format=`` other than ``media_type``: hookbook
    exports nothing else, and native bytes saved under another format's name (Tiled's
    ``export(file, format=...)``) would be silently wrong."""

    def check(format: str | None = None) -> None:
        if format is not None and format != media_type:
            raise NotAcceptableError(f"hookbook serves {media_type} only, not format={format!r}")

    return Depends(check)


@router.get(
    "/array/full/{path:path}",
    summary="Read an array (optionally a slice)",
    dependencies=[_only(protocol.ARRAY_MIME_TYPE)],
)
async def get_array(
    path: str,
    store: StoreDep,
    _: ReadMetadata,
    slice: str | None = None,
    expected_shape: str | None = None,
) -> Response:
    node = await store.get(path)
    shape = store.array_structure(node).shape
    key = _parse_key(slice, shape, expected_shape)
    return _array_response(await store.read_array(node, key))


@router.get(
    "/array/block/{path:path}",
    summary="Read one block of an array's chunk grid",
    dependencies=[_only(protocol.ARRAY_MIME_TYPE)],
)
async def get_array_block(
    path: str,
    store: StoreDep,
    _: ReadMetadata,
    block: str = "",
    slice: str | None = None,
    expected_shape: str | None = None,
) -> Response:
    """``block=i,j``: a block of the chunks the array's structure reports;
    ``slice`` (optional) is within the block."""
    node = await store.get(path)
    structure = store.array_structure(node)
    region = structure.block_region(_block_index(block, structure.ndim))
    data = await store.read_array(node, region)
    key = _parse_key(slice, data.shape, expected_shape)
    # An all-integer index gives a numpy scalar, in native byte order: keep the dtype.
    return _array_response(np.asarray(data[key], dtype=data.dtype))


@router.put("/array/block/{path:path}", summary="Write one block of an array's chunk grid")
async def put_array_block(
    path: str,
    request: Request,
    store: StoreDep,
    _: WriteMetadata,
    block: str = "",
    persist: bool = True,
) -> dict[str, Any]:
    """Until the array's data is complete, blocks are on the chunk grid declared
    at creation (as the tiled client uploads them); see ``docs/tiled-protocol.md``."""
    if not persist:
        raise UnsupportedError("persist=false is not supported by hookbook")
    if "slice" in request.query_params:
        raise ClientInputError("hookbook writes whole blocks only: slice is not supported")
    node = await store.get(path)
    ndim = len(store.array_structure(node, require_data=False).shape)
    await store.write_block(path, _block_index(block, ndim), await _data(request, store))
    return {}


# ---- tables -------------------------------------------------------------------


def _arrow_file(table: Any) -> Response:
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(sink.getvalue(), media_type=ARROW_FILE)


def _columns(table: Any, columns: list[str] | None) -> Any:
    if not columns:
        return table
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ClientInputError(f"no column(s) {', '.join(missing)} in this table")
    return table.select(columns)


@router.put("/table/full/{path:path}", summary="Write a table (Arrow IPC file)")
async def put_table(
    path: str, request: Request, store: StoreDep, _: WriteMetadata
) -> dict[str, Any]:
    await store.write_table(path, await _table(request, store))
    return {}


@router.get(
    "/table/full/{path:path}",
    summary="Read a table: all partitions (Arrow IPC file)",
    dependencies=[_only(ARROW_FILE)],
)
async def get_table(
    path: str,
    store: StoreDep,
    _: ReadMetadata,
    column: Annotated[list[str] | None, Query()] = None,
) -> Response:
    return _arrow_file(_columns(await store.read_table(path), column))


@router.get(
    "/table/partition/{path:path}",
    summary="Read one partition (Arrow IPC file)",
    dependencies=[_only(ARROW_FILE)],
)
async def get_partition(
    path: str,
    store: StoreDep,
    _: ReadMetadata,
    partition: Annotated[int, Query(ge=0)],
    column: Annotated[list[str] | None, Query()] = None,
) -> Response:
    return _arrow_file(_columns(await store.read_table(path, partition), column))


@router.put("/table/partition/{path:path}", summary="Replace one partition's rows")
async def put_partition(
    path: str,
    request: Request,
    store: StoreDep,
    _: WriteMetadata,
    partition: Annotated[int, Query(ge=0)],
) -> dict[str, Any]:
    await store.write_table(path, await _table(request, store), partition)
    return {}


@router.patch("/table/partition/{path:path}", summary="Append rows to one partition")
async def append_partition(
    path: str,
    request: Request,
    store: StoreDep,
    _: WriteMetadata,
    partition: Annotated[int, Query(ge=0)],
) -> dict[str, Any]:
    table = await _table(request, store)
    node = await store.append_table(path, table, partition)
    return node.structure or {}
