"""One target of the streams benchmark, run in that target's own interpreter.

``python bench/_streams_worker.py TARGET ARRAY_APPENDS TABLE_APPENDS`` starts
the target's in-process server (hookbook's ``SimpleServer`` or Tiled's
``SimpleTiledServer``) on a fresh directory, streams into it with the
target's own client, and prints one JSON line of timings. TARGET is
``hookbook`` (whatever hookbook this interpreter imports) or ``tiled``. It
imports only the target's packages, numpy and pandas.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROW = 100_000  # float64: one 800 kB row
TABLE_ROWS = 100


def disk_bytes(folder: Path) -> int:
    """Bytes allocated on disk for the files under ``folder`` (what ``du`` counts)."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main(target: str, array_appends: int, table_appends: int) -> dict:
    directory = Path(tempfile.mkdtemp(prefix=f"bench-streams-{target}-"))
    if target == "tiled":
        from tiled.client import from_uri
        from tiled.server import SimpleTiledServer

        server = SimpleTiledServer(directory)
        client = from_uri(server.uri)
        data_folder = directory / "data"
    else:
        from hookbook.client import from_uri
        from hookbook.server import SimpleServer

        server = SimpleServer(directory)
        client = from_uri(server.uri)
        data_folder = directory / "data"
    rng = np.random.default_rng(12)
    rows = rng.standard_normal((array_appends + 1, ROW))
    try:
        node = client.write_array(rows[:1], key="a")

        def append_row(i: int) -> None:
            if target == "tiled":
                node.patch(rows[i : i + 1], offset=(i,), extend=True)
            else:
                node.append(rows[i : i + 1])

        appends = [timed(append_row, i) for i in range(1, array_appends + 1)]
        fresh = client["a"]
        whole = []
        for _ in range(3):
            start = time.perf_counter()
            got = fresh.read()
            whole.append(time.perf_counter() - start)
        assert got.shape == rows.shape and np.array_equal(got, rows), "the array read back wrong"
        one_row = [timed(fresh.__getitem__, array_appends // 2) for _ in range(20)]
        fresh.close_stream()
        array_disk = disk_bytes(data_folder)

        frame = pd.DataFrame(
            {
                "x": np.arange(TABLE_ROWS, dtype="int64"),
                "y": rng.standard_normal(TABLE_ROWS),
                "s": [f"r{i}" for i in range(TABLE_ROWS)],
            }
        )
        if target == "tiled":
            import pyarrow as pa

            # An Arrow table: for a DataFrame the client adds an index column,
            # which Tiled's own table storage then refuses.
            rows_table = pa.Table.from_pandas(frame, preserve_index=False)
            table = client.create_appendable_table(rows_table.schema, key="t")
            table.append_partition(0, rows_table)

            def append_rows():
                table.append_partition(0, rows_table)
        else:
            table = client.write_table(frame, key="t")

            def append_rows():
                table.append(frame)

        table_times = [timed(append_rows) for _ in range(table_appends)]
        assert len(client["t"].read()) == TABLE_ROWS * (table_appends + 1)
    finally:
        (client.context.close if target == "tiled" else client.close)()
        server.close()
    return {
        "target": target,
        "version": _version(target),
        "array_appends": appends,
        "array_bytes": rows.nbytes,
        "array_disk": array_disk,
        "read_whole": whole,
        "read_one_row": one_row,
        "table_appends": table_times,
        "pid": os.getpid(),
        "median_append": statistics.median(appends),
    }


def _version(target: str) -> str:
    if target == "tiled":
        import tiled

        return tiled.__version__
    import hookbook

    return getattr(hookbook, "__version__", "?")


if __name__ == "__main__":
    result = main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    print("RESULT " + json.dumps(result))
