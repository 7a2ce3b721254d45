"""Query parameters: listing (``fields``, ``sort``), array writes, deletes."""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from ..errors import ClientInputError, InvalidDataError, InvalidRequestError, UnsupportedError
from .slicing import parse_int_tuple

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


def parse_fields(values: Sequence[str] | None) -> frozenset[str] | None:
    """Parse the repeated ``fields=`` query parameter.

    ``None`` (absent) means all fields. ``{""}`` means keys only (the client
    sends ``fields=`` when it iterates keys); ``{"count"}`` means only
    ``meta.count`` (``len()``). Unknown names raise
    :class:`~hookbook.errors.InvalidRequestError` (422, as Tiled).
    """
    if values is None:
        return None
    unknown = [v for v in values if v not in ENTRY_FIELDS]
    if unknown:
        raise InvalidRequestError(
            f"unknown fields {unknown}; known: {sorted(f for f in ENTRY_FIELDS if f)}"
        )
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
            raise ClientInputError(f"duplicate sorting key {key!r}")
        out[key] = direction
    keys = list(out)
    if "" in out and keys[-1] != "":
        raise ClientInputError("the default order (empty key) must be the last sort item")
    return list(out.items())


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

        Raises :class:`~hookbook.errors.InvalidDataError` (422) when the
        data's shape does not have the array's number of axes, when ``offset`` has more
        entries than axes, or when ``persist`` is false. A write that does
        not fit without ``extend`` is reported in ``plan.conflict`` (answer
        409 with it as the ``detail``; it says "Use ?extend=true", which the
        client turns into "Pass keyword argument extend=true").
        """
        current = tuple(current_shape)
        if not self.persist:
            raise UnsupportedError("persist=false is not supported by hookbook")
        if len(self.shape) != len(current):
            raise InvalidDataError(
                f"the data has {len(self.shape)} axes (shape {list(self.shape)}), "
                f"the array {len(current)} (shape {list(current)})"
            )
        if len(self.offset) > len(current):
            raise InvalidDataError(
                f"offset {list(self.offset)} has more entries than the array has axes"
            )
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
