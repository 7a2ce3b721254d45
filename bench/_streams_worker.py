"""One target of the streams benchmark, run in that target's own interpreter.

``python bench/_streams_worker.py TARGET ROWS`` starts the target's
in-process server (hookbook's ``SimpleServer`` or Tiled's
``SimpleTiledServer``) on a fresh directory, writes the first row of an
array of up to ROWS rows and the first 100 rows of a table, prints
``READY``, then obeys one command per line on stdin, answering each with one
JSON line (times in seconds: ``t`` wall clock, ``cpu`` this process's CPU)::

    array I      append row I to the array          -> {"t": ...}
    table        append 100 rows to the table        -> {"t": ...}
    read         read the whole array (and check it) -> {"t": ...}
    row I        read row I                          -> {"t": ...}
    close        close the array's stream; disk use  -> {"disk": ..., "bytes": ...}
    quit

so that the driver can interleave the targets call by call: a busy machine
then slows them alike. TARGET is ``hookbook`` (whatever hookbook this
interpreter imports) or ``tiled``. It imports only the target's packages,
numpy, pandas and pyarrow.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROW = 100_000  # float64: one 800 kB row
TABLE_ROWS = 100


def disk_bytes(folder: Path) -> int:
    """Bytes allocated on disk for the files under ``folder`` (what ``du`` counts)."""
    return sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


class Target:
    def __init__(self, name: str, rows: int) -> None:
        self.name = name
        self.directory = Path(tempfile.mkdtemp(prefix=f"bench-streams-{name}-"))
        if name == "tiled":
            from tiled.client import from_uri
            from tiled.server import SimpleTiledServer

            self.server = SimpleTiledServer(self.directory)
            self.client = from_uri(self.server.uri)
        else:
            from hookbook.client import from_uri
            from hookbook.server import SimpleServer

            self.server = SimpleServer(self.directory)
            self.client = from_uri(self.server.uri)
        self.rows = np.random.default_rng(12).standard_normal((rows, ROW))
        self.length = 1
        self.array = self.client.write_array(self.rows[:1], key="a")
        frame = pd.DataFrame(
            {
                "x": np.arange(TABLE_ROWS, dtype="int64"),
                "y": np.linspace(0, 1, TABLE_ROWS),
                "s": [f"r{i}" for i in range(TABLE_ROWS)],
            }
        )
        if name == "tiled":
            # An Arrow table: for a DataFrame the tiled client adds an index
            # column, which Tiled's own table storage then refuses.
            self.frame = pa.Table.from_pandas(frame, preserve_index=False)
            self.table = self.client.create_appendable_table(self.frame.schema, key="t")
            self.table.append_partition(0, self.frame)
        else:
            self.frame = frame
            self.table = self.client.write_table(frame, key="t")

    def append_array(self, i: int) -> None:
        row = self.rows[i : i + 1]
        if self.name == "tiled":
            self.array.patch(row, offset=(i,), extend=True)
        else:
            self.array.append(row)
        self.length = i + 1

    def append_table(self) -> None:
        if self.name == "tiled":
            self.table.append_partition(0, self.frame)
        else:
            self.table.append(self.frame)

    def read(self) -> None:
        got = self.client["a"].read()
        assert np.array_equal(got, self.rows[: self.length]), "the array read back wrong"

    def row(self, i: int) -> None:
        assert np.array_equal(self.client["a"][i], self.rows[i])

    def close(self) -> dict:
        self.client["a"].close_stream()
        data = self.directory / "data"
        return {"disk": disk_bytes(data), "bytes": self.rows[: self.length].nbytes}

    def shutdown(self) -> None:
        (self.client.context.close if self.name == "tiled" else self.client.close)()
        self.server.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def timed(fn, *args) -> dict:
    """Wall clock and this process's CPU time (client and in-process server alike)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return {"t": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def main(name: str, rows: int) -> None:
    target = Target(name, rows)
    print("READY", flush=True)
    try:
        for line in sys.stdin:
            command, *args = line.split()
            if command == "array":
                answer = timed(target.append_array, int(args[0]))
            elif command == "table":
                answer = timed(target.append_table)
            elif command == "read":
                answer = timed(target.read)
            elif command == "row":
                answer = timed(target.row, int(args[0]))
            elif command == "close":
                answer = target.close()
            elif command == "quit":
                break
            else:
                raise ValueError(f"unknown command {command!r}")
            print(json.dumps(answer), flush=True)
    finally:
        target.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
