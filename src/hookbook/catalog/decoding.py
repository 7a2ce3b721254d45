"""Request bodies to data: raw array bytes and Arrow IPC tables.

The two entry points every data write goes through, so that checks on what a
body may hold live in one place.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ..errors import InvalidDataError


def array_from_bytes(data: bytes, dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.ndarray:
    """The array of ``dtype`` and ``shape`` in ``data`` (raw C-order bytes)."""
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise InvalidDataError(
            f"got {len(data)} bytes; dtype {dtype.str} and shape {shape} need {expected}",
            got=len(data),
            expected=expected,
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def table_from_ipc(data: bytes) -> Any:
    """Decode an Arrow IPC file (or stream) into a ``pyarrow.Table``."""
    import pyarrow as pa

    try:
        return pa.ipc.open_file(pa.BufferReader(data)).read_all()
    except pa.ArrowInvalid:
        try:
            return pa.ipc.open_stream(io.BytesIO(data)).read_all()
        except pa.ArrowInvalid as exc:
            raise InvalidDataError(f"body is not an Arrow IPC file or stream: {exc}") from None
