"""Scale-out benchmark (issue 6): real ``hookbook serve`` processes on one PostgreSQL outbox.

    python bench/bench_scale.py            # full sizes: about 12-15 minutes on 2 busy cores
    python bench/bench_scale.py --quick    # about 2-3 minutes
    python bench/bench_scale.py --only fanout backlog

Everything is a separate process on 127.0.0.1: the ``hookbook serve``
processes (``--worker-only`` delivery workers, HTTP-only servers with
``run_worker: false``, or full servers), PostgreSQL (the local server, or
``HOOKBOOK_BENCH_POSTGRES``; each section creates a fresh database with
asyncpg and drops it at the end) and the receiver, ``bench/fast_receiver.py``
(asyncio, keep-alive, answers 200 at once; it records each request's arrival
time and ``X-Tiled-Event-ID``: all counting and timing of deliveries comes
from it). Sections (``--only``):

- ``receiver``: what the receiver takes (raw keep-alive POSTs, 16
  connections), to show that it is not the bottleneck.
- ``processes``: PostgreSQL with 1, 2 and 4 processes, SQLite with 1.
  (a) *Throughput*: each configuration's backlog (default 2,000 events x 3
  webhooks) is written through an HTTP-only server, under its own key
  prefix, and held (due in a year). Then N ``--worker-only`` processes start
  and, once all are ready, the backlog is released (``next_attempt_at`` =
  now + 1 s, and ``NOTIFY`` on PostgreSQL): the drain runs from that instant
  to the arrival of the last distinct event id. Later rounds reset the same
  rows to pending with new event ids; rounds interleave the configurations
  (1, 2, 4, SQLite, 1, 2, ...), so a busy spell of a shared machine does not
  fall on one only; the best round counts, the median is shown.
  (b) *End-to-end latency*: N full servers; events written one at a time at
  a steady rate (20/s), round-robin through them; from just before the write
  request to the receiver's arrival time, per delivery.
- ``fanout``: one event to 1,000 webhooks (paths ``/h0`` .. ``/h999`` on one
  receiver), with 1 and then 2 full servers: from just before the write to
  the last delivery's arrival (target < 5 s).
- ``backlog``: 100,000 deliveries (10,000 events x 10 webhooks, bulk-inserted
  with COPY, held, then released) drained by 2 worker-only processes: time,
  and each worker's ``VmRSS`` sampled every 0.5 s (target: growth < 50 MB
  over its idle size after start-up).

Beside each drain: CPU time per delivery (``/proc/<pid>/stat``) of the
workers, of the database's PostgreSQL backends (approximate: backends that
close during the drain are not counted) and of the receiver, and how busy
all CPUs of the machine were (``/proc/stat``). On a shared machine these are
steadier than wall time, and show when the cores, not the code, were the
limit. ``--profile DIR`` attaches ``py-spy record`` to the workers (an extra,
unmeasured round per configuration; the fan-out and backlog runs, marked)
and prints where their time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import select
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _targets  # noqa: E402
import httpx  # noqa: E402
import yaml  # noqa: E402
from _common import (  # noqa: E402
    MB,
    Row,
    add_common_arguments,
    console,
    ms,
    p50,
    p95,
    report,
)
from _targets import (  # noqa: E402
    Serve,
    bounded_poll,
    machine_jiffies,
    proc_cpu,
)

SECTIONS = ("receiver", "processes", "fanout", "backlog")
API_KEY = "bench_scale_key"
SECRET = "bench-secret"
#: Where fresh databases are created (and dropped): the local server, as the tests use it.
PG_ADMIN = os.environ.get("HOOKBOOK_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
#: ``next_attempt_at`` of a held backlog: due in a year, so no worker takes it.
HOLD_SECONDS = 365 * 86400.0
#: Seconds between the release of a held backlog and the instant it comes due.
RELEASE_LEAD = 1.0


# ---- the receiver -----------------------------------------------------------


class Receiver:
    """``bench/fast_receiver.py`` as a child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "fast_receiver.py"), "--keep-bodies"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            ready, _, _ = select.select([self.proc.stdout], [], [], 30)
            line = self.proc.stdout.readline().decode() if ready else ""  # type: ignore[union-attr]
            if not line.startswith("listening on "):
                raise RuntimeError(f"the receiver did not start: {line!r}")
            self.port = int(line.rsplit(":", 1)[1])
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}"
        self._http = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    def stats(self, arrivals: bool = False) -> dict[str, Any]:
        return self._http.get("/_stats", params={"arrivals": 1} if arrivals else None).json()

    def reset(self) -> None:
        self._http.post("/_reset").raise_for_status()

    def wait_distinct(self, n: int, *, timeout: float, interval: float = 0.05) -> dict[str, Any]:
        def enough() -> dict[str, Any] | None:
            s = self.stats()
            return s if s["distinct"] >= n else None

        try:
            return bounded_poll(enough, timeout=timeout, interval=interval, what=f"{n} deliveries")
        except TimeoutError:
            raise TimeoutError(
                f"{self.stats()['distinct']} of {n} deliveries arrived in {timeout:g} s"
            ) from None

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        if getattr(self, "_http", None) is not None:
            self._http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ---- hookbook serve processes -----------------------------------------------


@contextlib.contextmanager
def running(
    config: Path, n: int, *, worker_only: bool, timeout: float = 120.0
) -> Iterator[list[Serve]]:
    """``n`` processes of ``hookbook serve`` on ``config``, ready; stopped after."""
    with _targets.running(
        config, n, api_key=API_KEY, worker_only=worker_only, timeout=timeout
    ) as procs:
        yield procs


# ---- databases --------------------------------------------------------------


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


#: The deliveries of the events whose path (the container's key) starts with a scope.
SCOPED = "event_row_id IN (SELECT id FROM events WHERE path LIKE {scope})"


class Backend:
    """The database of one measurement, and the SQL the benchmark runs on it directly.

    Every statement takes a *scope*: a key prefix (``"p2-"``), so that several
    backlogs live in one database and each is held, released and reset alone
    (``""``: every delivery)."""

    name: str
    url: str | None  # the ``database:`` setting (None: SQLite in the directory)
    #: Placeholders of the driver: the time, then the scope's LIKE pattern.
    params: tuple[str, str]

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.directory = workdir / "data"

    def write_config(self, name: str, args: argparse.Namespace, *, run_worker: bool) -> Path:
        webhooks = {
            "secret_keys": ["bench-scale-secret-key"],
            "allow_http": True,
            "allow_private_addresses": True,
            "max_in_flight": args.max_in_flight,
            "max_in_flight_per_host": args.per_host,
            "poll_interval": args.poll_interval,
        }
        config: dict[str, Any] = {
            "directory": str(self.directory),
            "api_keys": [{"key": API_KEY, "scopes": ["admin"]}],
            "run_worker": run_worker,
            "webhooks": webhooks,
        }
        if self.url is not None:
            config["database"] = self.url
        path = self.workdir / f"{name}.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    # Each backend implements these.
    def execute(self, sql: str, *params: Any) -> Any:
        raise NotImplementedError

    def notify(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _set_due(self, due: float, scope: str) -> None:
        t, pattern = self.params
        self.execute(
            f"UPDATE deliveries SET next_attempt_at = {t} WHERE outcome = 'pending' AND "
            + SCOPED.format(scope=pattern),
            due,
            scope + "%",
        )

    def hold(self, scope: str = "") -> None:
        """Make the scope's pending deliveries due in a year: no worker takes them."""
        self._set_due(time.time() + HOLD_SECONDS, scope)

    def release(self, scope: str = "") -> float:
        """Make the scope's held deliveries due ``RELEASE_LEAD`` s from now; return that instant."""
        t0 = time.time() + RELEASE_LEAD
        self._set_due(t0, scope)
        self.notify()
        return t0

    def reset_backlog(self, scope: str = "") -> None:
        """The scope's deliveries pending again (held), each with a new event id."""
        t, pattern = self.params
        self.execute(
            "UPDATE deliveries SET outcome = 'pending', attempts = 0, status_code = NULL, "
            "error_detail = NULL, delivered_at = NULL, lease_token = NULL, "
            f"next_attempt_at = {t}, event_id = {self.random_hex} WHERE "
            + SCOPED.format(scope=pattern),
            time.time() + HOLD_SECONDS,
            scope + "%",
        )

    def pending(self, scope: str = "") -> int:
        pattern = self.params[0]  # the only parameter here
        return int(
            self.execute(
                "SELECT count(*) FROM deliveries WHERE outcome = 'pending' AND "
                + SCOPED.format(scope=pattern),
                scope + "%",
            )
        )


class Postgres(Backend):
    name = "PostgreSQL"
    params = ("$1", "$2")
    random_hex = "md5(random()::text || id::text)"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.db = f"hookbook_bench_{uuid.uuid4().hex[:12]}"
        self.admin = PG_ADMIN
        _run(self._admin(f'CREATE DATABASE "{self.db}"'))
        self.dsn = self.admin.rsplit("/", 1)[0] + "/" + self.db
        self.url = self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def execute(self, sql: str, *params: Any) -> Any:
        async def go() -> Any:
            import asyncpg

            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                if sql.lstrip().upper().startswith("SELECT"):
                    return await conn.fetchval(sql, *params)
                return await conn.execute(sql, *params)
            finally:
                await conn.close()

        return _run(go())

    def notify(self) -> None:
        self.execute("NOTIFY hookbook_outbox")

    def close(self) -> None:
        _run(self._admin(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))


class Sqlite(Backend):
    name = "SQLite"
    url = None
    params = ("?", "?")
    random_hex = "lower(hex(randomblob(16)))"

    def execute(self, sql: str, *params: Any) -> Any:
        conn = sqlite3.connect(self.directory / "hookbook.db", timeout=30)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            cursor = conn.execute(sql, params)
            if sql.lstrip().upper().startswith("SELECT"):
                return cursor.fetchone()[0]
            conn.commit()
            return cursor.rowcount
        finally:
            conn.close()


@contextlib.contextmanager
def backend(kind: str, root: Path) -> Iterator[Backend]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=root))
    db: Backend = Postgres(workdir) if kind == "postgresql" else Sqlite(workdir)
    try:
        yield db
    finally:
        db.close()


# ---- writing through the HTTP API ---------------------------------------------


CONTAINER = {"structure_family": "container", "metadata": {}, "specs": [], "data_sources": []}


def register(client: httpx.Client, urls: Sequence[str], *, threads: int = 8) -> list[int]:
    def one(url: str) -> int:
        r = client.post("webhooks/target/", json={"url": url, "secret": SECRET})
        if r.status_code != 200:
            raise RuntimeError(f"register {url}: {r.status_code} {r.text}")
        return r.json()["id"]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, urls))


def create_container(client: httpx.Client, key: str) -> None:
    r = client.post("metadata/", json={**CONTAINER, "id": key})
    if r.status_code != 200:
        raise RuntimeError(f"create {key}: {r.status_code} {r.text}")


def create_containers(client: httpx.Client, keys: Sequence[str], *, threads: int = 8) -> float:
    """Create one container per key (``threads`` at a time); return the seconds it took."""
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: create_container(client, k), keys))
    return time.perf_counter() - start


# ---- CPU accounting of a drain ----------------------------------------------------


def backend_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving ``database`` (their process title names it)."""
    pids = []
    needle = f" {database} ".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                title = fh.read(300)
        except OSError:
            continue
        if title.startswith(b"postgres: ") and needle in title:
            pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds used by the workers, the database's backends and the receiver
    during a drain, and how busy the machine's CPUs were.

    Backends come and go (the pools open and close connections): a thread looks
    every 0.5 s and keeps the last CPU time seen of each, so one that closed
    before the end still counts (up to its last sample; so the figure is a
    slight underestimate)."""

    def __init__(self, workers: list[Serve], db: Backend, receiver: Receiver) -> None:
        self.workers = workers
        self.database = getattr(db, "db", None)  # PostgreSQL only
        self.receiver = receiver
        self._backends: dict[int, tuple[float, float]] = {}  # pid -> (first, last) CPU
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample_backends(self, *, started: bool = True) -> None:
        """A backend first seen after ``begin`` started during the drain: all its CPU counts."""
        if self.database is None:
            return
        for pid in backend_pids(self.database):
            cpu = proc_cpu(pid)
            if cpu:
                first = self._backends.get(pid, (0.0 if started else cpu, cpu))[0]
                self._backends[pid] = (first, cpu)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._sample_backends()

    def begin(self) -> None:
        self._sample_backends(started=False)
        self._start = (
            sum(w.cpu() for w in self.workers),
            self.receiver.cpu(),
            machine_jiffies(),
        )
        self._thread = threading.Thread(target=self._loop, daemon=True, name="cpu-meter")
        self._thread.start()

    def per_delivery(self, n: int) -> str:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._sample_backends()
        workers = sum(w.cpu() for w in self.workers) - self._start[0]
        receiver = self.receiver.cpu() - self._start[1]
        busy, total = (b - a for a, b in zip(self._start[2], machine_jiffies(), strict=True))
        parts = [f"workers {workers / n * 1000:.2f}"]
        if self.database is not None:
            backends = sum(last - first for first, last in self._backends.values())
            parts.append(f"postgres {backends / n * 1000:.2f}")
        parts.append(f"receiver {receiver / n * 1000:.2f}")
        machine = f"; all {len(os.sched_getaffinity(0))} CPUs {busy / max(total, 1):.0%} busy"
        return "CPU ms/delivery: " + ", ".join(parts) + machine


# ---- profiling --------------------------------------------------------------------


class Profiler:
    """``py-spy record`` (raw collapsed stacks) attached to some processes."""

    def __init__(self, directory: Path, label: str, pids: Sequence[int]) -> None:
        self.files = [directory / f"{label}-{pid}.txt" for pid in pids]
        py_spy = Path(sys.executable).with_name("py-spy")
        self.procs = [
            subprocess.Popen(
                [
                    str(py_spy),
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "200",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid, out in zip(pids, self.files, strict=True)
        ]
        time.sleep(1.0)  # py-spy attaches (a pause in the benchmark, not in a measurement)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


#: Parts of a delivery, by a frame that marks them (``name (path`` as py-spy writes it).
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("claim (outbox.claim)", ("claim (hookbook/webhooks/outbox.py",)),
    ("record the attempt (outbox.record)", ("record (hookbook/webhooks/outbox.py",)),
    ("next_due poll (worker._sleep)", ("next_due (hookbook/webhooks/outbox.py",)),
    ("the HTTP attempt (sender.attempt)", ("attempt (hookbook/webhooks/sender.py",)),
    ("  of which target re-check (check_target)", ("check_target (hookbook/url_safety.py",)),
    ("  of which signing (sign_headers)", ("sign_headers (hookbook/signing.py",)),
    ("secret decryption (Fernet)", ("decrypt (hookbook/webhooks/secrets.py",)),
    ("pool pre-ping (SQLAlchemy pool_pre_ping)", ("_async_ping (",)),
    ("failed 'import sniffio' (httpcore)", ("current_async_library (httpcore",)),
    ("SQL compilation (SQLAlchemy)", ("compile (", "_compiler_dispatch (")),
    ("socket writes (transport.write)", ("_SelectorSocketTransport.write (",)),
    ("HTTP request handling (uvicorn/fastapi)", ("RequestResponseCycle.run_asgi (",)),
)


def hot_spots(files: Sequence[Path], top: int = 14) -> list[str]:
    """The functions with the most samples: on the CPU themselves (self) and below them."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [f.strip() for f in stack.split(";") if f.strip()]
            if not frames:
                continue
            own[_short(frames[-1])] += n
            for name in {_short(f) for f in frames}:
                inclusive[name] += n
            for label, needles in PHASES:
                if any(needle in stack for needle in needles):
                    phases[label] += n
    if not total:
        return ["no samples (is py-spy allowed to attach? ptrace)"]
    lines = [f"{total} samples; where the worker's time goes (inclusive):"]
    for label, _needles in PHASES:
        n = phases.get(label, 0)
        lines.append(f"  {n / total:6.1%}  {label}")
    lines.append("self time:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive (hookbook, sqlalchemy, asyncpg, httpx, httpcore frames):")
    interesting = ("hookbook", "sqlalchemy", "asyncpg", "httpx", "httpcore", "aiosqlite")
    picked = [(k, n) for k, n in inclusive.most_common() if any(s in k for s in interesting)]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in picked[:top]]
    return lines


@contextlib.contextmanager
def profiled(args: argparse.Namespace, label: str, pids: Sequence[int]) -> Iterator[None]:
    """With ``--profile``: py-spy on ``pids`` meanwhile, then print the hot spots."""
    if not args.profile:
        yield
        return
    prof = Profiler(Path(args.profile), label, pids)
    try:
        yield
    finally:
        prof.stop()
    console.print(f"  [bold]py-spy[/bold] ({label}):")
    for line in hot_spots(prof.files):
        console.print(f"    {line}")


def _short(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})"


# ---- section: receiver ------------------------------------------------------------


def bench_receiver(args: argparse.Namespace, receiver: Receiver) -> tuple[list[Row], list[str]]:
    n = 2000 if args.quick else 10_000
    conns = 16
    body = b'{"path": ["x"], "type": "container-child-created"}' + b" " * 200
    head = (
        f"POST /capacity HTTP/1.1\r\nHost: 127.0.0.1:{receiver.port}\r\n"
        "Content-Type: application/json\r\nX-Tiled-Event-ID: {id}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )

    async def client(k: int, count: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", receiver.port)
        try:
            for i in range(count):
                writer.write(head.replace("{id}", f"{k:08x}{i:024x}").encode() + body)
                await reader.readuntil(b"\r\n\r\nok")
        finally:
            writer.close()

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(client(k, n // conns) for k in range(conns))), timeout=120
        )
        return time.perf_counter() - start

    receiver.reset()
    elapsed = asyncio.run(run())
    got = receiver.stats()
    receiver.reset()
    rate = got["distinct"] / elapsed
    return [
        Row(
            "receiver capacity (raw keep-alive POSTs, 16 connections)",
            f"{rate:,.0f} req/s",
            "",
            "",
            None,
            note=f"{got['distinct']:,} requests; the client is one Python process too",
        )
    ], []


# ---- section: processes ----------------------------------------------------------


@dataclass
class DrainResult:
    seconds: float
    rate: float
    settled: float
    duplicates: int
    cpu: str
    load: float  # 1-minute load average when the drain started


def drain(
    db: Backend,
    receiver: Receiver,
    workers: list[Serve],
    total: int,
    *,
    timeout: float,
    reset: bool,
    scope: str = "",
    on_sample: Callable[[], None] | None = None,
) -> DrainResult:
    """Release the scope's held backlog, time it until the last distinct delivery arrived."""
    if reset:
        db.reset_backlog(scope)
    receiver.reset()
    meter = CpuMeter(workers, db, receiver)
    meter.begin()
    load = os.getloadavg()[0]
    t0 = db.release(scope)

    def done() -> dict[str, Any] | None:
        if on_sample is not None:
            on_sample()
        s = receiver.stats()
        return s if s["distinct"] >= total else None

    try:
        stats = bounded_poll(done, timeout=timeout, interval=0.5 if on_sample else 0.05, what="")
    except TimeoutError:
        raise TimeoutError(
            f"{receiver.stats()['distinct']:,} of {total:,} deliveries arrived in {timeout:g} s"
        ) from None
    cpu = meter.per_delivery(total)
    bounded_poll(lambda: db.pending(scope) == 0, timeout=120, interval=0.1, what="settled outbox")
    settled = time.time() - t0
    seconds = stats["last_new"] - t0
    return DrainResult(seconds, total / seconds, settled, stats["duplicates"], cpu, load)


def measure_latency(
    servers: list[Serve],
    receiver: Receiver,
    *,
    n: int,
    rate: float,
    per_event: int,
    prefix: str = "lat",
) -> list[float]:
    """Write ``n`` events one at a time, ``rate`` a second, round-robin; latencies in s."""
    receiver.reset()
    clients = [s.client() for s in servers]
    written: dict[str, float] = {}
    try:
        for c in clients:  # a warm connection to each server (not measured)
            c.get("metadata/").raise_for_status()
        period = 1.0 / rate
        start = time.monotonic()
        for i in range(n):
            wait = start + i * period - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # the pace of the writer, not a wait for a delivery
            key = f"{prefix}{i:05d}"
            written[key] = time.time()
            create_container(clients[i % len(clients)], key)
    finally:
        for c in clients:
            c.close()
    receiver.wait_distinct(n * per_event, timeout=60 + n * 0.5)
    arrivals = receiver.stats(arrivals=True)["arrivals"]
    return [arrival - written[key] for _id, arrival, _path, key in arrivals if key in written]


@dataclass
class Config:
    """One configuration of the processes section, and what was measured with it."""

    label: str
    db: Backend
    cfg: Path  # the workers' and full servers' config file
    n: int
    scope: str
    write_rate: float = 0.0
    drains: list[DrainResult] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def bench_processes(
    args: argparse.Namespace, receiver: Receiver, root: Path
) -> tuple[list[Row], list[str]]:
    hooks = 3
    total = args.events * hooks

    def write_backlogs(db: Backend, scopes: Sequence[str]) -> dict[str, float]:
        """Through one HTTP-only server: the webhooks, then each scope's events (held)."""
        rates = {}
        http_cfg = db.write_config("http-only", args, run_worker=False)
        with running(http_cfg, 1, worker_only=False) as (writer,), writer.client() as c:
            register(c, [f"{receiver.url}/w{j}" for j in range(hooks)])
            for scope in scopes:
                keys = [f"{scope}e{i:05d}" for i in range(args.events)]
                rates[scope] = args.events / create_containers(c, keys)
        db.hold()
        return rates

    def label_of(kind: str, n: int) -> str:
        return f"{kind}, {n} process{'es' * (n > 1)}"

    configs: list[Config] = []
    with contextlib.ExitStack() as stack:
        # PostgreSQL: one database; every configuration's backlog is written
        # first (one HTTP-only server, one migration), each under its own key
        # prefix, and held.
        if args.pg_processes:
            pg = stack.enter_context(backend("postgresql", root))
            scopes = {n: f"p{n}-" for n in args.pg_processes}
            console.print(
                f"[bold]processes[/bold]: PostgreSQL: writing {len(scopes)} backlogs of "
                f"{args.events:,} events x {hooks} webhooks"
            )
            rates = write_backlogs(pg, list(scopes.values()))
            cfg = pg.write_config("full", args, run_worker=True)
            for n, scope in scopes.items():
                configs.append(Config(label_of("PostgreSQL", n), pg, cfg, n, scope, rates[scope]))
        if not args.no_sqlite:
            lite = stack.enter_context(backend("sqlite", root))
            console.print("[bold]processes[/bold]: SQLite: writing the backlog")
            rates = write_backlogs(lite, ["s1-"])
            cfg = lite.write_config("full", args, run_worker=True)
            configs.append(Config(label_of("SQLite", 1), lite, cfg, 1, "s1-", rates["s1-"]))
        # Throughput: the rounds interleave the configurations, so that a busy
        # spell of the (shared) machine does not fall on one of them only.
        for r in range(args.rounds):
            for c in configs:
                with running(c.cfg, c.n, worker_only=True) as workers:
                    res = drain(
                        c.db,
                        receiver,
                        workers,
                        total,
                        timeout=args.timeout,
                        reset=r > 0,
                        scope=c.scope,
                    )
                    c.drains.append(res)
                    console.print(
                        f"  {c.label}, round {r + 1}: {res.rate:,.0f}/s ({res.seconds:.2f} s; "
                        f"settled {res.settled:.2f} s; {res.cpu}; duplicates {res.duplicates}; "
                        f"load {res.load:.1f})"
                    )
                    if args.profile and r == args.rounds - 1:
                        pids = [w.pid for w in workers]
                        with profiled(args, f"{c.label} (unmeasured round)", pids):
                            drain(
                                c.db,
                                receiver,
                                workers,
                                total,
                                timeout=args.timeout,
                                reset=True,
                                scope=c.scope,
                            )
        # End-to-end latency: N full servers each.
        for c in configs:
            with running(c.cfg, c.n, worker_only=False) as servers:
                c.latencies = measure_latency(
                    servers,
                    receiver,
                    n=args.latency_events,
                    rate=args.latency_rate,
                    per_event=hooks,
                    prefix=f"lat{c.scope}",
                )
            console.print(
                f"  {c.label}: end-to-end p50 {ms(p50(c.latencies))}, p95 {ms(p95(c.latencies))}"
            )

    rows: list[Row] = []
    best: dict[str, float] = {}
    medians: dict[str, float] = {}
    for c in configs:
        top = max(c.drains, key=lambda r: r.rate)
        best[c.label] = top.rate
        medians[c.label] = statistics.median(r.rate for r in c.drains)
        dupes = sum(r.duplicates for r in c.drains)
        rows.append(
            Row(
                f"{c.label}: deliveries/s, drain of {total:,}",
                f"{top.rate:,.0f}/s",
                "",
                "",
                None,
                note=(
                    f"best of {len(c.drains)}: {top.seconds:.2f} s, load {top.load:.1f}; "
                    f"median {medians[c.label]:,.0f}/s; all settled {top.settled:.2f} s; "
                    f"{top.cpu}; duplicates {dupes}"
                ),
            )
        )
        rows.append(
            Row(
                f"{c.label}: end-to-end p50 / p95",
                f"{ms(p50(c.latencies))} / {ms(p95(c.latencies))}",
                "",
                "",
                None,
                note=f"{len(c.latencies)} deliveries of {args.latency_events} events written "
                f"one at a time, {args.latency_rate:g}/s",
            )
        )
    one = label_of("PostgreSQL", 1)
    for n in args.pg_processes:
        label = label_of("PostgreSQL", n)
        if n == 1 or one not in best or label not in best:
            continue
        ratio = best[label] / best[one]
        rows.append(
            Row(
                f"PostgreSQL, {n} vs 1 process: throughput ratio",
                f"{ratio:.2f}x",
                ">= 1.5x" if n == 2 else "",
                "",
                (ratio >= 1.5) if n == 2 else None,
                note=f"best rounds; medians {medians[label] / medians[one]:.2f}x",
            )
        )
    notes = [
        f"{c.label}: its backlog was written through an HTTP-only server at "
        f"{c.write_rate:,.0f} events/s (8 threads)"
        for c in configs
    ]
    return rows, notes


# ---- section: fan-out --------------------------------------------------------------


def bench_fanout(
    args: argparse.Namespace, receiver: Receiver, root: Path
) -> tuple[list[Row], list[str]]:
    n_hooks = args.fanout
    console.print(f"[bold]fanout[/bold]: one event to {n_hooks:,} webhooks, 1 then 2 servers")
    rows: list[Row] = []
    with backend("postgresql", root) as db:
        cfg = db.write_config("full", args, run_worker=True)
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(running(cfg, 1, worker_only=False))[0]
            client = stack.enter_context(first.client())
            t = time.perf_counter()
            register(client, [f"{receiver.url}/h{i}" for i in range(n_hooks)])
            register_s = time.perf_counter() - t
            pids = [first.pid]
            for n in (1, 2):
                if n == 2:
                    pids += [p.pid for p in stack.enter_context(running(cfg, 1, worker_only=False))]
                times: list[float] = []
                with profiled(args, f"fanout-{n}", pids):
                    for r in range(args.fanout_rounds):
                        receiver.reset()
                        start = time.time()
                        create_container(client, f"fan{n}-{r}")
                        stats = receiver.wait_distinct(n_hooks, timeout=120)
                        if stats["paths"] != n_hooks:
                            raise RuntimeError(f"{stats['paths']} paths, not {n_hooks}")
                        times.append(stats["last_new"] - start)
                        bounded_poll(lambda: db.pending() == 0, timeout=60, interval=0.1, what="")
                load = os.getloadavg()[0]
                console.print(
                    f"  {n} server(s): "
                    + ", ".join(f"{x:.2f} s" for x in times)
                    + f" (load {load:.1f})"
                )
                rows.append(
                    Row(
                        f"fan-out of one event to {n_hooks:,} webhooks, {n} server"
                        f"{'s' * (n > 1)}: last delivered",
                        f"{statistics.median(times):.2f} s",
                        "< 5 s",
                        "",
                        statistics.median(times) < 5.0 if n_hooks >= 1000 else None,
                        note=f"median of {len(times)}; best {min(times):.2f} s, worst "
                        f"{max(times):.2f} s; load {load:.1f}"
                        + ("; py-spy attached" if args.profile else ""),
                    )
                )
    notes = [f"fan-out: {n_hooks:,} webhooks registered through HTTP in {register_s:.1f} s"]
    return rows, notes


# ---- section: backlog --------------------------------------------------------------


def insert_backlog(db: Postgres, webhook_ids: list[int], n_events: int) -> float:
    """Bulk-insert ``n_events`` events and one held delivery per event and webhook."""
    from hookbook import events as ev

    async def go() -> float:
        import asyncpg

        start = time.perf_counter()
        conn = await asyncpg.connect(db.dsn, timeout=10)
        try:
            stamp = ev.now()
            naive = stamp.replace(tzinfo=None)  # UTCDateTime stores naive UTC
            event_rows = [
                (
                    "container-child-created",
                    f"backlog{i}",
                    ev.serialize(
                        ev.ContainerChildCreated(
                            timestamp=stamp,
                            key=f"backlog{i}",
                            path=[f"backlog{i}"],
                            structure_family="container",
                            specs=[],
                            metadata={},
                        )
                    ),
                    naive,
                )
                for i in range(n_events)
            ]
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "events", records=event_rows, columns=["type", "path", "body", "time_created"]
                )
                ids = [
                    r["id"]
                    for r in await conn.fetch(
                        "SELECT id FROM events WHERE path LIKE 'backlog%' ORDER BY id"
                    )
                ]
                held = time.time() + HOLD_SECONDS
                delivery_rows = [
                    (
                        hook,
                        row,
                        uuid.uuid4().hex,
                        "container-child-created",
                        "pending",
                        0,
                        held,
                        naive,
                    )
                    for row in ids
                    for hook in webhook_ids
                ]
                await conn.copy_records_to_table(
                    "deliveries",
                    records=delivery_rows,
                    columns=[
                        "webhook_id",
                        "event_row_id",
                        "event_id",
                        "event_type",
                        "outcome",
                        "attempts",
                        "next_attempt_at",
                        "time_created",
                    ],
                )
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
        return time.perf_counter() - start

    return _run(go())


def bench_backlog(
    args: argparse.Namespace, receiver: Receiver, root: Path
) -> tuple[list[Row], list[str]]:
    n_hooks = 10
    n_events = args.backlog // n_hooks
    total = n_events * n_hooks
    n_workers = args.drain_processes
    console.print(f"[bold]backlog[/bold]: {total:,} deliveries, {n_workers} worker processes")
    rows: list[Row] = []
    with backend("postgresql", root) as db:
        assert isinstance(db, Postgres)
        http_cfg = db.write_config("http-only", args, run_worker=False)
        cfg = db.write_config("full", args, run_worker=True)
        with running(http_cfg, 1, worker_only=False) as (writer,), writer.client() as c:
            hooks = register(c, [f"{receiver.url}/b{j}" for j in range(n_hooks)])
        insert_s = insert_backlog(db, hooks, n_events)
        console.print(f"  inserted in {insert_s:.1f} s")
        samples: dict[int, list[tuple[float, int]]] = defaultdict(list)
        with running(cfg, n_workers, worker_only=True) as workers:
            time.sleep(1.0)  # settle after start-up before the baseline (no delivery waits)
            baseline = {w.pid: w.rss() or 0 for w in workers}
            progress: list[tuple[float, int]] = []

            def sample() -> None:
                now = time.time()
                for w in workers:
                    rss = w.rss()
                    if rss is not None:
                        samples[w.pid].append((now, rss))

            def sample_with_progress() -> None:
                sample()
                progress.append((time.time(), receiver.stats()["distinct"]))

            with profiled(args, "backlog", [w.pid for w in workers]):
                res = drain(
                    db,
                    receiver,
                    workers,
                    total,
                    timeout=args.timeout * 4,
                    reset=False,
                    on_sample=sample_with_progress,
                )
            sample()
            console.print(
                f"  {res.seconds:.1f} s ({res.rate:,.0f}/s; settled {res.settled:.1f} s; {res.cpu})"
            )

        def rss_at(series: list[tuple[float, int]], share: float) -> int:
            """RSS at the last sample before ``share`` of the deliveries had arrived."""
            when = next((t for t, d in progress if d >= total * share), None)
            before = [r for t, r in series if when is not None and t <= when]
            return before[-1] if before else series[0][1]

        rows.append(
            Row(
                f"drain of {total:,} deliveries, {n_workers} worker processes",
                f"{res.seconds:.1f} s",
                "",
                "",
                None,
                note=f"{res.rate:,.0f}/s; all settled {res.settled:.1f} s; {res.cpu}; "
                f"duplicates {res.duplicates}; load {res.load:.1f} at the start"
                + ("; py-spy attached" if args.profile else ""),
            )
        )
        dump = root / "backlog-rss.json"
        dump.write_text(
            json.dumps(
                {
                    "baseline": baseline,
                    "progress": progress,
                    "rss": {str(pid): series for pid, series in samples.items()},
                }
            )
        )
        for i, w in enumerate(workers, 1):
            series = samples[w.pid]
            peak = max(r for _, r in series)
            growth = peak - baseline[w.pid]
            at = {share: rss_at(series, share) / MB for share in (0.1, 0.5)}
            rows.append(
                Row(
                    f"worker {i} RSS growth while draining",
                    f"{growth / MB:.1f} MB",
                    "< 50 MB",
                    "",
                    growth < 50 * MB if total >= 100_000 else None,
                    note=f"idle {baseline[w.pid] / MB:.0f} MB; at 10% {at[0.1]:.0f}, 50% "
                    f"{at[0.5]:.0f}, peak {peak / MB:.0f}, end {series[-1][1] / MB:.0f} MB; "
                    f"{len(series)} samples",
                )
            )
    notes = [
        f"backlog: {n_events:,} events x {n_hooks} webhooks bulk-inserted (COPY, then ANALYZE) "
        f"in {insert_s:.1f} s, held, then released to {n_workers} --worker-only processes; "
        f"RSS samples in {dump}"
    ]
    return rows, notes


# ---- main ------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    sections = args.only or SECTIONS
    rows: list[Row] = []
    notes = [
        f"webhooks config: max_in_flight {args.max_in_flight}, max_in_flight_per_host "
        f"{args.per_host} (defaults 64 / 8: every webhook here is one loopback endpoint), "
        f"poll_interval {args.poll_interval:g} s, allow_http and allow_private_addresses true; "
        "signed deliveries (a secret per webhook)",
    ]
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="hookbook-bench-scale-"))
    receiver = Receiver()
    try:
        for name, fn in (
            ("receiver", lambda: bench_receiver(args, receiver)),
            ("processes", lambda: bench_processes(args, receiver, root)),
            ("fanout", lambda: bench_fanout(args, receiver, root)),
            ("backlog", lambda: bench_backlog(args, receiver, root)),
        ):
            if name not in sections:
                continue
            t = time.monotonic()
            section_rows, section_notes = fn()
            rows += section_rows
            notes += section_notes
            console.print(f"[dim]  {name}: {time.monotonic() - t:.0f} s[/dim]")
    finally:
        receiver.stop()
    notes.append(
        f"whole run {time.monotonic() - started:.0f} s; logs and configs in {root}; "
        "PostgreSQL databases dropped"
    )
    report("hookbook scale-out benchmark (issue 6)", rows, args, notes=notes)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument(
        "--events", type=int, help="processes: events (x 3 webhooks); default 2000, quick 150"
    )
    parser.add_argument(
        "--pg-processes", type=int, nargs="+", default=[1, 2, 4], help="default: 1 2 4"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite with 1 process")
    parser.add_argument("--rounds", type=int, help="drains per configuration; default 2, quick 1")
    parser.add_argument(
        "--latency-events", type=int, help="end-to-end: events written; default 200, quick 30"
    )
    parser.add_argument("--latency-rate", type=float, default=20.0, help="events/s (default 20)")
    parser.add_argument("--fanout", type=int, help="webhooks; default 1000, quick 250")
    parser.add_argument("--fanout-rounds", type=int, help="events fanned out; default 3, quick 1")
    parser.add_argument(
        "--backlog", type=int, help="deliveries to drain; default 100000, quick 2000"
    )
    parser.add_argument("--drain-processes", type=int, default=2, help="backlog: workers (2)")
    parser.add_argument("--max-in-flight", type=int, default=64, help="webhooks.max_in_flight")
    parser.add_argument(
        "--per-host", type=int, default=64, help="webhooks.max_in_flight_per_host (default 64)"
    )
    parser.add_argument("--poll-interval", type=float, default=0.5, help="webhooks.poll_interval")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound of one drain (s)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the workers (unmeasured round)")
    parsed = parser.parse_args()
    quick = parsed.quick
    for name, full, small in (
        ("events", 2000, 150),
        ("rounds", 2, 1),
        ("latency_events", 200, 30),
        ("fanout", 1000, 250),
        ("fanout_rounds", 3, 1),
        ("backlog", 100_000, 2_000),
    ):
        if getattr(parsed, name) is None:
            setattr(parsed, name, small if quick else full)
    if parsed.profile:
        Path(parsed.profile).mkdir(parents=True, exist_ok=True)
    sys.exit(main(parsed))
