"""How the chunk size and codec of hookbook's zarr arrays were chosen (issue 12).

For each candidate (target chunk bytes x codec), with zarr directly (no HTTP):
appends of one row to a growing array (p50 of all), a whole read, a one-row
read, and the disk used, for two kinds of stream: 800 kB rows (a detector
frame, random float64: incompressible) and 8-byte rows (a 1-D time series of
slowly varying float64 values). The winner is what
``hookbook/storage/arrays.py`` uses; ``bench/README.md`` records a run.

    python bench/bench_zarr_layout.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from _common import console
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import LocalStore

CODECS = {
    "none": None,
    "zstd-1": ZstdCodec(level=1),
    "blosc-lz4-shuffle": BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
    "blosc-lz4-noshuffle": BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle"),
}
TARGETS = {"256 KiB": 1 << 18, "1 MiB": 1 << 20, "4 MiB": 1 << 22}


def measure(rows: np.ndarray, per_append: int, target: int, codec, folder: Path) -> dict:
    row_bytes = rows[0].nbytes
    chunk = (max(1, target // row_bytes), *rows.shape[1:])
    store = LocalStore(folder)
    array = zarr.create_array(
        store,
        shape=(0, *rows.shape[1:]),
        chunks=chunk,
        dtype=rows.dtype,
        compressors=codec,
        fill_value=None,
        config={"write_empty_chunks": True},
    )
    metadata = array.metadata
    appends = []
    for start in range(0, len(rows), per_append):
        stop = start + per_append
        t = time.perf_counter()
        grown = zarr.Array(
            zarr.core.array.AsyncArray(
                metadata.update_shape((stop, *rows.shape[1:])), array.store_path
            )
        )
        grown[start:stop] = rows[start:stop]
        appends.append(time.perf_counter() - t)
    whole = math.inf
    for _ in range(3):
        t = time.perf_counter()
        back = grown[:]
        whole = min(whole, time.perf_counter() - t)
    assert np.array_equal(back, rows)
    t = time.perf_counter()
    grown[len(rows) // 2]
    one = time.perf_counter() - t
    disk = sum(p.lstat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())
    return {
        "append": statistics.median(appends),
        "whole": whole,
        "one": one,
        "disk": disk / rows.nbytes,
        "chunk_rows": chunk[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_frames = 40 if args.quick else 200
    streams = {
        "800 kB rows (random float64)": (rng.standard_normal((n_frames, 100_000)), 1),
        "8-byte rows (smooth float64)": (
            np.cumsum(rng.standard_normal(20_000 if args.quick else 200_000)) * 1e-3,
            100,  # appends of 100 values
        ),
    }
    for title, (rows, per_append) in streams.items():
        console.print(
            f"\n[bold]{title}[/bold]: {rows.nbytes / 1e6:.1f} MB, appends of {per_append}"
        )
        console.print(
            f"{'chunk target':>12} {'codec':>18} {'rows/chunk':>10} {'append p50':>11} "
            f"{'whole read':>11} {'one row':>9} {'disk':>7}"
        )
        for target_name, target in TARGETS.items():
            for codec_name, codec in CODECS.items():
                folder = Path(tempfile.mkdtemp(prefix="zarr-layout-"))
                try:
                    r = measure(rows, per_append, target, codec, folder)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
                console.print(
                    f"{target_name:>12} {codec_name:>18} {r['chunk_rows']:>10} "
                    f"{r['append'] * 1e3:>8.2f} ms {r['whole'] * 1e3:>8.0f} ms "
                    f"{r['one'] * 1e3:>6.2f} ms {r['disk']:>6.3f}x"
                )


if __name__ == "__main__":
    main()
