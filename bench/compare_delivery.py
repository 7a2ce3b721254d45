"""Side-by-side delivery benchmark (issue 10): Tiled 0.2.20, hookbook at the baseline, hookbook now.

    python bench/compare_delivery.py                 # 2 rounds, full sizes: ~45 min on 2 busy cores
    python bench/compare_delivery.py --quick         # 1 round, small sizes: 5-8 min
    python bench/compare_delivery.py --only e2e writes --rounds 3

The same workloads run against three targets, each in its own interpreter
(``_envs.py`` creates the venvs on first use): the real Tiled 0.2.20
(``tiled[server]==0.2.20``), hookbook at commit 5067661 and hookbook as it is
in this checkout (this interpreter). Each workload runs in a fresh driver
process (``_delivery_driver.py``) per target, the targets one after the other
for each workload; the order of the targets alternates between rounds, and
every round is reported, with each target judged against the others *in
that round* (the machine is shared: only ratios within a round compare).

Workloads (``--only``): ``e2e``, ``writes`` (all three targets), ``backlog``
and ``load`` (hookbook only: Tiled has no durable backlog, and its
deliveries are asyncio tasks of the writing request). What each measures,
and how, is printed under the tables and written in ``bench/README.md``.
The tables go to the terminal and, as Markdown, to
``bench/results/compare-delivery-<time>.md`` (or ``--markdown PATH``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _envs  # noqa: E402
from _common import command_line, console, machine, revision  # noqa: E402
from _targets import DriverError, Target, run_driver  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

DRIVER = HERE / "_delivery_driver.py"
WORKLOADS = ("e2e", "writes", "backlog", "load")
HOOKBOOK_ONLY = ("backlog", "load")
NO_BACKLOG = "n/a: no durable backlog"


# ---- targets ------------------------------------------------------------------------


def current_label() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False
        ).stdout.strip()

    dirty = "+changes" if git("status", "--porcelain", "--", "src") else ""
    return f"hookbook {git('rev-parse', '--short', 'HEAD')}{dirty} (current)"


def make_targets(names: list[str]) -> list[Target]:
    """The targets asked for, their venvs created on first use."""
    makers: dict[str, Callable[[], Target]] = {
        "tiled": lambda: Target("tiled", "Tiled 0.2.20", "tiled", _envs.tiled_python()),
        "baseline": lambda: Target(
            "baseline", f"hookbook {_envs.BASELINE} (baseline)", "hookbook", _envs.baseline_python()
        ),
        "current": lambda: Target("current", current_label(), "hookbook", _envs.current_python()),
    }
    return [makers[name]() for name in names]


# ---- running the rounds ---------------------------------------------------------------


Results = dict[str, dict[str, dict[str, Any]]]  # workload -> target name -> result


def spec_for(workload: str, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "e2e": {"writes": args.e2e_writes, "warmup": 5},
        "writes": {"writes": args.writes, "warmup": 5},
        "backlog": {"events": args.events},
        "load": {"seconds": args.load_seconds, "writers": args.writers},
    }[workload] | {"workload": workload}


def run_round(r: int, targets: list[Target], args: argparse.Namespace) -> Results:
    order = targets if r % 2 == 0 else targets[::-1]
    results: Results = {}
    for workload in args.only:
        results[workload] = {}
        for target in order:
            if target.kind == "tiled" and workload in HOOKBOOK_ONLY:
                continue
            console.print(
                f"[bold]round {r + 1}[/bold] {workload}: {target.label} "
                f"(load {os.getloadavg()[0]:.1f})"
            )
            started = time.monotonic()
            try:
                result = run_driver(target, DRIVER, spec_for(workload, args), timeout=args.timeout)
            except DriverError as exc:
                console.print(f"[red]  failed: {escape(str(exc))}[/red]")
                result = {"error": str(exc).splitlines()[0]}
            console.print(f"[dim]  {time.monotonic() - started:.0f} s[/dim]")
            results[workload][target.name] = result
    return results


# ---- formatting ---------------------------------------------------------------------------


def ms(seconds: float) -> str:
    """A duration: in ms below a second (2 decimals below 10 ms), else in s."""
    if math.isnan(seconds):
        return "-"
    if abs(seconds) >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.2f} ms" if abs(seconds) < 0.01 else f"{seconds * 1000:.1f} ms"


def wire(result: dict[str, Any]) -> str:
    w = result["wire"]
    return f"{ms(w['p50'])} / CPU {ms(w['cpu'])}"


@dataclass
class Line:
    """One row: a value per target, the target, and a verdict per hookbook target."""

    measure: str
    values: dict[str, str] = field(default_factory=dict)
    target: str = ""
    verdicts: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, str] = field(default_factory=dict)
    judged: dict[str, bool] = field(default_factory=dict)


def _safely(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or the error as a cell's text: a table is never lost to one result."""
    try:
        return fn(*args)
    except Exception as exc:
        return f"error: {type(exc).__name__} {exc}"[:60]


class RoundTable:
    """Builds one round's rows from the drivers' results."""

    def __init__(self, results: Results, targets: list[Target]) -> None:
        self.results = results
        self.targets = targets
        self.lines: list[Line] = []

    def get(self, workload: str, target: str) -> dict[str, Any] | None:
        result = self.results.get(workload, {}).get(target)
        return None if result is None or "error" in result else result

    def row(
        self,
        workload: str,
        measure: str,
        value: Callable[[dict[str, Any]], str],
        *,
        target: str = "",
        judge: Callable[[str, dict[str, Any]], tuple[float, bool] | None] | None = None,
        ratio_format: str = "{:.2f}x",
        tiled_text: str | None = None,
    ) -> None:
        if workload not in self.results:
            return
        line = Line(measure, target=target)
        for t in self.targets:
            result = self.get(workload, t.name)
            if t.kind == "tiled" and tiled_text is not None:
                line.values[t.name] = tiled_text
            elif result is None:
                failed = t.name in self.results[workload]
                line.values[t.name] = "failed" if failed else ""
            else:
                line.values[t.name] = _safely(value, result)
            if judge is not None and t.kind == "hookbook" and result is not None:
                judged = _safely(judge, t.name, result)
                if isinstance(judged, str):  # an error, shown rather than raised
                    line.verdicts[t.name] = judged
                elif judged is None:
                    line.verdicts[t.name] = "n/a"
                else:
                    number, ok = judged
                    line.numbers[t.name] = ratio_format.format(number)
                    line.verdicts[t.name] = f"{line.numbers[t.name]} {'met' if ok else 'MISSED'}"
                    line.judged[t.name] = ok
        self.lines.append(line)

    def ratio_to_tiled(
        self, workload: str, pick: Callable[[dict[str, Any]], float], limit: float, *, most: bool
    ) -> Callable[[str, dict[str, Any]], tuple[float, bool] | None]:
        """A judge: ``pick(hookbook) / pick(Tiled)`` at most (or at least) ``limit``."""

        def judge(_name: str, result: dict[str, Any]) -> tuple[float, bool] | None:
            tiled = self.get(workload, "tiled")
            if tiled is None:
                return None
            ratio = pick(result) / pick(tiled)
            return ratio, ratio <= limit if most else ratio >= limit

        return judge

    def build(self, args: argparse.Namespace) -> list[Line]:
        self._e2e()
        self._writes(args)
        self._backlog(args)
        self._load(args)
        self._duplicates()
        return self.lines

    def _e2e(self) -> None:
        w = "e2e"
        self.row(w, "wire bound (receiver in-process): httpx POST p50 / CPU", wire)
        self.row(
            w,
            "end-to-end p50, 1 webhook",
            lambda r: f"{ms(r['hooks1']['e2e']['p50'])} (p95 {ms(r['hooks1']['e2e']['p95'])})",
            target="<= 0.5x Tiled",
            judge=self.ratio_to_tiled(w, lambda r: r["hooks1"]["e2e"]["p50"], 0.5, most=True),
        )

        def lag_judge(_name: str, r: dict[str, Any]) -> tuple[float, bool]:
            ratio = r["hooks1"]["lag"]["p50"] / r["wire"]["p50"]
            return ratio, ratio <= 5

        self.row(
            w,
            "notify lag p50, 1 webhook",
            lambda r: f"{ms(r['hooks1']['lag']['p50'])} ({r['hooks1']['early']:.0%} before return)",
            target="<= 5x wire p50",
            judge=lag_judge,
            ratio_format="{:.1f}x wire",
        )
        self.row(
            w,
            "end-to-end p50, 10 webhooks (every POST)",
            lambda r: f"{ms(r['hooks10']['e2e']['p50'])} (p95 {ms(r['hooks10']['e2e']['p95'])})",
            target="<= 1.0x Tiled",
            judge=self.ratio_to_tiled(w, lambda r: r["hooks10"]["e2e"]["p50"], 1.0, most=True),
        )
        self.row(
            w,
            "  the last of the 10 POSTs, p50",
            lambda r: ms(r["hooks10"]["last"]["p50"]),
        )

    def _writes(self, args: argparse.Namespace) -> None:
        w = "writes"
        for placement, where in (("thread", "in-process"), ("process", "in a child process")):
            self.row(
                w,
                f"wire bound (receiver {where}): httpx POST p50 / CPU",
                lambda r, p=placement: wire(r[p]),
            )
            self.row(
                w,
                f"write_array p50, 0 webhooks (receiver {where})",
                lambda r, p=placement: f"{ms(r[p]['none']['p50'])} (CPU {ms(r[p]['none']['cpu'])})",
            )
            self.row(
                w,
                f"write_array p50, 10 webhooks (receiver {where})",
                lambda r, p=placement: (
                    f"{ms(r[p]['hooks10']['p50'])} "
                    f"(CPU {ms(r[p]['hooks10']['cpu'])} with its deliveries)"
                ),
            )

            def slowdown(r: dict[str, Any], p: str = placement) -> float:
                return r[p]["hooks10"]["p50"] / r[p]["none"]["p50"]

            self.row(
                w,
                f"  slow-down 10 / 0 webhooks (receiver {where})",
                lambda r, f=slowdown: f"{f(r):.2f}x",
                target="<= 2x" if placement == "process" else "",
                judge=(lambda _n, r, f=slowdown: (f(r), f(r) <= 2))
                if placement == "process"
                else None,
            )
            self.row(
                w,
                f"deliveries/s, {args.writes} writes x 10 webhooks (receiver {where})",
                lambda r, p=placement: f"{r[p]['rate']:.0f} /s",
                target=">= 5x Tiled" if placement == "thread" else "",
                judge=self.ratio_to_tiled(w, lambda r: r["thread"]["rate"], 5, most=False)
                if placement == "thread"
                else None,
            )

    def _backlog(self, args: argparse.Namespace) -> None:
        w = "backlog"
        self.row(
            w,
            "wire bound (receiver in a child process): httpx POST p50 / CPU",
            wire,
            tiled_text="",
        )
        self.row(
            w,
            f"backlog drain, {args.events:,} events x 10 webhooks: deliveries/s",
            lambda r: f"{r['rate']:.0f} /s",
            tiled_text=NO_BACKLOG,
        )
        self.row(
            w,
            "  plain httpx, the same requests at the same concurrency",
            lambda r: f"{r['replay_rate']:.0f} /s ({r['concurrency']} at a time)",
            tiled_text="",
        )
        self.row(
            w,
            "  drain / plain httpx",
            lambda r: f"{r['rate'] / r['replay_rate']:.0%}",
            target=">= 70%",
            judge=lambda _n, r: (r["rate"] / r["replay_rate"], r["rate"] / r["replay_rate"] >= 0.7),
            ratio_format="{:.0%}",
            tiled_text="",
        )
        self.row(
            w,
            "  CPU per delivery: serve process / plain httpx",
            lambda r: f"{ms(r['engine_cpu'])} / {ms(r['replay_cpu'])}",
            tiled_text="",
        )
        self.row(
            w,
            "engine CPU per delivery (the difference)",
            lambda r: ms(r["engine_cpu"] - r["replay_cpu"]),
            target="<= 1 ms",
            judge=lambda _n, r: (
                (r["engine_cpu"] - r["replay_cpu"]) * 1000,
                r["engine_cpu"] - r["replay_cpu"] <= 0.001,
            ),
            ratio_format="{:.2f} ms",
            tiled_text=NO_BACKLOG,
        )

    def _load(self, args: argparse.Namespace) -> None:
        w = "load"
        self.row(
            w,
            "wire bound (receiver in a child process): httpx POST p50 / CPU",
            wire,
            tiled_text="",
        )
        title = f"load, {args.writers} writers x {args.load_seconds:g} s"
        self.row(
            w,
            f"{title}: ack -> POST read p50 / p95 / max",
            lambda r: " / ".join(ms(r["ack_to_delivery"][k]) for k in ("p50", "p95", "max")),
            target="p95 <= 1 s",
            judge=lambda _n, r: (r["ack_to_delivery"]["p95"], r["ack_to_delivery"]["p95"] <= 1),
            ratio_format="{:.2f} s",
            tiled_text="",
        )
        self.row(
            w,
            "  outbox drain after the load stopped",
            lambda r: f"{r['drain']:.2f} s",
            target="<= 2 s",
            judge=lambda _n, r: (r["drain"], r["drain"] <= 2),
            ratio_format="{:.2f} s",
            tiled_text="",
        )

        def writes_judge(name: str, r: dict[str, Any]) -> tuple[float, bool] | None:
            base = self.get(w, "baseline")
            if name == "baseline" or base is None:
                return None
            ratio = r["writes_per_s"] / base["writes_per_s"]
            return ratio, ratio >= 0.9

        self.row(
            w,
            "  writes/s",
            lambda r: f"{r['writes_per_s']:.1f} /s ({r['writes']:,} writes, {r['errors']} errors)",
            target=">= 0.9x baseline",
            judge=writes_judge,
            tiled_text="",
        )
        self.row(
            w,
            "  CPU share: serve process / writers",
            lambda r: f"{r['serve_cpu_share']:.0%} / {r['writers_cpu_share']:.0%}",
            tiled_text="",
        )

    def _duplicates(self) -> None:
        def count(target: str) -> str:
            total, seen = 0, False
            for workload in self.results:
                r = self.get(workload, target)
                if r is None:
                    continue
                for part in (r, *(v for v in r.values() if isinstance(v, dict))):
                    if "duplicates" in part:
                        total += part["duplicates"]
                        seen = True
            return str(total) if seen else ""

        line = Line("duplicate deliveries, all workloads", target="0")
        for t in self.targets:
            line.values[t.name] = count(t.name)
            if t.kind == "hookbook" and line.values[t.name]:
                ok = line.values[t.name] == "0"
                line.verdicts[t.name] = "met" if ok else "MISSED"
                line.numbers[t.name] = line.values[t.name]
                line.judged[t.name] = ok
        self.lines.append(line)


# ---- output -----------------------------------------------------------------------------


def heading(title: str) -> list[str]:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    baseline = _envs.resolve_commit()[:12]
    return [
        title,
        f"$ {command_line()}",
        f"{stamp}; baseline {baseline}; current {revision()}; {machine()}",
    ]


def columns(targets: list[Target]) -> list[str]:
    names = [t.label for t in targets]
    judged = [f"verdict {t.name}" for t in targets if t.kind == "hookbook"]
    return ["measure", *names, "target", *judged]


def cells(line: Line, targets: list[Target]) -> list[str]:
    return [
        line.measure,
        *(line.values.get(t.name, "") for t in targets),
        line.target,
        *(line.verdicts.get(t.name, "") for t in targets if t.kind == "hookbook"),
    ]


VERDICT = re.compile(r"\b(met|MISSED)\b")


def _colour(match: re.Match[str]) -> str:
    style = "green" if match.group(1) == "met" else "bold red"
    return f"[{style}]{match.group(1)}[/{style}]"


def show(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> str:
    """Print a table (rich) and return it as Markdown."""
    lines = heading(title)
    table = Table(title=escape("\n".join(lines)), title_justify="left")
    for i, name in enumerate(header):
        table.add_column(escape(name), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(VERDICT.sub(_colour, escape(c)) for c in row))
    console.print(table)
    for note in notes:
        console.print(f"  [dim]{escape(note)}[/dim]")
    console.print()
    md = [f"### {lines[0]}", "", f"`{lines[1][2:]}`", "", lines[2], ""]
    md.append("| " + " | ".join(header) + " |")
    md.append("| --- | " + " | ".join("---:" for _ in header[1:]) + " |")
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    md.append("")
    md += [f"- {note}" for note in notes]
    return "\n".join(md) + "\n\n"


def round_notes(results: Results, targets: list[Target]) -> list[str]:
    notes = []
    for workload, by_target in results.items():
        parts = []
        for t in targets:
            r = by_target.get(t.name)
            if r is None:
                continue
            if "error" in r:
                parts.append(f"{t.name} FAILED ({r['error']})")
            else:
                la = r["load_average"]
                parts.append(f"{t.name} {r['seconds']:.0f} s, load {la[0]:.1f}->{la[1]:.1f}")
        notes.append(f"{workload}: " + "; ".join(parts))
    return notes


HOW = [
    "Every target: a harness server in the driver's process (Tiled: SimpleTiledServer("
    "enable_webhooks=True); hookbook: SimpleServer(enable_webhooks=True)), written to with its "
    "own client's write_array (3 float64, a new key each), webhooks registered on the root with "
    "a signing secret; receiver: bench/fast_receiver.py's asyncio server (keep-alive, "
    "TCP_NODELAY, answers 200 at once), timestamps with time.time() once a request is read.",
    "wire bound: 200 sequential POSTs of a delivery-sized JSON body by one plain "
    "httpx.AsyncClient (keep-alive) to the same receiver, in the same driver process, just "
    "before the workload: p50, and the process CPU per POST (with an in-process receiver, its "
    "CPU too).",
    "end-to-end: time.time() at the write_array call -> receiver read the POST; notify lag: "
    "write_array returned -> receiver read it; sequential writes, each waiting for its "
    "deliveries (1 or 10) before the next; receiver in-process (as in issue 10's table).",
    "writes: a fresh server per receiver placement; write_array p50 of N writes with no "
    "webhook, then of N writes with 10 webhooks issued back to back (deliveries run meanwhile); "
    "deliveries/s = 10 N / (first write's start -> last POST read); CPU = driver process CPU "
    "per write, until its deliveries were read.",
    "backlog (hookbook): the events are written through `hookbook serve` with run_worker: false "
    "(SQLite), then a `hookbook serve` with the worker drains them; deliveries/s = (n - 1) / "
    "(first -> last POST read); plain httpx: the same requests (bodies and signed headers) "
    "POSTed again by a fresh process with httpx.AsyncClient, as many at a time as the engine "
    "had connections open to the receiver, rated the same way; engine CPU per delivery = serve "
    "process CPU (/proc, from the first POST read until no delivery is pending) per delivery, "
    "minus the replay process's CPU per request.",
    "load (hookbook): one `hookbook serve` (SQLite, worker on, 2 webhooks), N threads in the "
    "driver each writing with its own client for S s; acknowledgement = write_array returned; "
    "the outbox drain = last POST read - last write returned (0 if already caught up).",
    "Tiled 0.2.20 announces an entry when its metadata is created (the client's POST "
    "/metadata), before write_array uploads the data: its notify lag is negative. Its "
    "deliveries are asyncio tasks of the server process (a restart loses them): no backlog "
    "and no load rows.",
    "Ratios and verdicts compare targets within the same round only. Memory with a "
    "100,000-delivery backlog (< 50 MB) is not measured here: `python bench/bench_webhooks.py "
    "--only memory` (in-process) and `python bench/bench_scale.py --only backlog` (serve "
    "processes).",
]


def summary(rounds: list[list[Line]], targets: list[Target]) -> tuple[list[str], list[list[str]]]:
    """Per judged measure and hookbook target: the verdict of every round."""
    judged_targets = [t for t in targets if t.kind == "hookbook"]
    header = ["measure", "target", *(f"{t.label}: every round" for t in judged_targets)]
    rows = []
    for i, line in enumerate(rounds[0]):
        if not line.target:
            continue
        row = [line.measure, line.target]
        for t in judged_targets:
            numbers = [lines[i].numbers.get(t.name, "n/a") for lines in rounds]
            oks = [lines[i].judged.get(t.name) for lines in rounds]
            if all(ok is True for ok in oks):
                verdict = "met in every round"
            elif any(ok is False for ok in oks):
                missed = [str(r + 1) for r, ok in enumerate(oks) if ok is False]
                verdict = f"MISSED in round {', '.join(missed)}"
            else:
                verdict = "n/a"
            row.append(f"{verdict} ({'; '.join(numbers)})")
        rows.append(row)
    return header, rows


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        vars(args).update(saved["sizes"])
        targets = [
            Target(t["name"], t["label"], t["kind"], Path(t["python"])) for t in saved["targets"]
        ]
        rounds: list[Results] = saved["rounds"]
    else:
        targets = make_targets(args.targets)
        rounds = []
    markdown = Path(args.markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    raw = markdown.with_suffix(".json")
    out = [f"## Side-by-side delivery benchmark (issue 10)\n\n`{command_line()}`\n\n"]
    all_lines = []
    for r in range(args.rounds):
        if not args.from_json:
            rounds.append(run_round(r, targets, args))
            raw.write_text(json.dumps(saved_run(args, targets, rounds)))
        results = rounds[r]
        lines = RoundTable(results, targets).build(args)
        all_lines.append(lines)
        out.append(
            show(
                f"Side-by-side delivery, round {r + 1} of {args.rounds}",
                columns(targets),
                [cells(line, targets) for line in lines],
                round_notes(results, targets),
            )
        )
        markdown.write_text("".join(out))
    header, rows = summary(all_lines, targets)
    notes = [f"whole run {time.monotonic() - started:.0f} s", *HOW]
    out.append(show("Side-by-side delivery: every round", header, rows, notes))
    markdown.write_text("".join(out))
    console.print(f"Markdown: {markdown}" + ("" if args.from_json else f"; raw results: {raw}"))
    return 0


SIZES = ("rounds", "e2e_writes", "writes", "events", "load_seconds", "writers")


def saved_run(args: argparse.Namespace, targets: list[Target], rounds: list[Results]) -> Any:
    """What ``--from-json`` needs to print the tables again."""
    return {
        "sizes": {name: getattr(args, name) for name in SIZES} | {"rounds": len(rounds)},
        "targets": [{**vars(t), "python": str(t.python)} for t in targets],
        "rounds": rounds,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and 1 round: a smoke run of 5-8 min"
    )
    parser.add_argument("--rounds", type=int, help="rounds (default 2; --quick: 1)")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, help="these workloads only")
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=("tiled", "baseline", "current"),
        default=["tiled", "baseline", "current"],
        help="default: all three",
    )
    parser.add_argument("--e2e-writes", type=int, help="e2e writes per step (200; quick 30)")
    parser.add_argument("--writes", type=int, help="writes per block (200; quick 40)")
    parser.add_argument("--events", type=int, help="backlog events x 10 webhooks (1000; quick 100)")
    parser.add_argument("--load-seconds", type=float, help="load duration (60; quick 10)")
    parser.add_argument("--writers", type=int, default=20, help="load: concurrent writers (20)")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="bound of one driver run, seconds (1800)"
    )
    parser.add_argument(
        "--markdown", metavar="PATH", help="Markdown output (raw results beside it, as .json)"
    )
    parser.add_argument(
        "--from-json", metavar="PATH", help="print the tables of a saved run again (no run)"
    )
    args = parser.parse_args()
    for name, full, small in (
        ("rounds", 2, 1),
        ("e2e_writes", 200, 30),
        ("writes", 200, 40),
        ("events", 1000, 100),
        ("load_seconds", 60.0, 10.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, small if args.quick else full)
    args.only = [w for w in WORKLOADS if w in (args.only or WORKLOADS)]
    if args.markdown is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.markdown = str(HERE / "results" / f"compare-delivery-{stamp}.md")
    return args


if __name__ == "__main__":
    sys.exit(main(parse_args()))
