"""Structures: what a node holds (families, data types, array, table and container
structures, data sources)."""

from __future__ import annotations

import base64
import binascii
import math
import operator
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ClientInputError, InvalidRequestError, validation_message
from .constants import ARROW_SCHEMA_PREFIX

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy
    import pyarrow


class StructureFamily(StrEnum):
    """The kinds of node hookbook stores.

    Tiled knows more families (``awkward``, ``bytes``, ``ragged``,
    ``sparse``); hookbook refuses to create those with a 422 that names the
    family.
    """

    container = "container"
    array = "array"
    table = "table"


SUPPORTED_FAMILIES = tuple(f.value for f in StructureFamily)


_ENDIANNESS_FROM_BYTEORDER: dict[str, Literal["big", "little", "not_applicable"]] = {
    "<": "little",
    ">": "big",
    "=": sys.byteorder,
    "|": "not_applicable",
}
_BYTEORDER_FROM_ENDIANNESS = {"little": "<", "big": ">", "not_applicable": "|"}
_SUPPORTED_KINDS = "biufcmMSUV"
_DT_UNITS = re.compile(r"^\[(\d*)([A-Za-z]+)\]$")


class DataType(BaseModel):
    """The element type of an array: a numpy dtype without fields.

    ``endianness``: byte order of the elements as they travel and are
    stored: ``"little"``, ``"big"``, or ``"not_applicable"`` (one-byte and
    byte-string types, numpy's ``|``).
    ``kind``: numpy's one-letter kind: ``b`` bool, ``i`` signed integer,
    ``u`` unsigned integer, ``f`` floating point, ``c`` complex, ``m``
    timedelta64, ``M`` datetime64, ``S`` fixed-length bytes, ``U``
    fixed-length unicode (UCS-4), ``V`` raw void (without fields).
    ``itemsize``: bytes per element (for ``U``, four bytes per character).
    ``dt_units``: only for ``m``/``M``: the unit in brackets as numpy
    writes it, with a count when it is not 1, e.g. ``"[ns]"``, ``"[10s]"``,
    ``"[generic]"``; ``None`` otherwise.

    Object dtypes, structured (record) dtypes and sub-array dtypes are not
    supported. Raw array bytes on the wire are C-ordered elements of exactly
    this dtype (this endianness).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    endianness: Literal["big", "little", "not_applicable"]
    kind: Literal["b", "i", "u", "f", "c", "m", "M", "S", "U", "V"]
    itemsize: int = Field(ge=1)
    dt_units: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_structured(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            if "fields" in data:
                raise ClientInputError("structured (record) dtypes are not supported")
            if data.get("kind") == "O":
                raise ClientInputError("object dtypes are not supported")
        return data

    @model_validator(mode="after")
    def _check(self) -> DataType:
        if self.kind in "mM":
            if self.dt_units is not None and not _DT_UNITS.match(self.dt_units):
                raise ClientInputError(
                    f"dt_units must look like '[ns]' or '[10s]', not {self.dt_units!r}"
                )
        elif self.dt_units is not None:
            raise ClientInputError(f"dt_units is only for kinds 'm' and 'M', not {self.kind!r}")
        if self.kind == "U" and self.itemsize % 4:
            raise ClientInputError(f"a unicode itemsize is a multiple of 4, not {self.itemsize}")
        self.to_numpy()  # constructible and consistent, or ClientInputError
        return self

    @classmethod
    def from_numpy(cls, dtype: Any) -> DataType:
        """Describe a numpy dtype (or anything ``numpy.dtype()`` accepts).

        Raises :class:`~hookbook.errors.ClientInputError`, naming the dtype, for object, structured
        and sub-array dtypes and for kinds outside the list above (such as
        numpy 2's variable-width ``StringDType``).
        """
        import numpy

        try:
            dtype = numpy.dtype(dtype)
        except TypeError as err:
            raise ClientInputError(f"not a numpy dtype: {dtype!r} ({err})") from None
        if dtype.fields is not None:
            raise ClientInputError(f"structured dtype {dtype!r} is not supported")
        if dtype.subdtype is not None:
            raise ClientInputError(f"sub-array dtype {dtype!r} is not supported")
        if dtype.kind == "O":
            raise ClientInputError(f"object dtype {dtype!r} is not supported")
        if dtype.kind not in _SUPPORTED_KINDS:
            raise ClientInputError(f"dtype {dtype!r} (kind {dtype.kind!r}) is not supported")
        if dtype.itemsize == 0:
            raise ClientInputError(f"dtype {dtype!r} has no size")
        dt_units = None
        if dtype.kind in "mM":
            unit, count = numpy.datetime_data(dtype)
            dt_units = f"[{count if count > 1 else ''}{unit}]"
        return cls(
            endianness=_ENDIANNESS_FROM_BYTEORDER[dtype.byteorder],
            kind=dtype.kind,
            itemsize=dtype.itemsize,
            dt_units=dt_units,
        )

    def to_numpy_str(self) -> str:
        """The numpy type string, e.g. ``'<f8'``, ``'|b1'``, ``'<M8[ns]'``, ``'<U3'``."""
        size = self.itemsize // 4 if self.kind == "U" else self.itemsize
        byteorder = _BYTEORDER_FROM_ENDIANNESS[self.endianness]
        return f"{byteorder}{self.kind}{size}{self.dt_units or ''}"

    def to_numpy(self) -> numpy.dtype:
        """The numpy dtype; :class:`~hookbook.errors.ClientInputError` if numpy has no such type."""
        import numpy

        text = self.to_numpy_str()
        try:
            dtype = numpy.dtype(text)
        except TypeError:
            raise ClientInputError(f"numpy has no dtype {text!r}") from None
        if dtype.itemsize != self.itemsize or dtype.kind != self.kind:
            raise ClientInputError(f"numpy has no dtype {text!r}")
        return dtype


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ClientInputError(f"{what} must be a list of integers")
    items: tuple[int, ...] = tuple(value)
    if set(map(type, items)) <= {int}:  # plain ints, checked in C: a long chunk list is cheap
        return items
    out = []
    for v in items:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise ClientInputError(f"{what} must be a list of integers, got {v!r}")
        out.append(operator.index(v))
    return tuple(out)


class ArrayStructure(BaseModel):
    """The structure of an array node (``structure_family: "array"``).

    ``data_type``: the element type, a :class:`DataType`.
    ``shape``: the length of each axis, e.g. ``[3, 4]``; ``[]`` for a 0-d
    array.
    ``chunks``: for each axis, the lengths of its chunks, summing to that
    axis's length: a list of lists such as ``[[3], [4]]`` (Tiled's "tuple of
    tuples"). hookbook reports the chunks it stores (whole rows, about 1 MiB
    per chunk, see :mod:`hookbook.storage.arrays`); a client's declared grid
    is kept only until its blocks are all uploaded.
    ``dims``: optional names of the axes (one per axis), or ``None``. The
    key must be present: the tiled client reads ``structure["dims"]``.
    ``resizable``: always ``false`` from hookbook. The tiled client refuses
    to work with a structure that says it is resizable (it raises
    ``NotImplementedError``), so appends report the new shape instead.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    data_type: DataType
    chunks: tuple[tuple[int, ...], ...]
    shape: tuple[int, ...]
    dims: tuple[str, ...] | None = None
    resizable: bool | tuple[bool, ...] = False

    @field_validator("shape", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        return _int_tuple(value, "shape")

    @field_validator("chunks", mode="before")
    @classmethod
    def _chunks(cls, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ClientInputError("chunks must be a list of lists of integers")
        return tuple(_int_tuple(axis, "each axis of chunks") for axis in value)

    @model_validator(mode="after")
    def _check(self) -> ArrayStructure:
        if any(n < 0 for n in self.shape):
            raise ClientInputError(f"shape must not be negative: {list(self.shape)}")
        if len(self.chunks) != len(self.shape):
            raise ClientInputError(
                f"chunks has {len(self.chunks)} axes but shape has {len(self.shape)}"
            )
        for axis, (sizes, length) in enumerate(zip(self.chunks, self.shape, strict=True)):
            if min(sizes, default=0) < 0 or sum(sizes) != length:
                raise ClientInputError(
                    f"the chunks of axis {axis} {list(sizes)} do not add up to its length {length}"
                )
        if self.dims is not None and len(self.dims) != len(self.shape):
            raise ClientInputError(f"dims has {len(self.dims)} names for {len(self.shape)} axes")
        if isinstance(self.resizable, tuple) and len(self.resizable) != len(self.shape):
            raise ClientInputError("resizable must be a bool or one bool per axis")
        return self

    @classmethod
    def from_array(
        cls, shape: Sequence[int], dtype: Any, *, dims: Sequence[str] | None = None
    ) -> ArrayStructure:
        """The structure of an array of this shape and dtype, one chunk per axis."""
        shape = tuple(int(n) for n in shape)
        return cls(
            data_type=DataType.from_numpy(dtype),
            chunks=tuple((n,) for n in shape),
            shape=shape,
            dims=None if dims is None else tuple(dims),
        )

    def with_shape(
        self, shape: Sequence[int], chunks: tuple[tuple[int, ...], ...]
    ) -> ArrayStructure:
        """The same array with a new shape (after an append) and its chunks."""
        return ArrayStructure(
            data_type=self.data_type,
            chunks=chunks,
            shape=tuple(int(n) for n in shape),
            dims=self.dims,
            resizable=False,
        )

    def block_region(self, block: Sequence[int]) -> tuple[slice, ...]:
        """Where block ``block`` (one index per axis, on :attr:`chunks`) lies in
        the array. Raises :class:`~hookbook.errors.InvalidRequestError` (422, as
        Tiled) for a block that does not exist."""
        if len(block) != len(self.shape):
            raise InvalidRequestError(
                f"block {list(block)} has {len(block)} indices; the array has "
                f"{len(self.shape)} axes"
            )
        region = []
        for axis, (index, sizes) in enumerate(zip(block, self.chunks, strict=True)):
            if not 0 <= index < len(sizes):
                raise InvalidRequestError(
                    f"block {list(block)} does not exist: axis {axis} has {len(sizes)} "
                    f"chunks ({list(sizes)})"
                )
            start = sum(sizes[:index])
            region.append(slice(start, start + sizes[index]))
        return tuple(region)

    @property
    def nblocks(self) -> int:
        """How many blocks the chunk grid has."""
        return math.prod(len(sizes) for sizes in self.chunks)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Size in bytes of the whole array's raw (octet-stream) form."""
        return math.prod(self.shape) * self.data_type.itemsize

    def to_numpy_dtype(self) -> numpy.dtype:
        return self.data_type.to_numpy()


class TableStructure(BaseModel):
    """The structure of a table node (``structure_family: "table"``).

    ``arrow_schema``: the table's Arrow schema, serialised as an Arrow IPC
    *schema message* (``pyarrow.Schema.serialize()``), base64-encoded and
    prefixed ``data:application/vnd.apache.arrow.file;base64,``. It may
    carry pandas metadata (index columns, dtypes) that the client uses to
    rebuild the DataFrame.
    ``npartitions``: number of partitions (at least 1), declared at creation;
    each is read with ``GET /table/partition/{path}?partition=i`` and grows
    with ``PATCH`` on the same URL (the tiled client's ``append_partition``).
    ``columns``: the column names as the user sees them. With pandas data
    this leaves out index columns (``__index_level_0__`` and named
    indexes), so it may differ from the schema's field names. Names starting
    with ``_`` are refused: the tiled client reserves them and would fail to
    load the node.
    ``resizable``: always ``false`` (see :class:`ArrayStructure`).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    arrow_schema: str
    npartitions: int = Field(default=1, ge=1)
    columns: tuple[str, ...]
    resizable: bool | tuple[bool, ...] = False

    @field_validator("arrow_schema")
    @classmethod
    def _schema_uri(cls, value: str) -> str:
        if not value.startswith(ARROW_SCHEMA_PREFIX):
            raise ClientInputError(
                f"arrow_schema must be a data URI starting {ARROW_SCHEMA_PREFIX!r}"
            )
        try:
            base64.b64decode(value[len(ARROW_SCHEMA_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ClientInputError("arrow_schema is not valid base64") from None
        return value

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name.startswith("_"):
                raise ClientInputError(
                    f"column name {name!r} starts with '_', which Tiled reserves"
                )
        return value

    @classmethod
    def from_arrow_schema(cls, schema: pyarrow.Schema, npartitions: int = 1) -> TableStructure:
        """Describe a table with this ``pyarrow.Schema`` (pandas index columns
        recorded in the schema's pandas metadata are left out of ``columns``)."""
        encoded = base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")
        index_columns: set[str] = set()
        pandas_metadata = schema.pandas_metadata
        if pandas_metadata:
            index_columns = {
                c for c in pandas_metadata.get("index_columns", []) if isinstance(c, str)
            }
        columns = tuple(name for name in schema.names if name not in index_columns)
        return cls(
            arrow_schema=ARROW_SCHEMA_PREFIX + encoded,
            npartitions=npartitions,
            columns=columns,
        )

    def decoded_schema(self) -> pyarrow.Schema:
        """The ``pyarrow.Schema`` this structure carries; ClientInputError if unreadable."""
        import pyarrow
        import pyarrow.ipc

        raw = base64.b64decode(self.arrow_schema[len(ARROW_SCHEMA_PREFIX) :])
        try:
            return pyarrow.ipc.read_schema(pyarrow.py_buffer(raw))
        except (pyarrow.ArrowInvalid, OSError) as err:
            raise ClientInputError(f"arrow_schema is not a readable Arrow schema: {err}") from None


class ContainerStructure(BaseModel):
    """The structure of a container node (``structure_family: "container"``).

    ``contents``: always ``None`` from hookbook (Tiled may inline children
    here). The key must be present: the tiled client reads
    ``structure["contents"]`` to decide whether to list children through
    ``/search``.
    ``count``: the number of children.
    """

    model_config = ConfigDict(extra="ignore")

    contents: dict[str, Any] | None = None
    count: int | None = Field(default=None, ge=0)


STRUCTURE_MODELS: dict[
    str, type[ArrayStructure] | type[TableStructure] | type[ContainerStructure]
] = {
    "array": ArrayStructure,
    "table": TableStructure,
    "container": ContainerStructure,
}


def parse_structure(family: str, data: Any) -> ArrayStructure | TableStructure | ContainerStructure:
    """Validate ``data`` as the structure of a node of ``family``.

    Raises :class:`~hookbook.errors.ClientInputError` with a readable message (unsupported family,
    or the first problem found in the structure).
    """
    try:
        model = STRUCTURE_MODELS[str(getattr(family, "value", family))]
    except KeyError:
        raise ClientInputError(unsupported_family_message(family)) from None
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ClientInputError(f"invalid {family} structure: {validation_message(err)}") from None


def unsupported_family_message(family: Any) -> str:
    return (
        f"structure family {str(getattr(family, 'value', family))!r} is not supported "
        f"by hookbook (supported: {', '.join(SUPPORTED_FAMILIES)})"
    )


class DataSource(BaseModel):
    """How a node's data is stored, as in the ``data_sources`` of a create
    request and of an item fetched with ``include_data_sources=true``.

    ``structure_family``: the node's family. ``structure``: the node's
    structure (the client's create request carries it here, not at the top
    level). ``id``: an id the server assigns (the client sends ``null``).
    ``mimetype``: storage format; the client sends ``null`` except for
    ``create_appendable_table`` (``application/x-tiled-sql-table``);
    hookbook ignores it on input. ``parameters``, ``properties``: free-form
    storage options (``table_name`` for appendable tables); ignored on
    input. ``assets``: files backing the data; must be empty (registering
    external files is not supported). ``management``: ``"writable"`` (data
    written through the API, owned by the server); the only value accepted.
    """

    model_config = ConfigDict(extra="ignore")

    structure_family: str
    structure: dict[str, Any] | None = None
    id: int | None = None
    mimetype: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    assets: list[Any] = Field(default_factory=list)
    management: str = "writable"
