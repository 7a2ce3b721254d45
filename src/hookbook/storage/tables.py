"""Tables as Parquet fragments: one file per write or append, merged on compaction.

Which fragments make up which partition, in which order, is the database's
business (the catalog's fragments table); here a fragment is a file at a
location, written whole before anything refers to it.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from typing import Any

from .local import LocalBackend


def new_location() -> str:
    return f"data/{uuid.uuid4().hex}.parquet"


class ParquetFragments:
    """Write and read Parquet fragments at locations of one backend."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend

    def write(self, table: Any) -> str:
        """Write a ``pyarrow.Table`` as a new fragment; returns its location."""
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(table, sink)
        location = new_location()
        self.backend.write_bytes(location, sink.getbuffer())
        return location

    def read(self, locations: Sequence[str], schema: Any) -> Any:
        """The fragments at ``locations``, in order, as one ``pyarrow.Table`` of
        ``schema`` (whose metadata, pandas' included, the result carries)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not locations:
            return schema.empty_table()
        tables = [
            pq.read_table(pa.BufferReader(self.backend.read_bytes(location))).cast(schema)
            for location in locations
        ]
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def merge(self, locations: Sequence[str], schema: Any) -> str:
        """One new fragment holding the fragments at ``locations``, in order."""
        return self.write(self.read(locations, schema).combine_chunks())
