"""Streams benchmark (issue 12): appends that cost what they append.

Side by side in one run, each target in its own interpreter
(``bench/_streams_worker.py``) with its own in-process server and client:

- hookbook as it is in this checkout;
- hookbook at the baseline commit 5067661 (``_envs.baseline_python()``);
- the real Tiled 0.2.20 (``_envs.tiled_python()``).

The three run at once and take turns call by call (the order rotating each
round), so a busy machine slows them alike: ``--array-appends`` appends of
one 800 kB row (float64 x 100,000) to one array after a first row (161 MB at
the end with the default 200), ``--table-appends`` appends of 100 rows to a
table, 3 reads of the whole array (the best counts), 20 reads of one row,
then ``close_stream`` and the disk its data folder uses. Targets are ratios
within this run (issue 12).

    python bench/bench_streams.py [--quick] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import Row, add_common_arguments, ms, report
from _envs import baseline_python, current_python, tiled_python
from _targets import Target

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_streams_worker.py"


class Worker:
    """One target's worker process, driven one command at a time."""

    def __init__(self, target: Target, rows: int) -> None:
        self.name = target.name
        self.log = open(HERE / f".streams-{self.name}.log", "w")  # noqa: SIM115 - closed in stop()
        # No PYTHONPATH, and not the repository root as the working directory:
        # each target imports its own packages only.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [str(target.python), str(WORKER), target.kind, str(rows)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=HERE,
            env=env,
        )
        if self._line() != "READY":
            raise RuntimeError(f"{self.name} did not start; see {self.log.name}")

    def _line(self) -> str:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{self.name} stopped; see {self.log.name}")
        return line.strip()

    def ask(self, command: str) -> dict[str, Any]:
        self.proc.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self._line())

    def stop(self) -> None:
        try:
            self.proc.stdin.write("quit\n")  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.log.close()


def interleaved(workers: list[Worker], commands: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Send each command to every worker, rotating who goes first each round."""
    answers: dict[str, list[dict[str, Any]]] = {w.name: [] for w in workers}
    for n, command in enumerate(commands):
        turn = n % len(workers)
        for worker in workers[turn:] + workers[:turn]:
            answers[worker.name].append(worker.ask(command))
    return answers


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

    targets = [
        Target("hookbook", "hookbook now", "hookbook", current_python()),
        Target("baseline", "hookbook 5067661", "hookbook", baseline_python()),
        Target("tiled", "Tiled 0.2.20", "tiled", tiled_python()),
    ]
    workers: list[Worker] = []
    try:
        for target in targets:
            print(f"starting {target.label} ({target.python}) ...", file=sys.stderr, flush=True)
            workers.append(Worker(target, array_appends + 1))
        print("appending to the arrays ...", file=sys.stderr, flush=True)
        steps = {
            "array_appends": interleaved(
                workers, [f"array {i}" for i in range(1, array_appends + 1)]
            ),
            "read_whole": interleaved(workers, ["read"] * 3),
            "read_one_row": interleaved(workers, [f"row {array_appends // 2}"] * 20),
            "closed": interleaved(workers, ["close"]),
        }
        print("appending to the tables ...", file=sys.stderr, flush=True)
        steps["table_appends"] = interleaved(workers, ["table"] * table_appends)
    finally:
        for worker in workers:
            worker.stop()
    results = {
        name: {
            key: [a["t"] for a in answers[name]]
            for key, answers in steps.items()
            if key != "closed"
        }
        | {
            f"{key}_cpu": [a["cpu"] for a in answers[name]]
            for key, answers in steps.items()
            if key != "closed"
        }
        | {"array_disk": steps["closed"][name][0]["disk"]}
        | {"array_bytes": steps["closed"][name][0]["bytes"]}
        for name in (t.name for t in targets)
    }
    ours, base, tiled = results["hookbook"], results["baseline"], results["tiled"]

    def firsts(result: dict, key: str, n: int) -> float:
        return p50(result[key][:n])

    def lasts(result: dict, key: str, n: int) -> float:
        return p50(result[key][-n:])

    def growth(result: dict, key: str, n: int) -> float:
        """p50 of the last ``n`` over p50 of the first ``n``."""
        return lasts(result, key, n) / firsts(result, key, n)

    rows: list[Row] = []
    w, tw = window, table_window
    array_growth = growth(ours, "array_appends", w)
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
            f"{array_growth:.2f}x",
            "<= 1.2x",
            f"{growth(tiled, 'array_appends', w):.2f}x",
            array_growth <= 1.2,
            note=f"baseline {growth(base, 'array_appends', w):.2f}x",
        ),
    ]
    cpu_growth = growth(ours, "array_appends_cpu", w)
    rows.append(
        Row(
            "  growth in CPU per append (client and server)",
            f"{cpu_growth:.2f}x",
            "<= 1.2x",
            f"{growth(tiled, 'array_appends_cpu', w):.2f}x",
            cpu_growth <= 1.2,
            note=f"{ms(firsts(ours, 'array_appends_cpu', w))} -> "
            f"{ms(lasts(ours, 'array_appends_cpu', w))}; baseline "
            f"{growth(base, 'array_appends_cpu', w):.2f}x",
        )
    )
    versus_tiled = lasts(ours, "array_appends", w) / lasts(tiled, "array_appends", w)
    rows.append(
        Row(
            f"  last {w} / Tiled's last {w}",
            f"{versus_tiled:.2f}x",
            "<= 0.5x",
            ok=versus_tiled <= 0.5,
        )
    )
    table_growth = growth(ours, "table_appends", tw)
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
            f"{growth(tiled, 'table_appends', tw):.2f}x",
            table_growth <= 1.2,
            note=f"baseline {growth(base, 'table_appends', tw):.2f}x",
        ),
    ]
    table_cpu = growth(ours, "table_appends_cpu", tw)
    rows.append(
        Row(
            "  growth in CPU per append (client and server)",
            f"{table_cpu:.2f}x",
            "<= 1.2x",
            f"{growth(tiled, 'table_appends_cpu', tw):.2f}x",
            table_cpu <= 1.2,
            note=f"{ms(firsts(ours, 'table_appends_cpu', tw))} -> "
            f"{ms(lasts(ours, 'table_appends_cpu', tw))}; baseline "
            f"{growth(base, 'table_appends_cpu', tw):.2f}x",
        )
    )
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
            "  CPU per whole read (client and server), best of 3",
            ms(min(ours["read_whole_cpu"])),
            f"<= baseline {ms(min(base['read_whole_cpu']))}",
            ms(min(tiled["read_whole_cpu"])),
            min(ours["read_whole_cpu"]) <= min(base["read_whole_cpu"]),
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
        "(hookbook SimpleServer, Tiled SimpleTiledServer) and client; the three take "
        "turns call by call; wall clock per call, and the CPU time of the target's "
        "process (client and in-process server) per call, which a busy machine moves "
        "much less.",
        "hookbook: this checkout; baseline: hookbook 5067661; Tiled 0.2.20. "
        "Disk: allocated blocks under the server's data folder.",
    ]
    report("hookbook streams benchmark (issue 12)", rows, args, notes=notes)


if __name__ == "__main__":
    main()
