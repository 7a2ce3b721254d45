"""A small catalog as hookbook 5067661 wrote it (``.npy`` arrays, one Parquet
file per table), to test that an upgrade reads it back exactly.

Generate it with the interpreter that has hookbook 5067661 installed
(``python bench/_envs.py`` creates it and prints its path as ``baseline:``),
into an empty directory::

    $BASELINE_PYTHON tests/data/legacy_catalog.py tests/data/catalog-5067661
    rm tests/data/catalog-5067661/.hookbook.lock

The data is defined here (no hookbook import at module level), so the test
imports this module to know what to expect.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

API_KEY = "legacycatalogkey"
DIRECTORY = Path(__file__).with_name("catalog-5067661")


def arrays() -> dict[str, np.ndarray]:
    """Arrays by path, as they read back (after the appends below)."""
    rng = np.random.default_rng(5067661)
    return {
        "run1/image": rng.standard_normal((4, 3, 2)),
        "run1/counts": np.arange(7, dtype=">i4"),  # big-endian
        "run1/stream": np.arange(12, dtype="<f4").reshape(6, 2),  # written 2 rows, appended 4
        "flags": np.array([True, False, True]),
        "scalar": np.array(2.5),
        "times": np.array(["2024-01-01T00:00", "2024-06-30T12:30"], dtype="M8[s]"),
        "names": np.array(["ab", "cde"], dtype="<U3"),
        "empty": np.zeros((0, 5), dtype="<i8"),
    }


def tables() -> dict[str, dict[str, list]]:
    """Tables by path, as columns (after the appends below)."""
    return {
        "run1/events": {"x": [1, 2, 3, 4], "y": [0.5, 1.5, 2.5, 3.5], "s": ["a", "b", "c", "d"]},
        "summary": {"n": [10, 20]},
    }


METADATA = {
    "run1": {"sample": "Cu", "nested": {"t": [1, 2, 3]}},
    "run1/image": {"units": "counts"},
    "summary": {"final": True},
}
SPECS = {"run1/image": ["detector"], "run1": ["run"]}
CLOSED = {"run1/stream", "run1/events"}


def main(directory: Path) -> None:
    from hookbook.client import from_uri
    from hookbook.server import SimpleServer

    with SimpleServer(directory, api_key=API_KEY) as server, from_uri(server.uri) as client:
        run = client.create_container("run1", metadata=METADATA["run1"], specs=SPECS["run1"])
        for path, array in arrays().items():
            parent = run if path.startswith("run1/") else client
            key = path.rsplit("/", 1)[-1]
            first = array[:2] if path == "run1/stream" else array
            node = parent.write_array(
                first, key=key, metadata=METADATA.get(path), specs=SPECS.get(path)
            )
            if path == "run1/stream":
                node.append(array[2:])
        for path, columns in tables().items():
            parent = run if path.startswith("run1/") else client
            key = path.rsplit("/", 1)[-1]
            half = {k: v[:2] for k, v in columns.items()}
            node = parent.write_table(half, key=key, metadata=METADATA.get(path))
            if len(next(iter(columns.values()))) > 2:
                node.append({k: v[2:] for k, v in columns.items()})
        for path in sorted(CLOSED):
            client[path].close_stream()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DIRECTORY)
