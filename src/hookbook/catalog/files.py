"""Data files under a server's directory, in standard formats.

Arrays are ``.npy`` files (numpy's own format), tables are Parquet files.
Every write goes to a new file, written under a temporary name and renamed
into place, so a reader never sees a half-written file and the catalog row
can switch to the new file inside its database transaction. The old file is
removed only after that transaction commits; a new file whose transaction
rolls back is removed instead.

Files are not fsynced: they are as durable as the embedded database's
commits (SQLite in WAL mode with ``synchronous=NORMAL``), which survive a
crashed or killed process, not necessarily a power cut.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = "data"


def new_name(suffix: str) -> str:
    """A fresh relative file name under the data folder."""
    return f"{DATA_DIR}/{uuid.uuid4().hex}{suffix}"


def _atomic_write(directory: Path, name: str, write: Any) -> None:
    target = directory / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_array(directory: Path, array: np.ndarray) -> str:
    """Write ``array`` to a new ``.npy`` file; returns its relative name."""
    name = new_name(".npy")
    _atomic_write(directory, name, lambda fh: np.save(fh, array, allow_pickle=False))
    return name


def read_array(directory: Path, name: str) -> np.ndarray:
    """The array in ``name``, memory-mapped (slice it, then copy what you need)."""
    return np.load(directory / name, mmap_mode="r", allow_pickle=False)


def write_table(directory: Path, table: Any) -> str:
    """Write a ``pyarrow.Table`` to a new Parquet file; returns its relative name."""
    import pyarrow.parquet as pq

    name = new_name(".parquet")
    _atomic_write(directory, name, lambda fh: pq.write_table(table, fh))
    return name


def read_table(directory: Path, name: str) -> Any:
    """The ``pyarrow.Table`` in ``name``."""
    import pyarrow.parquet as pq

    return pq.read_table(directory / name)


def remove(directory: Path, names: list[str | None]) -> None:
    """Remove data files, ignoring those already gone."""
    for name in names:
        if name:
            (directory / name).unlink(missing_ok=True)
