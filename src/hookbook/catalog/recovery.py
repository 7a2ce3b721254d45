"""Start-up repair of the data storage, so that it matches the database.

- Arrays stored by hookbook before zarr (``.npy`` files) are converted to
  zarr, each swapped in by one transaction.
- Each array's ``zarr.json`` is made to say the committed shape (an append
  that committed but died before publishing it, or one that failed), and
  chunks past that shape are removed.
- Data no row refers to (new files of writes that never committed) is swept,
  and retired data whose grace period is over is removed.

Files younger than ``storage.sweep_after`` are left alone: on PostgreSQL a
live peer may be writing them right now.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from ..db import fragments, nodes, retired_data
from ..paths import parse_path
from ..protocol import ArrayStructure

if TYPE_CHECKING:
    from .store import CatalogStore

logger = logging.getLogger(__name__)

#: The suffix of arrays written by hookbook before zarr (numpy's own format).
LEGACY_ARRAY_SUFFIX = ".npy"


async def recover(store: CatalogStore) -> None:
    """Bring the storage in line with the database (see the module docstring)."""
    await store.reap()
    await convert_legacy_arrays(store)
    older_than = time.time() - store.settings.sweep_after
    async with store.db.read() as conn:
        arrays = (
            await conn.execute(
                sa.select(nodes.c.path, nodes.c.data_location, nodes.c.structure).where(
                    nodes.c.data_location.is_not(None)
                )
            )
        ).all()
        referenced = {row.data_location for row in arrays}
        referenced |= set((await conn.execute(sa.select(fragments.c.location))).scalars())
        referenced |= set((await conn.execute(sa.select(retired_data.c.location))).scalars())
    for row in arrays:
        shape = ArrayStructure.model_validate(row.structure).shape
        await asyncio.to_thread(
            _repair_array, store, row.path, row.data_location, shape, older_than
        )
    removed = await asyncio.to_thread(store.storage.sweep, referenced, older_than)
    if removed:
        logger.info("removed %d unreferenced data files: %s", len(removed), ", ".join(removed))


def _repair_array(
    store: CatalogStore, path: str, location: str, shape: tuple[int, ...], older_than: float
) -> None:
    arrays = store.storage.arrays
    try:
        if arrays.publish(location, shape):
            logger.info("zarr.json of %s repaired: shape %s", path, list(shape))
        arrays.trim(location, shape, older_than)
    except (OSError, ValueError, KeyError):
        logger.error("could not repair the zarr array of %r at %s", path, location, exc_info=True)


async def convert_legacy_arrays(store: CatalogStore) -> int:
    """Convert ``.npy`` arrays to zarr; returns how many were converted."""
    async with store.db.read() as conn:
        legacy = (
            await conn.execute(
                sa.select(nodes.c.id, nodes.c.path, nodes.c.data_location, nodes.c.structure).where(
                    nodes.c.data_location.like(f"%{LEGACY_ARRAY_SUFFIX}")
                )
            )
        ).all()
    for row in legacy:
        await _convert(store, row)
    if legacy:
        logger.info("converted %d arrays from .npy to zarr", len(legacy))
    return len(legacy)


async def _convert(store: CatalogStore, row: Any) -> None:
    from .store import _retire

    structure = ArrayStructure.model_validate(row.structure)
    raw = await asyncio.to_thread(store.storage.backend.read_bytes, row.data_location)
    array = np.load(io.BytesIO(raw), allow_pickle=False)
    created: list[str] = []
    try:
        location = await store._new_array(structure, created, array)
    except BaseException:
        await asyncio.to_thread(store.storage.remove, created)
        raise
    stored = await store._stored_structure(structure, location, array.shape)
    async with store.db.write() as tx:
        swapped = await tx.execute(
            nodes.update()
            .where(nodes.c.id == row.id, nodes.c.data_location == row.data_location)
            .values(data_location=location, structure=stored)
        )
        if swapped.rowcount:
            await _retire(tx, [row.data_location])
    if not swapped.rowcount:  # another process converted it first
        await asyncio.to_thread(store.storage.remove, [location])
    else:
        logger.debug("converted %s to zarr at %s", "/".join(parse_path(row.path)), location)
