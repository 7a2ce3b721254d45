"""Arrays in zarr (format v3), chunked along the first axis.

A chunk holds whole rows (``shape[1:]``), as many as fit in
:data:`CHUNK_BYTES`; a row bigger than that is split along the next axes.
So an append writes its own rows only: new chunks, plus the partial last
chunk rewritten (zarr reads, modifies and writes it, under a temporary name
and a rename). A slice reads only the chunks it overlaps.

The shape readers see is the database's, never ``zarr.json``'s: every call
here takes the shape to use, and ``zarr.json`` only gets it through
:meth:`ZarrArrays.publish`, after the database commits it (and again at
start-up), so an outside reader (xarray, dask) never sees a failed append.
Everything else in ``zarr.json`` (data type, chunk shape, codecs) is fixed
when the array is created.

Chunk size and codec were chosen by measurement (``bench/bench_zarr_layout.py``;
``bench/README.md``, "Streams: chunk size and codec"). 1 MiB chunks keep a
one-row append of an 800 kB row to one new chunk and a small-row append to a
1 MiB rewrite; 4 MiB chunks made those appends 3 to 10 times slower, and
256 KiB ones gained nothing. Blosc with LZ4 and no shuffle decodes
incompressible data (random floats) at memory speed, where byte shuffle
costs an extra pass on every read; it still stores the zero padding of a
short last chunk (and of small arrays) in a few bytes, which no codec at
all cannot (a 3-element array would take a whole 1 MiB chunk on disk).

Reads and writes use zarr's asynchronous API on the caller's event loop
(zarr moves file I/O and codecs to threads itself), which saves the thread
hops of its synchronous wrapper on every append. zarr is imported on first
use only (it takes about 0.3 s).
"""

from __future__ import annotations

import json
import math
import uuid
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .local import PARTIAL, LocalBackend

if TYPE_CHECKING:  # zarr is imported when first used (it is slow to import)
    from zarr.core.array_spec import ArrayConfigParams

#: Target size of one chunk, uncompressed.
CHUNK_BYTES = 1 << 20
#: Every chunk is written, even when it holds only fill values: a chunk a
#: failed append left behind is then overwritten, never read as data.
_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}
_METADATA = "zarr.json"
#: Arrays whose zarr.json has been read (everything in it but the shape is fixed).
_TEMPLATES_KEPT = 256

Region = tuple[slice, ...]
Key = tuple[slice | int, ...]


def chunk_shape(shape: Sequence[int], itemsize: int) -> tuple[int, ...]:
    """The chunk shape for an array of ``shape``: whole rows up to
    :data:`CHUNK_BYTES` (at least one); a row over that is split along its own
    first axis the same way."""
    if not shape:
        return ()
    row_bytes = math.prod(shape[1:]) * itemsize
    if len(shape) > 1 and row_bytes > CHUNK_BYTES:
        return (1, *chunk_shape(shape[1:], itemsize))
    rows = max(1, CHUNK_BYTES // max(1, row_bytes))
    return (rows, *(max(1, n) for n in shape[1:]))


def chunk_lengths(shape: Sequence[int], chunks: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The chunks of each axis as Tiled's structure lists them (``[[4, 4, 2], [6]]``)."""
    out = []
    for length, size in zip(shape, chunks, strict=True):
        full, rest = divmod(length, size)
        out.append((size,) * full + ((rest,) if rest else ()) or (0,))
    return tuple(out)


def new_location() -> str:
    return f"data/{uuid.uuid4().hex}.zarr"


class ZarrArrays:
    """Create, write, read and publish zarr arrays at locations of one backend."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self._templates: dict[str, Any] = {}

    async def create(
        self, dtype: np.dtype[Any], shape: Sequence[int], dims: Sequence[str] | None
    ) -> str:
        """A new, empty array (fill values) at a new location; its ``zarr.json`` says ``shape``."""
        import zarr
        import zarr.api.asynchronous
        from zarr.codecs import BloscCodec

        location = new_location()
        with warnings.catch_warnings():
            # Fixed-length strings and raw bytes are not in the zarr v3 core spec yet.
            warnings.simplefilter("ignore", zarr.errors.UnstableSpecificationWarning)
            array = await zarr.api.asynchronous.create_array(
                self.backend.zarr_store(location),
                shape=tuple(shape),
                chunks=chunk_shape(shape, dtype.itemsize),
                dtype=dtype,
                compressors=BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
                fill_value=None,
                dimension_names=None if dims is None else tuple(dims),
                config=_CONFIG,
            )
        self._remember(location, (array.store_path, array.metadata))
        return location

    async def chunk_shape(self, location: str) -> tuple[int, ...]:
        return tuple((await self._template(location))[1].chunk_grid.chunk_shape)

    async def write(
        self, location: str, shape: Sequence[int], region: Region, data: np.ndarray
    ) -> None:
        """Write ``data`` into ``region`` of the array, taken to have ``shape``
        (the shape after this write): only the chunks ``region`` overlaps."""
        array = await self._open(location, shape)
        await array.setitem(region if shape else (), data)

    async def read(self, location: str, shape: Sequence[int], key: Key) -> np.ndarray:
        """``array[key]`` of the array taken to have ``shape``, reading only the
        chunks the key overlaps (``key`` from :func:`hookbook.protocol.parse_slice`:
        one entry per axis, any steps)."""
        array = await self._open(location, shape)
        if not shape:
            return np.asarray(await array.getitem(()))
        bounds: list[slice | int] = []
        local: list[slice] = []
        for index, length in zip(key, shape, strict=True):
            if isinstance(index, int):
                bounds.append(index)
                continue
            picked = range(*index.indices(length))
            if not picked:
                result_shape = _result_shape(key, shape)
                return np.empty(result_shape, dtype=array.dtype)
            low, high = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
            bounds.append(slice(low, high))
            local.append(slice(None, None, picked.step))
        block = np.asarray(await array.getitem(tuple(bounds)))
        if any(s.step != 1 for s in local):
            block = block[tuple(local)]
        return np.asarray(block)

    def publish(self, location: str, shape: Sequence[int]) -> bool:
        """Make ``zarr.json`` say ``shape`` (the committed one); True if it changed.

        At one location a shape only grows (a new write gets a new location), so
        a smaller shape than the one there is a late publisher's, and is left.
        Needs no zarr import: it is a JSON file."""
        key = f"{location}/{_METADATA}"
        document = json.loads(self.backend.read_bytes(key))
        there = document.get("shape")
        if there == list(shape) or (
            len(there) == len(shape) and all(a >= b for a, b in zip(there, shape, strict=True))
        ):
            return False
        document["shape"] = list(shape)
        self.backend.write_bytes(key, json.dumps(document, indent=2).encode())
        return True

    def trim(self, location: str, shape: Sequence[int], older_than: float) -> list[str]:
        """Remove chunks wholly past ``shape`` along the first axis (left by appends
        that never committed) and unfinished writes, if older than ``older_than``
        (epoch s): a live writer's are younger. Returns the keys removed."""
        if not shape:
            return []
        rows = json.loads(self.backend.read_bytes(f"{location}/{_METADATA}"))
        per_chunk = rows["chunk_grid"]["configuration"]["chunk_shape"][0]
        first_past = math.ceil(shape[0] / per_chunk)
        removed = []
        for key, mtime in self.backend.entries(f"{location}/c"):
            name = key.rsplit("/", 1)[-1]
            past = name.isdigit() and int(name) >= first_past
            if (past or name.endswith(PARTIAL)) and mtime < older_than:
                self.backend.remove(key)
                removed.append(key)
        return removed

    # ---- zarr objects ------------------------------------------------------

    async def _open(self, location: str, shape: Sequence[int]) -> Any:
        """The ``AsyncArray`` at ``location`` with ``shape`` (not ``zarr.json``'s)."""
        from zarr.core.array import AsyncArray

        store_path, template = await self._template(location)
        return AsyncArray(template.update_shape(tuple(shape)), store_path, config=_CONFIG)

    async def _template(self, location: str) -> tuple[Any, Any]:
        """The array's store path and its metadata as created (cached: all but
        the shape is fixed)."""
        template = self._templates.get(location)
        if template is None:
            import zarr
            import zarr.api.asynchronous

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", zarr.errors.UnstableSpecificationWarning)
                array = await zarr.api.asynchronous.open_array(
                    store=self.backend.zarr_store(location), mode="r+", zarr_format=3
                )
            template = (array.store_path, array.metadata)
            self._remember(location, template)
        return template

    def _remember(self, location: str, template: tuple[Any, Any]) -> None:
        if len(self._templates) >= _TEMPLATES_KEPT:
            self._templates.pop(next(iter(self._templates)))
        self._templates[location] = template

    def forget(self, location: str) -> None:
        self._templates.pop(location, None)


def _result_shape(key: Key, shape: Sequence[int]) -> tuple[int, ...]:
    return tuple(
        len(range(*index.indices(length)))
        for index, length in zip(key, shape, strict=True)
        if isinstance(index, slice)
    )
