"""Wire models of the Tiled catalog protocol, as spoken by hookbook.

hookbook's catalog HTTP API follows the protocol of Tiled's ``/api/v1`` so
that the real ``tiled`` Python client (0.2.20 and later 0.2.x) works against
it unchanged, and hookbook's own client uses the same routes. This module
holds every document that crosses the wire for the supported operations:

* the *about* document (``GET /api/v1/``), see :func:`about_document`;
* the *structures* (:class:`DataType`, :class:`ArrayStructure`,
  :class:`TableStructure`, :class:`ContainerStructure`);
* the item envelope returned by ``GET /metadata/{path}`` and
  ``GET /search/{path}`` (:class:`Item`, :func:`item`, :func:`links_for`,
  :func:`search_response`);
* the request bodies and query parameters of the write routes
  (:class:`CreateNodeRequest`, :class:`MetadataPatchRequest`,
  :class:`MetadataReplaceRequest`, :class:`ArrayPatchParams`, ...) and the
  response bodies the client reads back;
* small parsers for query parameters (:func:`parse_slice`,
  :func:`parse_expected_shape`, :func:`parse_sort`, :func:`parse_fields`).

``docs/tiled-protocol.md`` describes, request by request, what the client
sends and reads. Everything here is hookbook's own code: it imports nothing
from Tiled. ``pyarrow`` (the ``tables`` extra) is imported only inside the
functions that need it.

Conventions
-----------
* ``base_url`` is the absolute URL of the API root *without* a trailing
  slash, as the client must be able to reach it, e.g.
  ``http://127.0.0.1:8000/api/v1``. Every link handed to the client is
  absolute: the client requests links verbatim.
* ``path_segments`` is the list of keys from the root to a node, e.g.
  ``["run1", "det"]``; the root is ``[]``.
* Parsers raise :class:`ValueError` with a message meant for the HTTP
  ``detail`` (a 4xx); they never raise anything the server would turn
  into a 500.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import math
import operator
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from .patching import PatchBudget, apply_json_patch

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy
    import pyarrow

__all__ = [
    "APACHE_ARROW_FILE_MIME_TYPE",
    "ARRAY_MIME_TYPE",
    "ARROW_SCHEMA_PREFIX",
    "DEFAULT_PAGE_LIMIT",
    "ENTRY_FIELDS",
    "JSON_MIME_TYPE",
    "JSON_PATCH_MIME_TYPE",
    "MAX_PAGE_LIMIT",
    "MAX_SPECS",
    "MERGE_PATCH_MIME_TYPE",
    "MSGPACK_MIME_TYPE",
    "SHAPE_HEADER",
    "SUPPORTED_FAMILIES",
    "TILED_API_KEY_PATTERN",
    "TILED_PROTOCOL_VERSION",
    "UNSUPPORTED_ROUTES",
    "About",
    "AboutAuthentication",
    "ArrayPatchParams",
    "ArrayPatchPlan",
    "ArrayStructure",
    "ContainerStructure",
    "CreateNodeRequest",
    "CreateNodeResponse",
    "DataSource",
    "DataType",
    "DeleteParams",
    "ErrorResponse",
    "Item",
    "MetadataPatchRequest",
    "MetadataReplaceRequest",
    "MetadataUpdateResponse",
    "NodeAttributes",
    "NodeLinks",
    "PaginationLinks",
    "SearchMeta",
    "SearchResponse",
    "SortingItem",
    "Spec",
    "StructureFamily",
    "TablePartitionParams",
    "TableStructure",
    "UnsupportedRoute",
    "about_document",
    "format_slice",
    "item",
    "links_for",
    "metadata_response",
    "normalise_specs",
    "pagination_links",
    "parse_expected_shape",
    "parse_fields",
    "parse_int_tuple",
    "parse_slice",
    "parse_sort",
    "parse_structure",
    "path_segments",
    "search_response",
    "sliced_shape",
    "validate_key",
]

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

#: The Tiled library version hookbook reports as ``library_version`` in the
#: about document. The tiled client compares it with ``0.2.4``: below that it
#: drops ``properties`` from the data sources of its create requests. It must
#: be a PEP 440 version, or the client fails (``InvalidVersion``) on create.
TILED_PROTOCOL_VERSION = "0.2.20"

JSON_MIME_TYPE = "application/json"
MSGPACK_MIME_TYPE = "application/x-msgpack"
ARRAY_MIME_TYPE = "application/octet-stream"
APACHE_ARROW_FILE_MIME_TYPE = "application/vnd.apache.arrow.file"
JSON_PATCH_MIME_TYPE = "application/json-patch+json"
MERGE_PATCH_MIME_TYPE = "application/merge-patch+json"

#: A hookbook extension: the response header of an array read that names the
#: shape of the bytes sent (``"3,4"``; ``""`` for 0-d), so a client needs no
#: second request to learn it. Tiled's client ignores it.
SHAPE_HEADER = "X-Hookbook-Shape"

#: Prefix of the ``arrow_schema`` data URI in a table structure.
ARROW_SCHEMA_PREFIX = f"data:{APACHE_ARROW_FILE_MIME_TYPE};base64,"

#: Page size of ``GET /search`` when the client gives no ``page[limit]``
#: (Tiled's default), and the largest page hookbook serves (larger requests
#: are clamped, and the ``next`` link carries on from there).
DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 300

#: At most this many specs per node (as in Tiled).
MAX_SPECS = 20

#: The tiled client recognises an API key only if it matches this pattern
#: (``tiled/client/context.py``: ``API_KEY_AUTH_HEADER_PATTERN``). A key with
#: other characters (``-``, ``.``, ...) is still sent, but the client then
#: believes it is unauthenticated and, when the about document says
#: ``required: true``, refuses to connect. Generate keys with
#: ``secrets.token_hex``.
TILED_API_KEY_PATTERN = re.compile(r"^\w+$")

#: Values accepted in the ``fields=`` query parameter of ``/metadata`` and
#: ``/search``. ``""`` (``fields=``) asks for keys only, ``count`` for the
#: count only.
ENTRY_FIELDS = frozenset(
    {
        "",
        "metadata",
        "structure_family",
        "structure",
        "count",
        "sorting",
        "specs",
        "data_sources",
        "access_tags",
    }
)


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


# ---------------------------------------------------------------------------
# Keys and paths
# ---------------------------------------------------------------------------

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def validate_key(key: str) -> str:
    """Check that ``key`` can name a node, and return it.

    A key is one path segment: a non-empty string of at most 255 characters,
    without ``/``, control characters, or the special names ``.`` and
    ``..``. (The tiled client generates a ``uuid4`` string when the user
    gives no key.)
    """
    if not isinstance(key, str):
        raise ValueError(f"a key must be a string, not {type(key).__name__}")
    if key == "":
        raise ValueError("a key must not be empty")
    if len(key) > 255:
        raise ValueError(f"a key must be at most 255 characters, not {len(key)}")
    if "/" in key:
        raise ValueError(f"a key must not contain '/': {key!r}")
    if key in {".", ".."}:
        raise ValueError(f"{key!r} is not a valid key")
    if _CONTROL_CHARACTERS.search(key):
        raise ValueError(f"a key must not contain control characters: {key!r}")
    return key


def path_segments(path: str | None) -> list[str]:
    """Split the ``{path}`` part of a route into keys, dropping empty segments.

    The tiled client builds some URLs by appending ``/key`` to a self link
    that may end with ``/`` (the root's is ``.../metadata/``), so paths such
    as ``/a//b/`` reach the server: they mean ``["a", "b"]``.
    """
    if not path:
        return []
    return [segment for segment in path.split("/") if segment]


def _quoted_path(segments: Sequence[str]) -> str:
    return "/".join(quote(segment, safe="") for segment in segments)


# ---------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------


class Spec(BaseModel):
    """A named specification a node claims to follow.

    ``name``: the spec's name (1 to 255 characters). The tiled client picks
    its Python class by spec name before structure family, so a spec named
    like a client class (``xarray_dataset``, ``composite``, ``array``,
    ``table``, ...) changes which class the tiled client builds.
    ``version``: an optional version string (at most 255 characters), or
    ``None``.

    On the wire a spec is always the object ``{"name": ..., "version": ...}``;
    :func:`normalise_specs` also accepts a bare string, meaning a name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=255)
    version: str | None = Field(default=None, max_length=255)


def _one_spec(value: Any) -> Spec:
    if isinstance(value, Spec):
        return value
    if isinstance(value, str):
        name, version = value, None
    elif isinstance(value, Mapping):
        unknown = set(value) - {"name", "version"}
        if unknown:
            raise ValueError(
                f"a spec has only 'name' and 'version', not {sorted(map(str, unknown))}"
            )
        if "name" not in value:
            raise ValueError(f"a spec needs a 'name': {dict(value)!r}")
        name, version = value["name"], value.get("version")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        # For example tiled.structures.core.Spec, handed over by a user.
        fields = {f.name for f in dataclasses.fields(value)}
        if fields != {"name", "version"}:
            raise ValueError(f"cannot interpret {value!r} as a spec")
        name, version = value.name, value.version
    else:
        raise ValueError(
            f"a spec must be a name (str), a {{'name', 'version'}} mapping or a Spec, "
            f"not {type(value).__name__}: {value!r}"
        )
    if not isinstance(name, str):
        raise ValueError(f"a spec name must be a string, not {type(name).__name__}")
    if version is not None and not isinstance(version, str):
        raise ValueError(f"a spec version must be a string or null, not {type(version).__name__}")
    try:
        return Spec(name=name, version=version)
    except ValidationError as err:
        raise ValueError(f"invalid spec {name!r}: {_first_error(err)}") from None


def normalise_specs(value: Any) -> list[Spec]:
    """Turn what a user or a request gives as specs into a list of :class:`Spec`.

    Accepts ``None`` (no specs), one spec, or a list/tuple of specs, where a
    spec is a bare string (a name, no version), a mapping with ``name`` and
    optional ``version``, a :class:`Spec`, or a dataclass with exactly the
    fields ``name`` and ``version`` (such as ``tiled.structures.core.Spec``).
    Raises :class:`ValueError` for anything else, for duplicates, and for
    more than :data:`MAX_SPECS` specs.
    """
    if value is None:
        return []
    if isinstance(value, (str, Spec, Mapping)) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        values: list[Any] = [value]
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        raise ValueError(
            f"specs must be a list of names, {{'name', 'version'}} mappings or Specs, "
            f"not {type(value).__name__}: {value!r}"
        )
    specs = [_one_spec(v) for v in values]
    seen: set[Spec] = set()
    for spec in specs:
        if spec in seen:
            raise ValueError(f"duplicate spec {spec.name!r} (version {spec.version!r})")
        seen.add(spec)
    if len(specs) > MAX_SPECS:
        raise ValueError(f"at most {MAX_SPECS} specs are allowed, not {len(specs)}")
    return specs


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else first["msg"]


# ---------------------------------------------------------------------------
# Structures
# ---------------------------------------------------------------------------

_ENDIANNESS_FROM_BYTEORDER = {
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
                raise ValueError("structured (record) dtypes are not supported")
            if data.get("kind") == "O":
                raise ValueError("object dtypes are not supported")
        return data

    @model_validator(mode="after")
    def _check(self) -> DataType:
        if self.kind in "mM":
            if self.dt_units is not None and not _DT_UNITS.match(self.dt_units):
                raise ValueError(
                    f"dt_units must look like '[ns]' or '[10s]', not {self.dt_units!r}"
                )
        elif self.dt_units is not None:
            raise ValueError(f"dt_units is only for kinds 'm' and 'M', not {self.kind!r}")
        if self.kind == "U" and self.itemsize % 4:
            raise ValueError(f"a unicode itemsize is a multiple of 4, not {self.itemsize}")
        self.to_numpy()  # constructible and consistent, or ValueError
        return self

    @classmethod
    def from_numpy(cls, dtype: Any) -> DataType:
        """Describe a numpy dtype (or anything ``numpy.dtype()`` accepts).

        Raises :class:`ValueError`, naming the dtype, for object, structured
        and sub-array dtypes and for kinds outside the list above (such as
        numpy 2's variable-width ``StringDType``).
        """
        import numpy

        try:
            dtype = numpy.dtype(dtype)
        except TypeError as err:
            raise ValueError(f"not a numpy dtype: {dtype!r} ({err})") from None
        if dtype.fields is not None:
            raise ValueError(f"structured dtype {dtype!r} is not supported")
        if dtype.subdtype is not None:
            raise ValueError(f"sub-array dtype {dtype!r} is not supported")
        if dtype.kind == "O":
            raise ValueError(f"object dtype {dtype!r} is not supported")
        if dtype.kind not in _SUPPORTED_KINDS:
            raise ValueError(f"dtype {dtype!r} (kind {dtype.kind!r}) is not supported")
        if dtype.itemsize == 0:
            raise ValueError(f"dtype {dtype!r} has no size")
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
        """The numpy dtype; :class:`ValueError` if numpy has no such type."""
        import numpy

        text = self.to_numpy_str()
        try:
            dtype = numpy.dtype(text)
        except TypeError:
            raise ValueError(f"numpy has no dtype {text!r}") from None
        if dtype.itemsize != self.itemsize or dtype.kind != self.kind:
            raise ValueError(f"numpy has no dtype {text!r}")
        return dtype


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ValueError(f"{what} must be a list of integers")
    value = tuple(value)
    if set(map(type, value)) <= {int}:  # plain ints, checked in C: a long chunk list is cheap
        return value
    out = []
    for v in value:
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise ValueError(f"{what} must be a list of integers, got {v!r}")
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
            raise ValueError("chunks must be a list of lists of integers")
        return tuple(_int_tuple(axis, "each axis of chunks") for axis in value)

    @model_validator(mode="after")
    def _check(self) -> ArrayStructure:
        if any(n < 0 for n in self.shape):
            raise ValueError(f"shape must not be negative: {list(self.shape)}")
        if len(self.chunks) != len(self.shape):
            raise ValueError(f"chunks has {len(self.chunks)} axes but shape has {len(self.shape)}")
        for axis, (sizes, length) in enumerate(zip(self.chunks, self.shape, strict=True)):
            if min(sizes, default=0) < 0 or sum(sizes) != length:
                raise ValueError(
                    f"the chunks of axis {axis} {list(sizes)} do not add up to its length {length}"
                )
        if self.dims is not None and len(self.dims) != len(self.shape):
            raise ValueError(f"dims has {len(self.dims)} names for {len(self.shape)} axes")
        if isinstance(self.resizable, tuple) and len(self.resizable) != len(self.shape):
            raise ValueError("resizable must be a bool or one bool per axis")
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
        the array. Raises :class:`ValueError` for a block that does not exist."""
        if len(block) != len(self.shape):
            raise ValueError(
                f"block {list(block)} has {len(block)} indices; the array has "
                f"{len(self.shape)} axes"
            )
        region = []
        for axis, (index, sizes) in enumerate(zip(block, self.chunks, strict=True)):
            if not 0 <= index < len(sizes):
                raise ValueError(
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
            raise ValueError(f"arrow_schema must be a data URI starting {ARROW_SCHEMA_PREFIX!r}")
        try:
            base64.b64decode(value[len(ARROW_SCHEMA_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("arrow_schema is not valid base64") from None
        return value

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name.startswith("_"):
                raise ValueError(f"column name {name!r} starts with '_', which Tiled reserves")
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
        """The ``pyarrow.Schema`` this structure carries; ValueError if unreadable."""
        import pyarrow
        import pyarrow.ipc

        raw = base64.b64decode(self.arrow_schema[len(ARROW_SCHEMA_PREFIX) :])
        try:
            return pyarrow.ipc.read_schema(pyarrow.py_buffer(raw))
        except (pyarrow.ArrowInvalid, OSError) as err:
            raise ValueError(f"arrow_schema is not a readable Arrow schema: {err}") from None


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


_STRUCTURE_MODELS: dict[str, type[BaseModel]] = {
    "array": ArrayStructure,
    "table": TableStructure,
    "container": ContainerStructure,
}


def parse_structure(family: str, data: Any) -> ArrayStructure | TableStructure | ContainerStructure:
    """Validate ``data`` as the structure of a node of ``family``.

    Raises :class:`ValueError` with a readable message (unsupported family,
    or the first problem found in the structure).
    """
    try:
        model = _STRUCTURE_MODELS[str(getattr(family, "value", family))]
    except KeyError:
        raise ValueError(_unsupported_family_message(family)) from None
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValueError(f"invalid {family} structure: {_first_error(err)}") from None


def _unsupported_family_message(family: Any) -> str:
    return (
        f"structure family {str(getattr(family, 'value', family))!r} is not supported "
        f"by hookbook (supported: {', '.join(SUPPORTED_FAMILIES)})"
    )


# ---------------------------------------------------------------------------
# About document
# ---------------------------------------------------------------------------


class AboutAuthentication(BaseModel):
    """The ``authentication`` section of the about document.

    ``required``: whether reading needs credentials. With ``true`` and no
    providers the tiled client insists on an API key before its first
    catalog request (a clear error instead of a 401).
    ``providers``: always ``[]``: hookbook has API keys only, and an empty
    list is what keeps the tiled client from ever starting a login
    (password or device-code) flow.
    ``links``: ``None``: there are no session/whoami routes. (The client
    then skips ``whoami`` in its ``repr`` and refuses
    ``context.create_api_key`` locally.)
    """

    model_config = ConfigDict(extra="forbid")

    required: bool
    providers: list[dict[str, Any]] = Field(default_factory=list, max_length=0)
    links: dict[str, str] | None = None


class About(BaseModel):
    """The about document, ``GET /api/v1/``, validated strictly at connect.

    The tiled client fetches it *before* it sets its API key header, so the
    route must answer without authentication. All eight keys are required.

    ``api_version``: the API version number (an int; Tiled sends ``0``).
    ``library_version``: the Tiled version whose protocol is spoken, a PEP
    440 version (see :data:`TILED_PROTOCOL_VERSION`).
    ``formats``: for each structure family, the media types its data can be
    read as. The client looks up ``formats[structure_family]`` (KeyError if
    a family of a served node is missing).
    ``aliases``: for each family, short names of media types
    (``{"text/csv": ["csv"]}``); hookbook has none.
    ``queries``: names of the search filters supported (``filter[...]``
    query parameters); hookbook supports none.
    ``authentication``: see :class:`AboutAuthentication`.
    ``links``: at least ``self``, the API root URL (the client's admin
    accessor reads ``links["self"]`` at connect).
    ``meta``: free-form; hookbook puts its own name and version here.
    """

    model_config = ConfigDict(extra="forbid")

    api_version: int
    library_version: str
    formats: dict[str, list[str]]
    aliases: dict[str, dict[str, list[str]]]
    queries: list[str]
    authentication: AboutAuthentication
    links: dict[str, str]
    meta: dict[str, Any]

    @field_validator("links")
    @classmethod
    def _self_link(cls, value: dict[str, str]) -> dict[str, str]:
        if "self" not in value:
            raise ValueError("links must include 'self'")
        return value


def about_document(
    base_url: str,
    version: str,
    *,
    api_key_required: bool = True,
    queries: Sequence[str] = (),
) -> dict[str, Any]:
    """The about document (``GET /api/v1/``) as a JSON-ready dict.

    ``base_url`` is the API root (``http://host:port/api/v1``); ``version``
    is hookbook's own version, reported in ``meta``. ``library_version`` is
    :data:`TILED_PROTOCOL_VERSION`, whatever hookbook's version: the client
    compares it with Tiled versions.
    """
    base_url = base_url.rstrip("/")
    doc = About(
        api_version=0,
        library_version=TILED_PROTOCOL_VERSION,
        formats={
            "array": [ARRAY_MIME_TYPE],
            "table": [APACHE_ARROW_FILE_MIME_TYPE],
            "container": [JSON_MIME_TYPE],
        },
        aliases={"array": {}, "table": {}, "container": {}},
        queries=list(queries),
        authentication=AboutAuthentication(required=api_key_required, providers=[]),
        links={"self": base_url},
        meta={"server": "hookbook", "hookbook_version": version},
    )
    return doc.model_dump(mode="json")


# ---------------------------------------------------------------------------
# Links and item envelopes
# ---------------------------------------------------------------------------


def links_for(
    family: StructureFamily | str,
    base_url: str,
    path_segments: Sequence[str],
    *,
    ndim: int | None = None,
) -> dict[str, str]:
    """The ``links`` of a node, as the tiled client follows them.

    Every family: ``self`` = ``{base}/metadata/{path}`` (for the root
    ``{base}/metadata/``, *with* the slash: the client derives
    ``/stream/close/...`` by replacing ``/metadata/``). Container:
    ``search`` (children listing) and ``full``; array: ``full`` (raw bytes,
    slicing, appends) and ``block``, a ``str.format`` template with one
    positional field per axis (``...?block={0},{1}``, so arrays need
    ``ndim``); table: ``full`` (upload) and ``partition``, a template with
    the named field ``index`` (``...?partition={index}``). Keys are
    percent-encoded.
    """
    family = StructureFamily(family)
    base_url = base_url.rstrip("/")
    path = _quoted_path(path_segments)
    links = {"self": f"{base_url}/metadata/{path}"}
    if family is StructureFamily.container:
        links["search"] = f"{base_url}/search/{path}"
        links["full"] = f"{base_url}/container/full/{path}"
    elif family is StructureFamily.array:
        if ndim is None or ndim < 0:
            raise ValueError("the links of an array need its number of axes (ndim=)")
        fields = ",".join(f"{{{axis}}}" for axis in range(ndim))
        links["full"] = f"{base_url}/array/full/{path}"
        links["block"] = f"{base_url}/array/block/{path}?block={fields}"
    else:
        links["full"] = f"{base_url}/table/full/{path}"
        links["partition"] = f"{base_url}/table/partition/{path}?partition={{index}}"
    return links


class NodeLinks(BaseModel):
    """The ``links`` of an item: absolute URLs the client requests verbatim.

    ``self``: the node's metadata URL (always). ``search``, ``full``:
    containers. ``full``, ``block``: arrays. ``full``, ``partition``:
    tables. See :func:`links_for`. Links that do not apply are left out of
    the JSON (no ``null`` values). Leaving out ``search_deep`` makes the
    client's ``search_deep()`` fail locally with "not supported".
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    self_: str = Field(alias="self")
    search: str | None = None
    full: str | None = None
    block: str | None = None
    partition: str | None = None

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        own = data.pop("self_", None) or data.pop("self", None)
        return {"self": own, **{k: v for k, v in data.items() if v is not None}}


class SortingItem(BaseModel):
    """One sort key of a container: ``key`` (``""`` = the default order,
    creation order in hookbook) and ``direction`` (1 ascending, -1 descending)."""

    key: str
    direction: Literal[1, -1]


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


class NodeAttributes(BaseModel):
    """The ``attributes`` of an item.

    ``ancestors``: keys from the root to the parent (``[]`` for children of
    the root and for the root itself). ``structure_family``: ``container``,
    ``array`` or ``table``. ``specs``: list of :class:`Spec` (always a list,
    never null: the client iterates it). ``metadata``: the user's JSON
    object (always an object). ``structure``: the family's structure;
    containers *must* carry ``{"contents": null, "count": n}``.
    ``access_tags``: ``[]``: hookbook has no access tags, but the client's
    ``metadata_copy()`` reads the key and makes a list of it.
    ``sorting``: ``None``: the client then uses the server's default order
    (it sends no ``sort`` parameter, and ``sort=-`` to walk backwards).
    ``data_sources``: only with ``include_data_sources=true``, else ``None``.
    """

    model_config = ConfigDict(extra="ignore")

    ancestors: list[str]
    structure_family: StructureFamily
    specs: list[Spec] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    structure: ArrayStructure | TableStructure | ContainerStructure | None = None
    access_tags: list[str] | None = Field(default_factory=list)
    sorting: list[SortingItem] | None = None
    data_sources: list[DataSource] | None = None

    @field_validator("specs", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> list[Spec]:
        return normalise_specs(value)

    @model_validator(mode="before")
    @classmethod
    def _structure_by_family(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("structure"), Mapping):
            family = data.get("structure_family")
            family = getattr(family, "value", family)
            if family in _STRUCTURE_MODELS:
                data = dict(data)
                data["structure"] = parse_structure(family, data["structure"])
        return data

    @model_validator(mode="after")
    def _family_matches(self) -> NodeAttributes:
        if self.structure is not None:
            expected = _STRUCTURE_MODELS[self.structure_family.value]
            if not isinstance(self.structure, expected):
                raise ValueError(
                    f"a {self.structure_family.value} node needs a {expected.__name__}"
                )
        return self


class Item(BaseModel):
    """One node as the client sees it (a JSON:API-style resource).

    ``id``: the node's key (``""`` for the root). ``attributes``:
    :class:`NodeAttributes`. ``links``: :class:`NodeLinks`. ``meta``:
    free-form, ``{}``.
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    attributes: NodeAttributes
    links: NodeLinks
    meta: dict[str, Any] = Field(default_factory=dict)


def item(
    path_segments: Sequence[str],
    *,
    structure_family: StructureFamily | str,
    structure: ArrayStructure | TableStructure | ContainerStructure | Mapping[str, Any],
    base_url: str,
    metadata: Mapping[str, Any] | None = None,
    specs: Any = None,
    data_sources: Sequence[DataSource | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A node's item envelope as a JSON-ready dict.

    ``path_segments`` is the node's full path (the root is ``[]``); ``id`` is
    its last segment and ``ancestors`` the rest. ``structure`` is validated
    against the family (a container passes ``ContainerStructure(count=n)``).
    ``data_sources`` is given only when the request asked for them.
    """
    family = StructureFamily(structure_family)
    segments = list(path_segments)
    parsed = parse_structure(family.value, structure)
    ndim = len(parsed.shape) if isinstance(parsed, ArrayStructure) else None
    links = links_for(family, base_url, segments, ndim=ndim)
    doc = Item(
        id=segments[-1] if segments else "",
        attributes=NodeAttributes(
            ancestors=segments[:-1],
            structure_family=family,
            specs=normalise_specs(specs),
            metadata=dict(metadata or {}),
            structure=parsed,
            data_sources=None if data_sources is None else list(data_sources),
        ),
        links=NodeLinks.model_validate(links),
    )
    return doc.model_dump(mode="json")


def metadata_response(item_document: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``GET /metadata/{path}``: ``{"data": item, "meta": {}}``.

    The client reads only ``data``.
    """
    return {"data": dict(item_document), "meta": {}}


# ---------------------------------------------------------------------------
# Search (listing children)
# ---------------------------------------------------------------------------


class PaginationLinks(BaseModel):
    """Paging links of a search response, absolute URLs carrying only
    ``page[offset]`` and ``page[limit]``.

    ``self``: this page. ``first``: offset 0. ``last``: the last page
    (offset 0 when there are no children). ``next``: the following page, or
    ``None`` on the last page: the client follows ``next`` until it is
    ``None`` (re-adding its own ``fields``/``sort`` parameters), so it must
    be ``None`` when ``offset + limit >= count`` and when ``limit == 0``.
    ``prev``: the previous page, or ``None`` on the first.
    """

    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    first: str
    last: str
    next: str | None
    prev: str | None

    @model_serializer(mode="wrap")
    def _alias_self(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if "self_" in data:
            data["self"] = data.pop("self_")
        return data


class SearchMeta(BaseModel):
    """``meta`` of a search response: ``count``, the number of children
    (all of them, not just this page). ``len(container)`` reads it."""

    count: int = Field(ge=0)


class SearchResponse(BaseModel):
    """The body of ``GET /search/{path}``: ``data`` (the page's items, in
    order), ``links`` (:class:`PaginationLinks`), ``meta`` (:class:`SearchMeta`).
    With ``fields=count`` ``data`` is ``[]``; with ``fields=`` (empty) an item
    may carry only ``id``, ``attributes.ancestors`` and ``links.self``."""

    data: list[dict[str, Any]]
    links: PaginationLinks
    meta: SearchMeta


def pagination_links(
    base_url: str, path_segments: Sequence[str], *, offset: int, limit: int, count: int
) -> dict[str, str | None]:
    """The ``links`` of a search page (see :class:`PaginationLinks`)."""
    if offset < 0 or limit < 0 or count < 0:
        raise ValueError("offset, limit and count must not be negative")
    route = f"{base_url.rstrip('/')}/search/{_quoted_path(path_segments)}"

    def page(start: int) -> str:
        return f"{route}?page[offset]={start}&page[limit]={limit}"

    last = ((count - 1) // limit) * limit if (count and limit) else 0
    has_next = limit > 0 and offset + limit < count
    return PaginationLinks(
        self_=page(offset),
        first=page(0),
        last=page(last),
        next=page(offset + limit) if has_next else None,
        prev=page(max(0, offset - limit)) if offset > 0 else None,
    ).model_dump(mode="json")


def search_response(
    items: Sequence[Mapping[str, Any]],
    *,
    base_url: str,
    path_segments: Sequence[str],
    offset: int,
    limit: int,
    count: int,
) -> dict[str, Any]:
    """The body of ``GET /search/{path}`` for one page.

    ``items`` are the page's item documents (see :func:`item`); ``limit`` is
    the page size actually used (clamp the request to
    :data:`MAX_PAGE_LIMIT` first); ``count`` is the total number of children.
    """
    return SearchResponse(
        data=[dict(i) for i in items],
        links=PaginationLinks.model_validate(
            pagination_links(base_url, path_segments, offset=offset, limit=limit, count=count)
        ),
        meta=SearchMeta(count=count),
    ).model_dump(mode="json")


def parse_fields(values: Sequence[str] | None) -> frozenset[str] | None:
    """Parse the repeated ``fields=`` query parameter.

    ``None`` (absent) means all fields. ``{""}`` means keys only (the client
    sends ``fields=`` when it iterates keys); ``{"count"}`` means only
    ``meta.count`` (``len()``). Unknown names raise :class:`ValueError`.
    """
    if values is None:
        return None
    unknown = [v for v in values if v not in ENTRY_FIELDS]
    if unknown:
        raise ValueError(f"unknown fields {unknown}; known: {sorted(f for f in ENTRY_FIELDS if f)}")
    return frozenset(values)


def parse_sort(values: Sequence[str] | None) -> list[tuple[str, int]]:
    """Parse the repeated ``sort=`` query parameter into ``(key, direction)``.

    ``key`` (or ``+key``) ascending, ``-key`` descending; the key ``""``
    is the server's default order, so ``sort=-`` (which the client sends to
    walk a container backwards, e.g. ``keys()[-1]``) means "default order,
    reversed". Empty values are ignored; ``""`` must come last; a key may
    not repeat.
    """
    out: dict[str, int] = {}
    for value in values or ():
        if not value:
            continue
        if value[0] in "+-":
            key, direction = value[1:], (-1 if value[0] == "-" else 1)
        else:
            key, direction = value, 1
        if key in out:
            raise ValueError(f"duplicate sorting key {key!r}")
        out[key] = direction
    keys = list(out)
    if "" in out and keys[-1] != "":
        raise ValueError("the default order (empty key) must be the last sort item")
    return list(out.items())


# ---------------------------------------------------------------------------
# Request bodies and their responses
# ---------------------------------------------------------------------------


class CreateNodeRequest(BaseModel):
    """Body of ``POST /api/v1/metadata/{parent path}``: create a child.

    ``id``: the new key (the tiled client always sends one, a ``uuid4``
    when the user gave none); ``None`` lets the server choose.
    ``ancestors``: the client's idea of the parent's path; unreliable (it
    is ``[""]`` under the root) and ignored: the URL is authoritative.
    ``metadata``: a JSON object. ``structure_family``: ``container``,
    ``array`` or ``table``. ``specs``: list of specs (normalised; a bare
    string is a name). ``access_tags``: accepted and ignored (hookbook has
    no access tags). ``data_sources``: ``[]`` for a container; exactly one
    :class:`DataSource` of the same family, carrying the structure, for an
    array or a table. After validation :meth:`structure` gives the parsed
    structure.
    """

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    ancestors: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    structure_family: StructureFamily
    specs: list[Spec] = Field(default_factory=list)
    access_tags: list[str] | None = None
    data_sources: list[DataSource] = Field(default_factory=list)

    _structure: ArrayStructure | TableStructure | None = PrivateAttr(default=None)

    @field_validator("id")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else validate_key(value)

    @field_validator("structure_family", mode="before")
    @classmethod
    def _family(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in SUPPORTED_FAMILIES:
            raise ValueError(_unsupported_family_message(value))
        return value

    @field_validator("specs", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> list[Spec]:
        return normalise_specs(value)

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"metadata must be a JSON object, not {type(value).__name__}")
        return value

    @model_validator(mode="after")
    def _data_sources(self) -> CreateNodeRequest:
        family = self.structure_family
        if family is StructureFamily.container:
            if self.data_sources:
                raise ValueError("a container is created without data_sources")
            return self
        if len(self.data_sources) != 1:
            raise ValueError(
                f"a {family.value} is created with exactly one data source, "
                f"not {len(self.data_sources)}"
            )
        (source,) = self.data_sources
        if source.structure_family != family.value:
            raise ValueError(
                f"the data source is a {source.structure_family!r}, the node a {family.value!r}"
            )
        if source.assets:
            raise ValueError(
                "registering external assets is not supported by hookbook "
                "(data is written through the API)"
            )
        if source.management != "writable":
            raise ValueError(
                f"data source management {source.management!r} is not supported (only 'writable')"
            )
        if source.structure is None:
            raise ValueError(f"the data source of a {family.value} needs a structure")
        self._structure = parse_structure(family.value, source.structure)
        return self

    def structure(self) -> ArrayStructure | TableStructure | None:
        """The new node's structure (``None`` for a container)."""
        return self._structure


class CreateNodeResponse(BaseModel):
    """Body answering ``POST /metadata/{path}``.

    ``id``: the new key. ``links``: the new node's full link set (the client
    builds its node object from it and at once uses ``full`` to upload
    data). ``metadata``: the stored metadata (the client adopts it).
    ``access_tags``: ``[]``. ``data_sources``: optional.

    Never add a ``structure`` key: the 0.2.20 client passes it positionally
    to its structure class and produces a broken node.
    """

    id: str
    links: NodeLinks
    metadata: dict[str, Any]
    access_tags: list[str] = Field(default_factory=list)
    data_sources: list[DataSource] | None = None

    @model_serializer(mode="wrap")
    def _drop_empty(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("data_sources") is None:
            data.pop("data_sources", None)
        return data


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _apply_json_patch(document: Any, operations: list[Any], what: str, budget: PatchBudget) -> Any:
    try:
        return apply_json_patch(document, operations, budget)
    except ValueError as err:
        raise ValueError(f"the {what} {err}") from None


class MetadataPatchRequest(BaseModel):
    """Body of ``PATCH /api/v1/metadata/{path}`` (``update_metadata``).

    The HTTP ``Content-Type`` is plain ``application/json``; the patch
    format travels *inside* the body:

    ``content-type``: ``application/json-patch+json`` (RFC 6902, what the
    client's ``update_metadata`` sends) or ``application/merge-patch+json``
    (RFC 7386, only through ``patch_metadata(content_type=...)``).
    ``metadata``: JSON Patch operations (``[]`` for no change; the client
    always sends a list) or, for merge-patch, an object; computed by the
    client against *its cached copy* of the metadata.
    ``specs``: ``None`` for no change; JSON Patch operations over the list of
    spec objects (values ``{"name", "version"}``), or for merge-patch the
    complete new list.
    ``access_tags``: ignored (hookbook has no access tags).

    :meth:`apply` computes the new metadata and specs.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    content_type: Literal["application/json-patch+json", "application/merge-patch+json"] = Field(
        alias="content-type"
    )
    metadata: list[dict[str, Any]] | dict[str, Any] | None = None
    specs: list[Any] | None = None
    access_tags: list[Any] | None = None

    @model_validator(mode="after")
    def _shapes(self) -> MetadataPatchRequest:
        if self.content_type == JSON_PATCH_MIME_TYPE:
            if isinstance(self.metadata, dict):
                raise ValueError("a JSON Patch of metadata is a list of operations")
            for op in (self.metadata or []) + [
                s for s in (self.specs or []) if isinstance(s, dict)
            ]:
                if not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
                    raise ValueError(f"a JSON Patch operation needs 'op' and 'path': {op!r}")
            if any(not isinstance(s, dict) for s in self.specs or []):
                raise ValueError("a JSON Patch of specs is a list of operations")
        else:
            if isinstance(self.metadata, list):
                raise ValueError("a merge patch of metadata is a JSON object")
            if self.specs is not None:
                normalise_specs(self.specs)
        return self

    def apply(
        self, metadata: Mapping[str, Any], specs: Sequence[Spec], *, budget: PatchBudget
    ) -> tuple[dict[str, Any], list[Spec]]:
        """Apply this patch to the current metadata and specs.

        Returns ``(new_metadata, new_specs)``. Raises :class:`ValueError`
        when the patch does not apply (e.g. it removes a key that is no
        longer there: the client computed it against a stale copy; answer
        409) or when the result is not a JSON object / not valid specs. A
        JSON Patch runs within ``budget`` (:mod:`hookbook.patching`: a 413
        at the first operation that takes the document over the limit).
        """
        current_specs = [s.model_dump() for s in specs]
        if self.content_type == JSON_PATCH_MIME_TYPE:
            new_metadata = _apply_json_patch(
                dict(metadata), list(self.metadata or []), "metadata", budget
            )
            if self.specs is None:
                new_specs = specs
            else:
                operations = []
                for op in self.specs:
                    op = dict(op)
                    if isinstance(op.get("value"), str):
                        op["value"] = {"name": op["value"], "version": None}
                    operations.append(op)
                new_specs = _apply_json_patch(current_specs, operations, "specs", budget)
        else:
            new_metadata = _merge_patch(dict(metadata), self.metadata or {})
            new_specs = specs if self.specs is None else self.specs
        if not isinstance(new_metadata, dict):
            raise ValueError("the patched metadata is not a JSON object")
        return new_metadata, normalise_specs(list(new_specs))


class MetadataReplaceRequest(BaseModel):
    """Body of ``PUT /api/v1/metadata/{path}`` (the client's
    ``replace_metadata``, also usable by hookbook's own client).

    ``metadata``: the new metadata object, or ``None`` to keep it.
    ``specs``: the new list of specs, or ``None`` to keep them.
    ``access_tags``: ignored.
    """

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, Any] | None = None
    specs: list[Spec] | None = None
    access_tags: list[str] | None = None

    @field_validator("specs", mode="before")
    @classmethod
    def _specs(cls, value: Any) -> list[Spec] | None:
        return None if value is None else normalise_specs(value)

    def apply(
        self, metadata: Mapping[str, Any], specs: Sequence[Spec]
    ) -> tuple[dict[str, Any], list[Spec]]:
        """``(new_metadata, new_specs)``: the given ones, or the current ones."""
        return (
            dict(metadata) if self.metadata is None else dict(self.metadata),
            list(specs) if self.specs is None else list(self.specs),
        )


class MetadataUpdateResponse(BaseModel):
    """Body answering ``PATCH``/``PUT /metadata/{path}``.

    ``id``: the node's key. ``metadata``: the stored metadata, which the
    client adopts as its new cached copy (never send ``null``: the client
    would store it). ``specs``: the stored specs (extra; the client patches
    its own copy).
    """

    id: str
    metadata: dict[str, Any]
    specs: list[Spec]


def parse_int_tuple(text: str | None, *, name: str) -> tuple[int, ...]:
    """Parse a comma-separated list of non-negative integers (``"3"``,
    ``"3,0"``), as in the ``offset`` and ``shape`` query parameters."""
    if text is None or not text.strip():
        raise ValueError(f"{name} is required (comma-separated integers)")
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ValueError(f"{name} must be comma-separated non-negative integers, not {text!r}")
    return tuple(int(p) for p in parts)


def parse_expected_shape(text: str | None) -> tuple[int, ...] | None:
    """Parse ``expected_shape``: ``None`` if absent, ``()`` for ``"scalar"``,
    else comma-separated non-negative integers."""
    if text is None:
        return None
    if text == "scalar":
        return ()
    return parse_int_tuple(text, name="expected_shape")


class ArrayPatchPlan(BaseModel):
    """What a ``PATCH /array/full`` does to an array of a given shape.

    ``new_shape``: the shape after the write. ``region``: where the body's
    data goes (one ``slice`` per axis, for ``array[region] = data``).
    ``conflict``: ``None`` if the write may proceed; otherwise the 409
    ``detail`` (the data does not fit and ``extend`` is false).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    new_shape: tuple[int, ...]
    region: tuple[slice, ...]
    conflict: str | None = None


class ArrayPatchParams(BaseModel):
    """Query of ``PATCH /api/v1/array/full/{path}`` (the client's
    ``ArrayClient.patch(data, offset, extend=...)``; body: raw bytes of
    ``data`` in the array's dtype, ``Content-Type: application/octet-stream``).

    ``offset``: where the data starts, one integer per leading axis (the
    client sends e.g. ``offset=3`` for a 3-d array: the other axes start at
    0). ``shape``: the shape of the data in the body. ``extend``: grow the
    array to fit (``true``/``false``). ``persist``: ``false`` only streams
    the data without storing it; hookbook supports only ``true``.
    """

    offset: tuple[int, ...]
    shape: tuple[int, ...]
    extend: bool = False
    persist: bool = True

    @classmethod
    def from_query(
        cls, *, offset: str | None, shape: str | None, extend: bool = False, persist: bool = True
    ) -> ArrayPatchParams:
        """Build from the raw query strings (``offset``, ``shape``)."""
        return cls(
            offset=parse_int_tuple(offset, name="offset"),
            shape=parse_int_tuple(shape, name="shape"),
            extend=extend,
            persist=persist,
        )

    def nbytes(self, itemsize: int) -> int:
        """Expected length of the request body."""
        return math.prod(self.shape) * itemsize

    def plan(self, current_shape: Sequence[int]) -> ArrayPatchPlan:
        """Work out the new shape and the target region.

        Raises :class:`ValueError` (answer 400) when the data's shape does
        not have the array's number of axes, when ``offset`` has more
        entries than axes, or when ``persist`` is false. A write that does
        not fit without ``extend`` is reported in ``plan.conflict`` (answer
        409 with it as the ``detail``; it says "Use ?extend=true", which the
        client turns into "Pass keyword argument extend=true").
        """
        current = tuple(current_shape)
        if not self.persist:
            raise ValueError("persist=false is not supported by hookbook")
        if len(self.shape) != len(current):
            raise ValueError(
                f"the data has {len(self.shape)} axes (shape {list(self.shape)}), "
                f"the array {len(current)} (shape {list(current)})"
            )
        if len(self.offset) > len(current):
            raise ValueError(f"offset {list(self.offset)} has more entries than the array has axes")
        offset = tuple(self.offset) + (0,) * (len(current) - len(self.offset))
        new_shape = tuple(
            max(n, o + d) for n, o, d in zip(current, offset, self.shape, strict=True)
        )
        region = tuple(slice(o, o + d) for o, d in zip(offset, self.shape, strict=True))
        conflict = None
        if new_shape != current and not self.extend:
            conflict = (
                f"Data of shape {list(self.shape)} at offset {list(offset)} does not fit "
                f"within the current array shape {list(current)}. "
                "Use ?extend=true to extend the array dimensions to fit."
            )
        return ArrayPatchPlan(new_shape=new_shape, region=region, conflict=conflict)


class TablePartitionParams(BaseModel):
    """Query of ``/api/v1/table/partition/{path}``.

    ``partition``: the partition index, from 0 (``GET`` reads it, ``PUT``
    replaces it, ``PATCH`` appends rows to it: the client's
    ``append_partition``). ``column``: repeated, to read only some columns
    (``GET``; the ``POST`` variant carries the list as the JSON body).
    """

    partition: int = Field(ge=0)
    column: list[str] | None = None


class DeleteParams(BaseModel):
    """Query of ``DELETE /api/v1/metadata/{path}``.

    ``recursive``: also delete everything below (without it, deleting a
    non-empty container is a 409). ``external_only``: Tiled's guard against
    deleting data it manages; the client sends ``true`` by default. Every
    hookbook node's data is written through the API, so there is nothing
    external to protect: hookbook accepts and ignores it, so that a bare
    ``delete(recursive=True)`` deletes the subtree, data included.
    """

    recursive: bool = False
    external_only: bool = True


class ErrorResponse(BaseModel):
    """Body of every error: ``{"detail": "..."}``, with HTTP
    ``Content-Type: application/json`` exactly (the client compares the
    header to that string before it reads ``detail``). ``detail`` should be
    a string: the client's array ``patch`` calls ``.replace`` on it."""

    detail: str


# ---------------------------------------------------------------------------
# Slicing
# ---------------------------------------------------------------------------

_INT = re.compile(r"^-?\d+$")


def _slice_piece(piece: str, part: str) -> int | None:
    if piece == "":
        return None
    if not _INT.match(piece):
        raise ValueError(f"invalid slice part {part!r}: {piece!r} is not an integer")
    return int(piece)


def parse_slice(text: str | None, shape: Sequence[int]) -> tuple[slice | int, ...]:
    """Parse the ``slice=`` query parameter for an array of ``shape``.

    Syntax (numpy's, comma-separated per axis): an integer index (``3``,
    ``-1``); a slice ``start:stop:step`` whose parts may be empty (``:``,
    ``1:``, ``:5``, ``::2``, ``9:-11:-1``); ``...`` (at most once). Spaces
    and enclosing ``()``/``[]`` are ignored, as is one trailing comma. The
    tiled client sends fully expanded slices such as ``1:3:1,0:4:1`` or
    ``9,0:4:1``.

    Returns exactly one entry per axis (``...`` expanded, missing trailing
    axes filled with ``slice(None)``) so that ``array[result]`` works and
    :func:`sliced_shape` gives the result's shape. Negative integer indices
    are made non-negative. Raises :class:`ValueError` on garbage, a zero
    step, too many indices, or an index out of range. An empty or absent
    parameter selects everything.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    body = (text or "").replace(" ", "").strip("()[]")
    if body == ",":
        raise ValueError(f"invalid slice {text!r}: empty entry")
    if body.endswith(","):
        body = body[:-1]
    if not body:
        return tuple(slice(None) for _ in shape)
    parts = body.split(",")
    parsed: list[Any] = []
    for part in parts:
        if part == "":
            raise ValueError(f"invalid slice {text!r}: empty entry")
        if part == "...":
            if any(p is Ellipsis for p in parsed):
                raise ValueError(f"invalid slice {text!r}: more than one '...'")
            parsed.append(Ellipsis)
            continue
        pieces = part.split(":")
        if len(pieces) == 1:
            parsed.append(_slice_piece(pieces[0], part))  # an integer (not empty here)
        elif len(pieces) <= 3:
            start, stop, step = (_slice_piece(p, part) for p in (*pieces, "")[:3])
            if step == 0:
                raise ValueError(f"invalid slice part {part!r}: step must not be zero")
            parsed.append(slice(start, stop, step))
        else:
            raise ValueError(f"invalid slice part {part!r}: too many ':'")
    explicit = [p for p in parsed if p is not Ellipsis]
    if len(explicit) > ndim:
        raise ValueError(f"slice {text!r} has {len(explicit)} indices, the array {ndim} axes")
    if Ellipsis in parsed:
        at = parsed.index(Ellipsis)
        fill = [slice(None)] * (ndim - len(explicit))
        parsed = parsed[:at] + fill + parsed[at + 1 :]
    parsed += [slice(None)] * (ndim - len(parsed))
    result: list[slice | int] = []
    for axis, (index, length) in enumerate(zip(parsed, shape, strict=True)):
        if isinstance(index, int):
            if not -length <= index < length:
                raise ValueError(
                    f"index {index} is out of range for axis {axis} of length {length}"
                )
            index %= length
        result.append(index)
    return tuple(result)


def sliced_shape(key: Sequence[slice | int], shape: Sequence[int]) -> tuple[int, ...]:
    """The shape of ``array[key]`` for a key from :func:`parse_slice`
    (to compare with the client's ``expected_shape``)."""
    out = []
    for index, length in zip(key, shape, strict=True):
        if isinstance(index, slice):
            out.append(len(range(*index.indices(length))))
    return tuple(out)


def format_slice(key: Any) -> str:
    """Format a numpy-style index (int, slice, ``...`` or a tuple of them) as
    the ``slice=`` query value, e.g. ``(slice(1, 3), 2)`` -> ``"1:3,2"``."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for index in key:
        if index is Ellipsis:
            out.append("...")
        elif isinstance(index, slice):
            text = ("" if index.start is None else str(int(index.start))) + ":"
            text += "" if index.stop is None else str(int(index.stop))
            if index.step is not None:
                text += f":{int(index.step)}"
            out.append(text)
        elif isinstance(index, bool) or not hasattr(index, "__index__"):
            raise ValueError(f"cannot express {index!r} as a slice parameter")
        else:
            out.append(str(index.__index__()))
    return ",".join(out)


# ---------------------------------------------------------------------------
# Unsupported parts of Tiled's protocol
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class UnsupportedRoute:
    """A Tiled route hookbook answers with a 4xx naming what is unsupported.

    ``methods``: HTTP methods (``"WEBSOCKET"`` for the websocket route).
    ``path``: the route below ``/api/v1``, in FastAPI syntax. ``feature``:
    what it is for, to put in the error ``detail``.
    """

    methods: tuple[str, ...]
    path: str
    feature: str

    def detail(self) -> str:
        return f"hookbook does not support {self.feature} ({self.path})"


#: Routes of Tiled 0.2.20's ``/api/v1`` that hookbook does not serve. Answer
#: them with 405 (never 5xx: the client retries those for 45 s).
UNSUPPORTED_ROUTES: tuple[UnsupportedRoute, ...] = (
    UnsupportedRoute(("WEBSOCKET",), "/stream/single/{path:path}", "websocket subscriptions"),
    UnsupportedRoute(("POST",), "/register/{path:path}", "registering external files"),
    UnsupportedRoute(("GET", "DELETE"), "/revisions/{path:path}", "metadata revisions"),
    UnsupportedRoute(("GET", "POST"), "/container/full/{path:path}", "exporting containers"),
    UnsupportedRoute(("GET", "POST"), "/node/full/{path:path}", "the deprecated /node/full route"),
    UnsupportedRoute(("PUT",), "/node/full/{path:path}", "the deprecated /node/full route"),
    UnsupportedRoute(("GET",), "/search-deep/{path:path}", "deep search"),
    UnsupportedRoute(("GET",), "/distinct/{path:path}", "distinct-value queries"),
    UnsupportedRoute(("PUT",), "/data_source/{path:path}", "replacing data sources"),
    UnsupportedRoute(("GET",), "/asset/bytes/{path:path}", "raw asset download"),
    UnsupportedRoute(("GET",), "/asset/manifest/{path:path}", "asset manifests"),
    UnsupportedRoute(("DELETE",), "/asset/{path:path}", "deleting assets"),
    UnsupportedRoute(("GET", "POST", "PUT"), "/awkward/{rest:path}", "awkward arrays"),
    UnsupportedRoute(("GET", "PUT", "PATCH"), "/ragged/{rest:path}", "ragged arrays"),
)
