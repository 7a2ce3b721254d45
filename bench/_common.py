"""Shared helpers of the benchmarks: timing, percentiles, memory, the result table.

Each benchmark builds a list of :class:`Row` (what was measured, its value,
the target and Tiled's number where the issue gives one) and prints it with
:func:`report`, as a rich table headed by the command that produced it and
the machine it ran on. ``--markdown PATH`` appends the same table, as
Markdown, to a file (``bench/run_all.py`` collects them that way).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Wide enough for the tables when the output is a file or a pipe.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)

#: The quiet hookbook loggers (the harness warns about relaxed target rules
#: once per server; the memory benchmark's dead endpoint is *meant* to fail).
_NOISY_LOGGERS = ("hookbook", "uvicorn", "httpx")


def quiet_logs() -> None:
    """Keep the server's warnings out of the tables."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


# ---- timing -----------------------------------------------------------------


class Timing(list[float]):
    """Durations in seconds (wall clock, ``time.perf_counter``), plus ``cpu``: the
    process CPU time per call (all threads: client, server, worker, receiver).

    On a shared, busy machine the wall-clock numbers grow with the load; the
    CPU time per call is much steadier, and is what the code costs."""

    cpu: float = math.nan


def time_calls(
    fn: Callable[[int], Any],
    *,
    repeat: int,
    warmup: int = 0,
    budget: float | None = None,
) -> Timing:
    """Call ``fn(i)`` ``warmup`` times (not timed), then ``repeat`` times; return
    the durations in seconds and the CPU time per call.

    ``budget`` (seconds) bounds the timed loop: it stops early, with what it
    has, once the budget is spent (and says so on the console).
    """
    for i in range(warmup):
        fn(-1 - i)
    durations = Timing()
    deadline = None if budget is None else time.monotonic() + budget
    cpu_start = time.process_time()
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        durations.append(time.perf_counter() - start)
        if deadline is not None and time.monotonic() > deadline and i + 1 < repeat:
            console.print(f"[yellow]time budget of {budget:g} s spent after {i + 1} of {repeat}")
            break
    durations.cpu = (time.process_time() - cpu_start) / max(1, len(durations))
    return durations


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def p50(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def p95(values: Sequence[float]) -> float:
    return percentile(values, 95)


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.005, what: str = ""
) -> None:
    """Poll ``predicate`` until true; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what or predicate!r}")
        time.sleep(interval)


# ---- memory -----------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set size (``VmRSS`` of /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # not Linux: psutil, if it happens to be installed (not a dependency)
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:  # pragma: no cover - neither available
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def settled_rss() -> int:
    """RSS after a garbage collection (what the process really holds)."""
    gc.collect()
    return rss_bytes()


MB = 1024 * 1024


# ---- the table --------------------------------------------------------------


@dataclass
class Row:
    """One line of a result table.

    ``ok`` is True (target met), False (missed) or None (no target: shown
    for information).
    """

    measure: str
    value: str
    target: str = ""
    tiled: str = ""
    ok: bool | None = None
    note: str = ""


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return f"{seconds:.3f} s"


def verdict(ok: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[ok]


def command_line() -> str:
    """How this benchmark was started, as a shell command relative to the repo."""
    argv = list(sys.argv)
    try:
        argv[0] = os.path.relpath(argv[0], Path(__file__).resolve().parent.parent)
    except ValueError:
        pass
    return shlex.join(["python", *argv])


_LOAD_AT_START = os.getloadavg()[0]


def machine() -> str:
    """CPUs, Python, OS, and the 1-minute load average at the start and now (the
    machine may be shared: a load above the CPU count makes every wall-clock
    number here longer)."""
    return (
        f"nproc {len(os.sched_getaffinity(0))}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}, "
        f"load average {_LOAD_AT_START:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    )


def revision() -> str:
    """The commit measured (``+changes`` when src/ differs from it)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown revision"
    return f"commit {commit or '?'}{' +uncommitted changes in src/' if dirty else ''}"


def header(title: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{title}\n$ {command_line()}\n{stamp}; {revision()}; {machine()}"


def print_table(title: str, rows: Iterable[Row], *, notes: Sequence[str] = ()) -> None:
    table = Table(title=escape(header(title)), title_justify="left", show_lines=False)
    table.add_column("measure")
    table.add_column("measured", justify="right")
    table.add_column("target", justify="right")
    table.add_column("Tiled 0.2.20", justify="right")
    table.add_column("verdict")
    for row in rows:
        colour = {True: "green", False: "bold red", None: "dim"}[row.ok]
        table.add_row(
            escape(row.measure) + (f" [dim]({escape(row.note)})[/dim]" if row.note else ""),
            escape(row.value),
            escape(row.target),
            escape(row.tiled),
            f"[{colour}]{verdict(row.ok)}[/{colour}]",
        )
    console.print(table)
    for note in notes:
        console.print(f"  [dim]{escape(note)}[/dim]")
    console.print()


def markdown_table(title: str, rows: Iterable[Row], *, notes: Sequence[str] = ()) -> str:
    lines = [
        f"### {title}",
        "",
        f"`{command_line()}` ({dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; "
        f"{revision()}; {machine()})",
        "",
        "| measure | measured | target | Tiled 0.2.20 | verdict |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        name = row.measure + (f" ({row.note})" if row.note else "")
        cells = [name, row.value, row.target, row.tiled, verdict(row.ok)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines.append("")
    lines.extend(f"- {note}" for note in notes)
    if notes:
        lines.append("")
    return "\n".join(lines) + "\n"


def report(
    title: str, rows: Sequence[Row], args: argparse.Namespace, *, notes: Sequence[str] = ()
) -> None:
    """Print the table; append it as Markdown to ``args.markdown`` if given."""
    print_table(title, rows, notes=notes)
    if getattr(args, "markdown", None):
        with open(args.markdown, "a", encoding="utf-8") as fh:
            fh.write(markdown_table(title, rows, notes=notes) + "\n")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: the whole run takes well under 2 min"
    )
    parser.add_argument("--markdown", metavar="PATH", help="also append the tables, as Markdown")


# ---- a receiver in another process --------------------------------------------

_RECEIVER_CHILD = r"""
import json, sys, threading
from hookbook.testing import WebhookReceiver

receiver = WebhookReceiver(secret=sys.argv[1] or None).start()
print(receiver.port, flush=True)
stop = threading.Event()

def report():
    sent = 0
    while not stop.is_set() or sent < len(receiver.deliveries):
        try:
            receiver.wait_for(sent + 1, timeout=0.2)
        except TimeoutError:
            continue
        for d in receiver.deliveries[sent:]:
            line = {"event_id": d.event_id, "path": d.path, "received_at":
                    d.received_at.timestamp(), "signature_valid": d.signature_valid}
            print(json.dumps(line), flush=True)
            sent += 1

thread = threading.Thread(target=report, daemon=True)
thread.start()
sys.stdin.read()  # until the parent closes our stdin
stop.set()
thread.join(10)
receiver.stop()
"""


@dataclass
class RemoteDelivery:
    """What the receiver process reports about one delivery."""

    event_id: str | None
    path: str
    received_at: float  # epoch seconds (time.time() clock: the same in every process)
    signature_valid: bool | None


class ProcessReceiver:
    """``hookbook.testing.WebhookReceiver`` in a child process, so that its work
    does not compete for this process's GIL; deliveries are reported back as
    JSON lines. ``url_for``, ``deliveries`` and ``wait_for`` as the receiver's."""

    def __init__(self, secret: str | None = None) -> None:
        import subprocess
        import threading

        self._proc = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER_CHILD, secret or ""],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip():
            self._proc.kill()
            raise RuntimeError("the receiver process did not start")
        self.port = int(line)
        self._cond = threading.Condition()
        self._deliveries: list[RemoteDelivery] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        import json

        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            delivery = RemoteDelivery(**json.loads(line))
            with self._cond:
                self._deliveries.append(delivery)
                self._cond.notify_all()

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def url(self) -> str:
        return self.url_for("/webhook")

    @property
    def deliveries(self) -> list[RemoteDelivery]:
        with self._cond:
            return list(self._deliveries)

    def wait_for(self, n: int, timeout: float) -> list[RemoteDelivery]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._deliveries) >= n, timeout):
                raise TimeoutError(f"{len(self._deliveries)} of {n} deliveries in {timeout} s")
            return self._deliveries[:n]

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(15)
        except Exception:
            self._proc.kill()
            self._proc.wait(5)
        self._reader.join(5)

    def __enter__(self) -> ProcessReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
