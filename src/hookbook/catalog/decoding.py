"""Request bodies to data: raw array bytes and Arrow IPC tables.

The two entry points every data write goes through, so that checks on what a
body may hold live in one place.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..config import Limits
from ..errors import InvalidDataError
from . import validation


def array_from_bytes(data: bytes, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """The array of ``dtype`` and ``shape`` in ``data`` (raw C-order bytes)."""
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if len(data) != expected:
        raise InvalidDataError(
            f"got {len(data)} bytes; dtype {dtype.str} and shape {shape} need {expected}",
            got=len(data),
            expected=expected,
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def table_from_ipc(data: bytes, limits: Limits) -> Any:
    """Decode an Arrow IPC stream (or file) into a ``pyarrow.Table`` that can be stored
    and read back; anything else is a 4xx that names the problem (see
    :mod:`.validation`): a decoded size over the cap is a 413 before anything is
    decompressed; a body cut short, or buffers that do not hold what they claim
    (offsets, UTF-8), a 422, never half a table; then the table's size as read,
    its column names and its types are checked."""
    import pyarrow as pa

    stream = validation.ipc_stream(data)
    try:
        validation.check_decoded_size(stream, limits)
        table = pa.ipc.open_stream(pa.BufferReader(stream)).read_all()
        table.validate(full=True)
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidDataError(f"body is not a usable Arrow IPC file or stream: {exc}") from None
    validation.check_table(table, limits)
    return table
