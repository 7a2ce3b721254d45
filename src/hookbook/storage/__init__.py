"""Where node data lives: arrays in zarr, tables as Parquet fragments.

The catalog store decides what is stored and when it becomes visible (the
database is the truth: a node's row names its data's location and the shape
readers see); this package only writes and reads bytes at the locations it
hands out (``data/<hex>.zarr``, ``data/<hex>.parquet``) under one storage
root. :func:`open_storage` picks the backend for a storage location; only a
local directory is implemented, and an object store would be another backend
with the same four operations (:class:`~hookbook.storage.local.LocalBackend`:
``zarr_store``, ``read_bytes``/``write_bytes``, ``remove``, ``entries``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from ..errors import ConfigurationError
from .arrays import ZarrArrays
from .local import LocalBackend
from .tables import ParquetFragments

__all__ = ["Storage", "open_storage"]

#: The folder of every location (and of the files of hookbook before zarr: ``.npy``).
DATA_PREFIX = "data"


class Storage:
    """The data of one server: ``arrays``, ``tables``, and clean-up."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.arrays = ZarrArrays(backend)
        self.tables = ParquetFragments(backend)

    @property
    def location(self) -> str:
        return self.backend.location

    def remove(self, locations: Iterable[str | None]) -> None:
        """Remove data (an array's folder, a fragment); already gone is fine."""
        for location in locations:
            if location:
                self.arrays.forget(location)
                self.backend.remove(location)

    def sweep(self, referenced: Collection[str], older_than: float) -> list[str]:
        """Remove what nothing refers to (left by writes that never committed,
        unfinished ``.partial`` files included) if older than ``older_than``
        (epoch s), so a live writer's new files are safe. Returns the
        locations removed."""
        removed = []
        for location, mtime in self.backend.entries(DATA_PREFIX):
            if location not in referenced and mtime < older_than:
                self.remove([location])
                removed.append(location)
        return removed


def open_storage(location: str | Path) -> Storage:
    """The storage at ``location``: a local directory (a path or ``file://`` URL)."""
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise ConfigurationError(
            f"directory: {text!r} is not a local directory; hookbook stores data only "
            "in a local (or shared) filesystem for now"
        )
    return Storage(LocalBackend(Path(text)))
