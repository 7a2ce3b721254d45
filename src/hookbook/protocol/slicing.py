"""Slices and shapes in query parameters (``slice``, ``expected_shape``, ``block``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import ClientInputError, InvalidRequestError


def parse_int_tuple(text: str | None, *, name: str) -> tuple[int, ...]:
    """Parse a comma-separated list of non-negative integers (``"3"``,
    ``"3,0"``), as in the ``offset``, ``shape`` and ``block`` query
    parameters. Missing or malformed: :class:`~hookbook.errors.InvalidRequestError`
    (422, as Tiled's parameter patterns answer)."""
    if text is None or not text.strip():
        raise InvalidRequestError(f"{name} is required (comma-separated integers)")
    parts = [p.strip() for p in text.split(",")]
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise InvalidRequestError(
            f"{name} must be comma-separated non-negative integers, not {text!r}"
        )
    return tuple(int(p) for p in parts)


def parse_expected_shape(text: str | None) -> tuple[int, ...] | None:
    """Parse ``expected_shape``: ``None`` if absent, ``()`` for ``"scalar"``,
    else comma-separated non-negative integers."""
    if text is None:
        return None
    if text == "scalar":
        return ()
    return parse_int_tuple(text, name="expected_shape")


_INT = re.compile(r"^-?\d+$")


def _slice_piece(piece: str, part: str) -> int | None:
    if piece == "":
        return None
    if not _INT.match(piece):
        raise InvalidRequestError(f"invalid slice part {part!r}: {piece!r} is not an integer")
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
    are made non-negative. Raises :class:`~hookbook.errors.ClientInputError` on garbage, a zero
    step, too many indices, or an index out of range. An empty or absent
    parameter selects everything.
    """
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    body = (text or "").replace(" ", "").strip("()[]")
    if body == ",":
        raise ClientInputError(f"invalid slice {text!r}: empty entry")
    if body.endswith(","):
        body = body[:-1]
    if not body:
        return tuple(slice(None) for _ in shape)
    parts = body.split(",")
    parsed: list[Any] = []
    for part in parts:
        if part == "":
            raise ClientInputError(f"invalid slice {text!r}: empty entry")
        if part == "...":
            if any(p is Ellipsis for p in parsed):
                raise ClientInputError(f"invalid slice {text!r}: more than one '...'")
            parsed.append(Ellipsis)
            continue
        pieces = part.split(":")
        if len(pieces) == 1:
            parsed.append(_slice_piece(pieces[0], part))  # an integer (not empty here)
        elif len(pieces) <= 3:
            start, stop, step = (_slice_piece(p, part) for p in (*pieces, "")[:3])
            if step == 0:
                raise ClientInputError(f"invalid slice part {part!r}: step must not be zero")
            parsed.append(slice(start, stop, step))
        else:
            raise InvalidRequestError(f"invalid slice part {part!r}: too many ':'")
    explicit = [p for p in parsed if p is not Ellipsis]
    if len(explicit) > ndim:
        raise ClientInputError(f"slice {text!r} has {len(explicit)} indices, the array {ndim} axes")
    if Ellipsis in parsed:
        at = parsed.index(Ellipsis)
        fill = [slice(None)] * (ndim - len(explicit))
        parsed = parsed[:at] + fill + parsed[at + 1 :]
    parsed += [slice(None)] * (ndim - len(parsed))
    result: list[slice | int] = []
    for axis, (index, length) in enumerate(zip(parsed, shape, strict=True)):
        if isinstance(index, int):
            if not -length <= index < length:
                raise ClientInputError(
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
            raise ClientInputError(f"cannot express {index!r} as a slice parameter")
        else:
            out.append(str(index.__index__()))
    return ",".join(out)
