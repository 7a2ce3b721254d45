"""What a node may hold: limits on structures and data, checked before anything is built.

Every check here is cheap and runs before the work it guards: the byte count of an
array is worked out from its shape (with Python's unbounded integers, so it cannot
overflow) before any buffer exists; a structure's size is measured before it is
stored. A structure that passes can always be stored, listed and read back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from ..config import Limits
from ..errors import InvalidDataError, PayloadTooLargeError


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
    size = len(json.dumps(structure))
    if size > limits.max_structure_bytes:
        raise PayloadTooLargeError(
            f"the {family} structure is {size} bytes as JSON; "
            f"the limit is {limits.max_structure_bytes}",
            size=size,
            limit=limits.max_structure_bytes,
        )
