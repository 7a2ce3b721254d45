"""What a node may hold: limits on structures and data, checked before anything is built.

The checks on data bodies live here, called from the decoding entry points
(:mod:`hookbook.catalog.decoding`), so that they hold whatever stores the data.

Every check here is cheap and runs before the work it guards: the byte count of an
array is worked out from its shape (with Python's unbounded integers, so it cannot
overflow) before any buffer exists; a structure's size is measured before it is
stored. A structure that passes can always be stored, listed and read back.
"""

from __future__ import annotations

import functools
import io
import json
import math
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..config import Limits
from ..errors import InvalidDataError, PayloadTooLargeError, validation_message
from ..protocol import TableStructure

if TYPE_CHECKING:
    from .nodes import Node


def array_nbytes(shape: Sequence[int], itemsize: int, limits: Limits) -> int:
    """The byte count of an array of ``shape``; a 413 when it (or any one axis) is
    over ``max_data_bytes``, so no later step ever meets a count that overflows."""
    longest = max(shape, default=0)
    nbytes = math.prod(shape) * itemsize
    if nbytes > limits.max_data_bytes or longest > limits.max_data_bytes:
        raise PayloadTooLargeError(
            f"an array of shape {list(shape)} with {itemsize}-byte items is {nbytes} bytes; "
            f"the limit is {limits.max_data_bytes}",
            size=nbytes,
            limit=limits.max_data_bytes,
        )
    return nbytes


def check_columns(names: Sequence[str], limits: Limits) -> None:
    """A table's column names: at most ``max_table_columns`` (413), none empty and
    none twice (422: Parquet would store them, and every read would then fail)."""
    if len(names) > limits.max_table_columns:
        raise PayloadTooLargeError(
            f"the table has {len(names)} columns; the limit is {limits.max_table_columns}",
            size=len(names),
            limit=limits.max_table_columns,
        )
    if any(name == "" for name in names):
        raise InvalidDataError("a column name is empty; every column needs a name")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidDataError(f"the column name {name!r} is used twice", column=name)
        seen.add(name)


def check_structure(family: str, structure: dict[str, Any], limits: Limits) -> None:
    """Limits of a validated array or table structure (as stored, JSON-ready)."""
    if family == "array":
        shape = structure["shape"]
        if len(shape) > limits.max_array_dims:
            raise InvalidDataError(
                f"the array has {len(shape)} axes; the limit is {limits.max_array_dims}",
                limit=limits.max_array_dims,
            )
        array_nbytes(shape, structure["data_type"]["itemsize"], limits)
        for name in structure.get("dims") or ():
            if len(name) > limits.max_key_length:
                raise InvalidDataError(
                    f"an axis name (dims) is {len(name)} characters long; "
                    f"the limit is {limits.max_key_length}",
                    limit=limits.max_key_length,
                )
    elif family == "table":
        check_columns(structure["columns"], limits)
        if structure["npartitions"] > limits.max_table_partitions:
            raise PayloadTooLargeError(
                f"the table declares {structure['npartitions']} partitions; "
                f"the limit is {limits.max_table_partitions}",
                size=structure["npartitions"],
                limit=limits.max_table_partitions,
            )
    size = len(json.dumps(structure))
    if size > limits.max_structure_bytes:
        raise PayloadTooLargeError(
            f"the {family} structure is {size} bytes as JSON; "
            f"the limit is {limits.max_structure_bytes}",
            size=size,
            limit=limits.max_structure_bytes,
        )


# ---- Arrow IPC tables ------------------------------------------------------------------

#: What one row of a null column costs a reader: a pointer (pandas holds ``None`` objects).
NULL_ROW_BYTES = 8


def ipc_stream(data: bytes) -> Any:
    """The stream of batches in an Arrow IPC body (a ``pyarrow.Buffer``).

    The file format is the stream format between an 8-byte magic and a footer: it
    is read as what it holds, in order (so a footer cannot point anywhere else), and
    a file without its footer is cut short (422).
    """
    import pyarrow as pa

    buffer = pa.py_buffer(data)
    if data[:6] != b"ARROW1":
        return buffer
    if len(data) < 16 or data[-6:] != b"ARROW1":
        raise InvalidDataError("body is not a usable Arrow IPC file: it is cut short (no footer)")
    return buffer.slice(8)


def check_decoded_size(stream: Any, limits: Limits) -> None:
    """Refuse (413) a stream whose batches decode to more than ``max_data_bytes``,
    worked out from the messages' metadata before anything is decompressed or built:
    a few kB of zstd cannot unpack into gigabytes. Malformed metadata is a 422."""
    try:
        decoded = _decoded_size(stream)
    except struct.error:
        raise InvalidDataError("body is not a usable Arrow IPC stream: bad metadata") from None
    if decoded > limits.max_data_bytes:
        raise PayloadTooLargeError(
            f"the table decodes to {decoded} bytes; the limit is {limits.max_data_bytes}",
            size=decoded,
            limit=limits.max_data_bytes,
        )


def check_table(table: Any, limits: Limits) -> None:
    """A decoded table that can be stored and read back: its size as readers will hold
    it (every column at least a byte a row, a null column :data:`NULL_ROW_BYTES`: it
    holds no buffers, but a reader holds a pointer per row, so 10**9 null rows in a
    few hundred bytes are 8 GB to read), its column names, and types Parquet stores."""
    import pyarrow as pa

    rows = table.num_rows
    size = sum(
        rows * NULL_ROW_BYTES if pa.types.is_null(column.type) else max(column.nbytes, rows)
        for column in table.columns
    )
    if size > limits.max_data_bytes:
        raise PayloadTooLargeError(
            f"the table is {rows} rows by {table.num_columns} columns, {size} bytes decoded "
            f"(a null column counts {NULL_ROW_BYTES} bytes a row); "
            f"the limit is {limits.max_data_bytes}",
            size=size,
            limit=limits.max_data_bytes,
        )
    check_columns(table.schema.names, limits)
    check_storable(table.schema)


def check_storable(schema: Any) -> None:
    """Refuse (422, naming the column and its type) a schema Parquet cannot store."""
    problem = _storage_problem(schema.serialize().to_pybytes())
    if problem is not None:
        raise InvalidDataError(problem)


@functools.lru_cache(maxsize=256)
def _storage_problem(serialized_schema: bytes) -> str | None:
    """Why a schema cannot round-trip through Parquet, or None; cached, since every
    append to a table brings the same schema again."""
    import pyarrow as pa

    schema = pa.ipc.read_schema(pa.py_buffer(serialized_schema))
    if _round_trips(schema):
        return None
    for field in schema:  # find the culprit, to name it
        if not _round_trips(pa.schema([field])):
            return f"column {field.name!r} has type {field.type}, which hookbook cannot store"
    return f"hookbook cannot store a table with the schema {schema}"


def _round_trips(schema: Any) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    try:
        pq.write_table(schema.empty_table(), sink)
        pq.read_table(pa.BufferReader(sink.getvalue()))
    except (pa.ArrowException, ValueError, TypeError):
        return False
    return True


# The Arrow IPC message metadata is a flatbuffer (Message.fbs). Only what sizing needs
# is read here: each batch's buffers, and whether they are compressed.
_DICTIONARY_BATCH, _RECORD_BATCH = 2, 3


def _decoded_size(stream: Any) -> int:
    """The bytes the record and dictionary batches of ``stream`` decode to."""
    import pyarrow as pa

    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(stream))
    total = 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return total
        metadata = message.metadata.to_pybytes()
        root = _Table(metadata, _u32(metadata, 0))
        kind = root.scalar(1, "<B", 0)
        if kind not in (_DICTIONARY_BATCH, _RECORD_BATCH):
            continue
        header = root.table(2)
        batch = header.table(1) if kind == _DICTIONARY_BATCH and header else header
        if batch is None:
            raise InvalidDataError("an Arrow message has no batch in it")
        total += _batch_size(batch, message.body)


def _batch_size(batch: _Table, body: Any) -> int:
    compressed = batch.table(3) is not None
    size = 0
    for offset, length in batch.structs(2, "<qq"):
        if offset < 0 or length < 0 or offset + length > (body.size if body else 0):
            raise InvalidDataError("an Arrow buffer lies outside its message")
        if compressed and length >= 8:
            # A compressed buffer starts with its uncompressed length (-1: stored as is).
            declared = struct.unpack("<q", body.slice(offset, 8).to_pybytes())[0]
            if declared < -1:
                raise InvalidDataError("an Arrow buffer declares a negative length")
            size += length - 8 if declared == -1 else declared
        else:
            size += length
    return size


def _u32(data: bytes, at: int) -> int:
    value: int = struct.unpack_from("<I", data, at)[0]
    return value


class _Table:
    """A flatbuffer table: fields by index through its vtable, bounds checked."""

    def __init__(self, data: bytes, at: int) -> None:
        self.data, self.at = data, at
        self.vtable = at - struct.unpack_from("<i", data, at)[0]
        self.vtable_size = struct.unpack_from("<H", data, self.vtable)[0]

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vtable_size:
            return None
        offset = struct.unpack_from("<H", self.data, self.vtable + slot)[0]
        return self.at + offset if offset else None

    def scalar(self, index: int, fmt: str, default: int) -> int:
        at = self._field(index)
        return default if at is None else struct.unpack_from(fmt, self.data, at)[0]

    def table(self, index: int) -> _Table | None:
        at = self._field(index)
        return None if at is None else _Table(self.data, at + _u32(self.data, at))

    def structs(self, index: int, fmt: str) -> list[tuple[int, ...]]:
        at = self._field(index)
        if at is None:
            return []
        start = at + _u32(self.data, at)
        count = _u32(self.data, start)
        width = struct.calcsize(fmt)
        if start + 4 + count * width > len(self.data):
            raise InvalidDataError("an Arrow message's metadata is cut short")
        return [struct.unpack_from(fmt, self.data, start + 4 + i * width) for i in range(count)]


def conform_table(
    node: Node, declared: TableStructure, table: Any, *, fresh: bool, limits: Limits
) -> tuple[Any, dict[str, Any]]:
    """The rows to store and the node's structure after storing them. ``fresh``:
    they set the table's schema (its first data, or all of it); otherwise they
    are cast to the table's schema."""
    import pyarrow as pa

    if fresh:
        try:
            written = TableStructure.from_arrow_schema(table.schema, declared.npartitions)
        except ValidationError as exc:
            raise InvalidDataError(f"invalid table: {validation_message(exc)}") from None
        except (ValueError, RecursionError) as exc:  # the schema's pandas metadata is JSON
            raise InvalidDataError(f"invalid table: {exc}") from None
        check_structure("table", written.model_dump(mode="json"), limits)
        if declared.columns and list(written.columns) != list(declared.columns):
            raise InvalidDataError(
                f"table has columns {list(written.columns)}; {list(declared.columns)} were declared"
            )
        return table, written.model_dump(mode="json")
    schema = declared.decoded_schema()
    if table.column_names != schema.names:
        raise InvalidDataError(
            f"rows have columns {table.column_names}; the table has {schema.names}"
        )
    try:
        return table.cast(schema), node.structure or {}
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise InvalidDataError(f"rows do not match the table's column types: {exc}") from None


def nesting_depth(value: Any) -> int:
    """How deeply objects and lists nest in ``value`` (``{}`` is 1), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest
