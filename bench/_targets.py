"""Pieces of side-by-side benchmarks, shared by every target's interpreter.

A side-by-side benchmark runs the same workload against several *targets*
(the real Tiled, hookbook at a baseline commit, hookbook as checked out),
each in its own interpreter (``_envs.py`` makes their venvs). The parent
starts a *driver* script under each target's interpreter with
:func:`run_driver`; the driver imports this module (so it needs only the
standard library at import time; httpx is imported where it is used, and
every target has it) and measures with:

- the receiver: :class:`ThreadReceiver` (in the driver's process, as a test
  or a notebook runs one) or :class:`ChildReceiver` (a child process, so its
  work does not compete for the driver's GIL). Both are
  ``bench/fast_receiver.py``'s asyncio HTTP/1.1 server: keep-alive,
  ``TCP_NODELAY``, answers ``200`` at once, and records when it has read each
  request (``time.time()``: one clock for every process on the machine),
  with its path, headers and body, and how many connections were open;
- the wire bound, :func:`wire_bound`: the p50 of one plain ``httpx`` POST
  to that receiver, and the CPU it costs;
- :func:`replay`: the same requests POSTed by plain ``httpx``, N at a time
  (in a fresh process: ``python _targets.py replay FILE N``);
- process CPU and memory from ``/proc`` (:func:`proc_cpu`, :func:`proc_rss`,
  :func:`machine_jiffies`);
- :class:`Serve`: a ``hookbook serve --config`` process.

All traffic stays on 127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from fast_receiver import HttpConnection, Recorder  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Headers of a delivery kept by the receivers (and sent again by a replay).
REPLAYED_HEADERS = (
    "content-type",
    "user-agent",
    "x-tiled-event-id",
    "x-tiled-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)


# ---- small helpers ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bounded_poll(
    predicate: Callable[[], Any], *, timeout: float, interval: float, what: str
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; ``TimeoutError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}")
        time.sleep(interval)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100), linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# ---- /proc -----------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid: int) -> int | None:
    """``VmRSS`` of a process, in bytes (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


# ---- targets and their drivers -------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One thing measured: ``kind`` says which driver code applies (``tiled`` or
    ``hookbook``), ``python`` is the interpreter it runs under."""

    name: str
    label: str
    kind: str
    python: Path


class DriverError(RuntimeError):
    """A driver exited with an error (its last lines of output are in the message)."""


def run_driver(
    target: Target, script: Path, spec: dict[str, Any], *, timeout: float
) -> dict[str, Any]:
    """Run ``script SPEC RESULT`` under ``target``'s interpreter, ``spec`` as JSON; return
    the JSON it writes to ``RESULT``. Its output is echoed as it comes (progress);
    ``PYTHONPATH`` is dropped, so a target imports its own packages only."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = "1"
    with tempfile.TemporaryDirectory(prefix="bench-driver-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({**spec, "target": target.kind}))
        proc = subprocess.Popen(
            [str(target.python), str(script), str(spec_path), str(result_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        tail: list[str] = []

        def echo() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(line, end="", flush=True)
                tail[:] = [*tail[-14:], line.rstrip()]

        reader = threading.Thread(target=echo, daemon=True)
        reader.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise DriverError(f"{target.name}: no result within {timeout:g} s") from None
        finally:
            reader.join(10)
        if proc.returncode != 0 or not result_path.exists():
            raise DriverError(f"{target.name}: exit {proc.returncode}\n" + "\n".join(tail))
        return json.loads(result_path.read_text())


# ---- receivers -----------------------------------------------------------------------


class Arrival(NamedTuple):
    """One request the receiver read."""

    at: float  # time.time() once the whole request had been read
    event_id: str | None
    path: str
    connections: int  # connections open at the receiver at that moment
    headers: dict[str, str]  # the REPLAYED_HEADERS it carried
    body: bytes

    def key(self) -> str | None:
        """The catalog path of a delivery's event (``path`` of the JSON body, joined)."""
        try:
            path = json.loads(self.body).get("path")
        except (ValueError, AttributeError):
            return None
        return "/".join(path) if isinstance(path, list) else None


class _Recorder(Recorder):
    """fast_receiver's recorder that also hands each request on, and counts connections."""

    def __init__(self, on_arrival: Callable[[Arrival], None]) -> None:
        super().__init__(keep_bodies=False)
        self.on_arrival = on_arrival
        self.open = 0

    def record(
        self,
        event_id: str | None,
        arrival: float,
        path: str,
        body: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().record(event_id, arrival, path, body, headers)
        kept = {k: v for k, v in (headers or {}).items() if k in REPLAYED_HEADERS}
        self.on_arrival(Arrival(arrival, event_id, path, self.open, kept, body))


class _Connection(HttpConnection):
    recorder: _Recorder

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.recorder.open += 1

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.recorder.open -= 1


async def _listen(recorder: _Recorder, port: int = 0) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Connection(recorder), "127.0.0.1", port, backlog=1024, reuse_address=True
    )


class _Arrivals:
    """What both receivers share: the arrivals so far, waiting on them, URLs."""

    placement = ""
    port: int

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._arrivals: list[Arrival] = []

    def _add(self, arrival: Arrival) -> None:
        with self._cond:
            self._arrivals.append(arrival)
            self._cond.notify_all()

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def count(self) -> int:
        """Requests received so far (a *mark*: ``since(mark)`` gives what came after)."""
        with self._cond:
            return len(self._arrivals)

    def since(self, mark: int) -> list[Arrival]:
        with self._cond:
            return self._arrivals[mark:]

    def wait_for(self, n: int, timeout: float) -> None:
        """Until ``n`` requests in all have arrived; ``TimeoutError`` after ``timeout`` s."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._arrivals) >= n, timeout):
                raise TimeoutError(f"{len(self._arrivals)} of {n} requests in {timeout:g} s")

    def cpu(self) -> float | None:
        """The receiver's own CPU seconds (None: it shares this process)."""
        return None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class ThreadReceiver(_Arrivals):
    """The receiver on an event loop in a thread of this process."""

    placement = "in-process"

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="bench-receiver", daemon=True
        )
        self._thread.start()
        recorder = _Recorder(self._add)
        future = asyncio.run_coroutine_threadsafe(_listen(recorder), self._loop)
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class ChildReceiver(_Arrivals):
    """The receiver in a child process (``python _targets.py receive``), which reports
    each request as a JSON line on its stdout."""

    placement = "child process"

    def __init__(self) -> None:
        super().__init__()
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "receive"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(b"listening "):
            self.proc.kill()
            raise RuntimeError(f"the receiver process did not start: {line!r}")
        self.port = int(line.split()[1])
        self._reader = threading.Thread(target=self._read, name="bench-receiver", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            at, event_id, path, connections, headers, body = json.loads(line)
            self._add(Arrival(at, event_id, path, connections, headers, body.encode()))

    def cpu(self) -> float | None:
        return proc_cpu(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)


def _receive_main() -> None:
    """The child side of :class:`ChildReceiver`."""
    out = sys.stdout

    def report(a: Arrival) -> None:
        line = [
            a.at,
            a.event_id,
            a.path,
            a.connections,
            a.headers,
            a.body.decode("utf-8", "replace"),
        ]
        out.write(json.dumps(line) + "\n")
        out.flush()

    async def main() -> None:
        server = await _listen(_Recorder(report))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        out.write(f"listening {server.sockets[0].getsockname()[1]}\n")
        out.flush()
        async with server:
            await stop.wait()

    asyncio.run(main())


# ---- the wire bound, and a replay -------------------------------------------------------

#: A body like a delivery's (a ``container-child-created`` event for an array).
SAMPLE_BODY = json.dumps(
    {
        "type": "container-child-created",
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "key": "wire",
        "path": ["wire"],
        "structure_family": "array",
        "specs": [],
        "metadata": {},
    }
).encode()


def wire_bound(receiver: _Arrivals, *, n: int = 200, warmup: int = 20) -> dict[str, float]:
    """The p50 (and p95) of one plain ``httpx.AsyncClient`` POST (keep-alive, one at a
    time) of :data:`SAMPLE_BODY` to ``receiver``, and this process's CPU per POST
    (sender, plus the receiver when it runs in this process)."""
    import httpx

    url = receiver.url_for("/wire")
    headers = {"Content-Type": "application/json"}

    async def go() -> tuple[list[float], float]:
        async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
            for _ in range(warmup):
                (await http.post(url, content=SAMPLE_BODY, headers=headers)).raise_for_status()
            durations = []
            cpu = time.process_time()
            for i in range(n):
                start = time.perf_counter()
                response = await http.post(
                    url, content=SAMPLE_BODY, headers={**headers, "X-Tiled-Event-ID": f"wire{i}"}
                )
                durations.append(time.perf_counter() - start)
                response.raise_for_status()
            return durations, (time.process_time() - cpu) / n

    durations, cpu = asyncio.run(go())
    return {
        "p50": median(durations),
        "p95": percentile(durations, 95),
        "cpu": cpu,
        "n": n,
        "placement": receiver.placement,
    }


Request = tuple[str, bytes, dict[str, str]]


def replay(requests: Sequence[Request], concurrency: int, *, timeout: float = 600) -> float:
    """POST every (url, body, headers) with plain ``httpx.AsyncClient`` (keep-alive),
    ``concurrency`` at a time; return the elapsed seconds. Raises on a non-2xx answer."""
    import httpx

    async def run() -> float:
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for item in requests:
            queue.put_nowait(item)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=30) as http:

            async def worker() -> None:
                while not queue.empty():
                    url, body, headers = queue.get_nowait()
                    response = await http.post(url, content=body, headers=headers)
                    response.raise_for_status()

            start = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout)
            return time.perf_counter() - start

    return asyncio.run(run())


def replay_in_child(
    requests: Sequence[Request], concurrency: int, *, timeout: float = 600
) -> dict[str, float]:
    """:func:`replay` in a fresh process of this interpreter, whose only work it is:
    returns ``elapsed`` and ``cpu`` (that process's CPU seconds for the replay)."""
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        path = Path(tmp) / "requests.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            for url, body, headers in requests:
                fh.write(json.dumps([url, body.decode("utf-8", "replace"), headers]) + "\n")
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "replay", str(path), str(concurrency)],
            capture_output=True,
            text=True,
            timeout=timeout + 60,
            check=True,
        ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _replay_main(path: str, concurrency: str) -> None:
    import httpx  # noqa: F401 - imported before the CPU count starts

    with open(path, encoding="utf-8") as fh:
        requests = [(url, body.encode(), headers) for url, body, headers in map(json.loads, fh)]
    cpu = time.process_time()
    elapsed = replay(requests, int(concurrency))
    print(json.dumps({"elapsed": elapsed, "cpu": time.process_time() - cpu}))


# ---- hookbook serve ----------------------------------------------------------------


class Serve:
    """``hookbook serve --config F --port P [--worker-only]`` as a child process of this
    interpreter (so of the hookbook installed in it); its output goes to a log file
    beside the config."""

    def __init__(self, config: Path, *, api_key: str, worker_only: bool = False) -> None:
        self.port = free_port()
        self.api_key = api_key
        self.worker_only = worker_only
        kind = "worker" if worker_only else "serve"
        self.log = config.with_name(f"{kind}-{self.port}.log")
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        args = ["--worker-only"] if worker_only else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hookbook.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(self.port),
                *args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.uri = f"{self.base_url}/api/v1?api_key={api_key}"
        self.pid = self.proc.pid

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-3000:]

    def _ready(self) -> bool:
        import httpx

        if self.proc.poll() is not None:
            raise RuntimeError(
                f"hookbook serve exited with {self.proc.returncode}:\n{self.output()}"
            )
        if self.worker_only:
            return "delivery worker running" in self.log.read_text(errors="replace")
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> Serve:
        try:
            bounded_poll(self._ready, timeout=timeout, interval=0.05, what="hookbook serve")
        except TimeoutError:
            raise TimeoutError(f"not ready in {timeout:g} s:\n{self.output()}") from None
        return self

    def client(self) -> Any:
        """A plain ``httpx.Client`` on ``/api/v1`` with the API key."""
        import httpx

        return httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Apikey {self.api_key}"},
            timeout=60,
            trust_env=False,
        )

    def rss(self) -> int | None:
        return proc_rss(self.pid)

    def cpu(self) -> float:
        return proc_cpu(self.pid)

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log_file.close()


@contextlib.contextmanager
def running(
    config: Path, n: int, *, api_key: str, worker_only: bool, timeout: float = 120.0
) -> Iterator[list[Serve]]:
    """Start ``n`` processes (all at once), wait until each is ready, stop them all after."""
    procs: list[Serve] = []
    try:
        for _ in range(n):
            procs.append(Serve(config, api_key=api_key, worker_only=worker_only))
        for p in procs:
            p.wait_ready(timeout)
        yield procs
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"]:
        _receive_main()
    elif sys.argv[1:2] == ["replay"] and len(sys.argv) == 4:
        _replay_main(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: _targets.py receive | _targets.py replay FILE CONCURRENCY")
