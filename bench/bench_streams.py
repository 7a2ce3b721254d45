"""Streams benchmark (issue 12): appends that cost what they append.

Side by side in one run, each target in its own interpreter
(``bench/_streams_worker.py``) with its own in-process server and client:

- hookbook as it is in this checkout;
- hookbook at the baseline commit 5067661 (``_envs.baseline_python()``);
- the real Tiled 0.2.20 (``_envs.tiled_python()``).

Each streams ``--array-appends`` appends of one 800 kB row (float64 x 100,000)
to one array (161 MB at the end with the default 200), reads the whole array
(best of 3) and one row (p50 of 20), closes the stream and measures the disk
its data folder uses; then ``--table-appends`` appends of 100 rows to a table.
Targets are ratios within this run (issue 12).

    python bench/bench_streams.py [--quick] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from _common import Row, add_common_arguments, ms, report
from _envs import baseline_python, current_python, tiled_python

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_streams_worker.py"


def run_target(python: Path, target: str, array_appends: int, table_appends: int) -> dict:
    """Run the worker in ``python``; its result (the last ``RESULT`` line)."""
    done = subprocess.run(
        [str(python), str(WORKER), target, str(array_appends), str(table_appends)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=HERE,  # never the repository root: the baseline must not import ./src
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        output = done.stdout[-2000:] + done.stderr[-4000:]
        raise RuntimeError(f"{target} ({python}) failed:\n{output}")
    return json.loads(lines[-1][len("RESULT ") :])


def p50(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--array-appends", type=int, default=None)
    parser.add_argument("--table-appends", type=int, default=None)
    args = parser.parse_args()
    array_appends = args.array_appends or (60 if args.quick else 200)
    table_appends = args.table_appends or (200 if args.quick else 1000)
    window, table_window = (10, 25) if args.quick else (20, 50)

    pythons = {
        "hookbook": current_python(),
        "baseline": baseline_python(),
        "tiled": tiled_python(),
    }
    results = {}
    for name, python in pythons.items():
        print(f"running {name} ({python}) ...", file=sys.stderr, flush=True)
        target = "tiled" if name == "tiled" else "hookbook"
        results[name] = run_target(python, target, array_appends, table_appends)
    ours, base, tiled = results["hookbook"], results["baseline"], results["tiled"]

    def firsts(result: dict, key: str, n: int) -> float:
        return p50(result[key][:n])

    def lasts(result: dict, key: str, n: int) -> float:
        return p50(result[key][-n:])

    rows: list[Row] = []
    w, tw = window, table_window
    growth = lasts(ours, "array_appends", w) / firsts(ours, "array_appends", w)
    base_growth = lasts(base, "array_appends", w) / firsts(base, "array_appends", w)
    tiled_growth = lasts(tiled, "array_appends", w) / firsts(tiled, "array_appends", w)
    rows += [
        Row(
            f"array append, p50 of the first {w}",
            ms(firsts(ours, "array_appends", w)),
            tiled=ms(firsts(tiled, "array_appends", w)),
            note=f"baseline {ms(firsts(base, 'array_appends', w))}",
        ),
        Row(
            f"array append, p50 of the last {w}",
            ms(lasts(ours, "array_appends", w)),
            tiled=ms(lasts(tiled, "array_appends", w)),
            note=f"baseline {ms(lasts(base, 'array_appends', w))}",
        ),
        Row(
            "  growth: last / first",
            f"{growth:.2f}x",
            "<= 1.2x",
            f"{tiled_growth:.2f}x",
            growth <= 1.2,
            note=f"baseline {base_growth:.2f}x",
        ),
    ]
    versus_tiled = lasts(ours, "array_appends", w) / lasts(tiled, "array_appends", w)
    rows.append(
        Row(
            f"  last {w} / Tiled's last {w}",
            f"{versus_tiled:.2f}x",
            "<= 0.5x",
            ok=versus_tiled <= 0.5,
        )
    )
    table_growth = lasts(ours, "table_appends", tw) / firsts(ours, "table_appends", tw)
    rows += [
        Row(
            f"table append of 100 rows, p50 first {tw} / last {tw}",
            f"{ms(firsts(ours, 'table_appends', tw))} / {ms(lasts(ours, 'table_appends', tw))}",
            tiled=f"{ms(firsts(tiled, 'table_appends', tw))} / "
            f"{ms(lasts(tiled, 'table_appends', tw))}",
            note=f"baseline {ms(firsts(base, 'table_appends', tw))} / "
            f"{ms(lasts(base, 'table_appends', tw))}",
        ),
        Row(
            "  growth: last / first",
            f"{table_growth:.2f}x",
            "<= 1.2x",
            f"{lasts(tiled, 'table_appends', tw) / firsts(tiled, 'table_appends', tw):.2f}x",
            table_growth <= 1.2,
            note="baseline "
            f"{lasts(base, 'table_appends', tw) / firsts(base, 'table_appends', tw):.2f}x",
        ),
    ]
    size_mb = ours["array_bytes"] / 1e6
    whole, base_whole = min(ours["read_whole"]), min(base["read_whole"])
    one_row = p50(ours["read_one_row"])
    rows += [
        Row(
            f"read the whole {size_mb:.0f} MB array (best of 3)",
            ms(whole),
            f"<= baseline {ms(base_whole)}",
            ms(min(tiled["read_whole"])),
            whole <= base_whole,
        ),
        Row(
            "read one row, p50 of 20",
            ms(one_row),
            f"<= 0.1 x baseline whole = {ms(0.1 * base_whole)}",
            ms(p50(tiled["read_one_row"])),
            one_row <= 0.1 * base_whole,
            note=f"baseline {ms(p50(base['read_one_row']))}",
        ),
    ]
    disk = ours["array_disk"] / ours["array_bytes"]
    rows.append(
        Row(
            "disk use after close_stream / the data's size",
            f"{disk:.3f}x",
            "<= 1.1x",
            f"{tiled['array_disk'] / tiled['array_bytes']:.3f}x",
            disk <= 1.1,
            note=f"{ours['array_disk'] / 1e6:.1f} MB; baseline "
            f"{base['array_disk'] / base['array_bytes']:.3f}x",
        )
    )
    notes = [
        f"{array_appends} appends of one 800 kB row to one array after a first row; "
        f"{table_appends} appends of 100 rows (int64, float64, string) to a table.",
        "Each target runs in its own interpreter with its own in-process server "
        "(hookbook SimpleServer, Tiled SimpleTiledServer) and client; wall clock per call.",
        f"Versions: hookbook {ours['version']} (this checkout), baseline hookbook 5067661, "
        f"Tiled {tiled['version']}. Disk: allocated blocks under the server's data folder.",
    ]
    report("hookbook streams benchmark (issue 12)", rows, args, notes=notes)


if __name__ == "__main__":
    main()
