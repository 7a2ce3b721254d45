"""One target's side of ``compare_delivery.py``: runs inside that target's interpreter.

    python bench/_delivery_driver.py SPEC.json RESULT.json

``SPEC`` names the target's kind (``tiled`` or ``hookbook``), the workload and
its sizes; the measurements go to ``RESULT`` as JSON (times in seconds).
Progress goes to stdout. Each target is driven through its own public
Python API only:

- Tiled 0.2.20: ``tiled.server.SimpleTiledServer(enable_webhooks=True)``
  (which accepts http and loopback targets), its client's ``write_array``,
  and the webhook route ``POST /api/v1/webhooks/target/`` with httpx (Tiled's
  client has no webhook methods). This file imports only tiled, numpy, httpx
  and the standard library there: Tiled's venv has no hookbook.
- hookbook (any commit): ``SimpleServer(enable_webhooks=True)``,
  ``from_uri``, ``client.webhooks.register`` and ``write_array``; and
  ``hookbook serve --config`` (``run_worker: false`` to write a backlog with
  no worker running) for the backlog and load workloads. Nothing of the
  engine's internals, so it runs against the baseline and newer code alike.

Workloads (every webhook is registered on the root, with a signing secret,
at its own path on one receiver; every write is ``write_array`` of 3
float64 values under a new key):

- ``e2e``: 1 webhook, then 10: sequential writes, each waiting for its
  deliveries before the next: end-to-end (write call start -> receiver has
  read the POST) and notify lag (write returned -> receiver has read it).
  Receiver in this process.
- ``writes``: for the receiver in this process and in a child process, a
  fresh server: writes with no webhook, then 10 webhooks and writes without
  waiting for deliveries: ``write_array`` p50 of both, and deliveries/s
  (first write's start -> last delivery read).
- ``backlog`` (hookbook): events x 10 webhooks written through an HTTP-only
  ``hookbook serve`` (``run_worker: false``); then a ``hookbook serve`` with
  the worker drains them; then plain httpx replays the same requests (bodies
  and headers) to the same receiver, as many at a time as the engine had
  connections open, in a fresh process.
- ``load`` (hookbook): one ``hookbook serve`` (SQLite, 2 webhooks), N
  threads each writing with its own client for S seconds: acknowledgement
  (write returned) -> delivery read, the outbox drain after the load stops,
  writes/s.

Every workload also measures the wire bound with its receiver(s):
``_targets.wire_bound``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _targets import (
    Arrival,
    ChildReceiver,
    Serve,
    ThreadReceiver,
    bounded_poll,
    median,
    percentile,
    replay_in_child,
    wire_bound,
)

SECRET = "bench-secret"
API_KEY = "bench_compare_key"
SMALL = np.array([1.0, 2.0, 3.0])
WAIT = 60.0  # seconds: the longest wait for one write's deliveries


def say(message: str) -> None:
    print(f"    [{os.path.basename(sys.executable)} {os.getpid()}] {message}", flush=True)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": median(values),
        "p95": percentile(values, 95),
        "max": max(values, default=float("nan")),
        "n": len(values),
    }


def duplicates(arrivals: list[Arrival]) -> int:
    ids = [a.event_id for a in arrivals if a.event_id is not None]
    return len(ids) - len(set(ids))


# ---- the two harnesses ---------------------------------------------------------------


class TiledHarness:
    """``SimpleTiledServer(enable_webhooks=True)`` and Tiled's own client."""

    def __init__(self) -> None:
        import httpx
        from tiled.client import from_uri
        from tiled.server import SimpleTiledServer

        self.server = SimpleTiledServer(enable_webhooks=True)
        self.client = from_uri(self.server.uri)
        base = self.server.uri.split("/api/v1")[0]
        self.http = httpx.Client(
            base_url=f"{base}/api/v1",
            headers={"Authorization": f"Apikey {self.server.api_key}"},
            trust_env=False,
            timeout=30,
        )

    def register(self, url: str) -> None:
        response = self.http.post("webhooks/target/", json={"url": url, "secret": SECRET})
        if response.status_code != 200:
            raise RuntimeError(f"register {url}: {response.status_code} {response.text}")

    def write(self, key: str) -> None:
        self.client.write_array(SMALL, key=key)

    def close(self) -> None:
        self.http.close()
        with contextlib.suppress(Exception):
            self.client.context.close()
        self.server.close()


class HookbookHarness:
    """``SimpleServer(enable_webhooks=True)`` and hookbook's own client."""

    def __init__(self) -> None:
        from hookbook.client import from_uri
        from hookbook.server import SimpleServer

        self.server = SimpleServer(enable_webhooks=True)
        self.client = from_uri(self.server.uri)

    def register(self, url: str) -> None:
        self.client.webhooks.register(url, secret=SECRET)

    def write(self, key: str) -> None:
        self.client.write_array(SMALL, key=key)

    def close(self) -> None:
        self.client.close()
        self.server.close()


def harness(kind: str) -> Any:
    return TiledHarness() if kind == "tiled" else HookbookHarness()


def quiet() -> None:
    import logging

    for name in ("hookbook", "uvicorn", "httpx", "tiled"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ---- e2e --------------------------------------------------------------------------


def e2e(spec: dict[str, Any]) -> dict[str, Any]:
    n, warmup = spec["writes"], spec["warmup"]
    out: dict[str, Any] = {}
    with ThreadReceiver() as receiver:
        out["wire"] = wire_bound(receiver)
        h = harness(spec["target"])
        try:
            registered = 0
            for hooks in (1, 10):
                while registered < hooks:
                    h.register(receiver.url_for(f"/h{registered}"))
                    registered += 1
                say(f"e2e: {hooks} webhook(s), {n} writes")
                end_to_end, lag, last_of_write, strays = [], [], [], 0
                mark = receiver.count
                for i in range(warmup + n):
                    key = f"e{hooks}-{i}"
                    start = time.time()
                    h.write(key)
                    returned = time.time()
                    receiver.wait_for(mark + hooks, timeout=WAIT)
                    arrivals = receiver.since(mark)
                    mark += len(arrivals)
                    strays += sum(1 for a in arrivals if a.key() != key)
                    if i >= warmup:
                        end_to_end += [a.at - start for a in arrivals]
                        lag += [a.at - returned for a in arrivals]
                        last_of_write.append(max(a.at for a in arrivals) - start)
                out[f"hooks{hooks}"] = {
                    "e2e": summary(end_to_end),
                    "lag": summary(lag),
                    "last": summary(last_of_write),
                    "early": sum(1 for x in lag if x < 0) / max(1, len(lag)),
                    "strays": strays,
                }
            arrivals = receiver.since(0)
            out["duplicates"] = duplicates(arrivals)
        finally:
            h.close()
    return out


# ---- writes -------------------------------------------------------------------------


def timed_writes(h: Any, prefix: str, n: int) -> tuple[list[float], float, float]:
    """``n`` writes; their durations, the wall-clock start, and this process's CPU."""
    durations = []
    cpu = time.process_time()
    start = time.time()
    for i in range(n):
        t0 = time.perf_counter()
        h.write(f"{prefix}{i}")
        durations.append(time.perf_counter() - t0)
    return durations, start, time.process_time() - cpu


def writes(spec: dict[str, Any]) -> dict[str, Any]:
    n, warmup, hooks = spec["writes"], spec["warmup"], 10
    out: dict[str, Any] = {}
    for placement, make in (("thread", ThreadReceiver), ("process", ChildReceiver)):
        with make() as receiver:
            result: dict[str, Any] = {"wire": wire_bound(receiver)}
            h = harness(spec["target"])
            try:
                timed_writes(h, "warm0-", warmup)
                say(f"writes ({receiver.placement}): {n} with no webhook")
                durations, _, cpu = timed_writes(h, "w0-", n)
                result["none"] = {**summary(durations), "cpu": cpu / n}
                for i in range(hooks):
                    h.register(receiver.url_for(f"/h{i}"))
                mark = receiver.count
                timed_writes(h, "warm10-", warmup)
                receiver.wait_for(mark + warmup * hooks, timeout=WAIT)
                say(f"writes ({receiver.placement}): {n} with {hooks} webhooks")
                mark = receiver.count
                cpu_start = time.process_time()
                durations, start, _ = timed_writes(h, "w10-", n)
                receiver.wait_for(mark + n * hooks, timeout=max(120.0, n * hooks / 10))
                cpu = time.process_time() - cpu_start
                arrivals = receiver.since(mark)
                last = max(a.at for a in arrivals)
                result["hooks10"] = {**summary(durations), "cpu": cpu / n}
                result["rate"] = len(arrivals) / (last - start)
                result["deliveries"] = len(arrivals)
                result["duplicates"] = duplicates(arrivals)
                result["receiver_cpu"] = receiver.cpu()
            finally:
                h.close()
        out[placement] = result
    return out


# ---- hookbook serve: backlog and load ------------------------------------------------


def serve_config(directory: Path, name: str, *, run_worker: bool) -> Path:
    """A ``hookbook serve`` config (JSON is YAML) on SQLite in ``directory``."""
    config = {
        "directory": str(directory / "data"),
        "api_keys": [{"key": API_KEY, "scopes": ["admin"]}],
        "run_worker": run_worker,
        "webhooks": {
            "secret_keys": ["bench-compare-secret-key"],
            "allow_http": True,
            "allow_private_addresses": True,
        },
    }
    path = directory / f"{name}.yml"
    path.write_text(json.dumps(config))
    return path


def settled(client: Any, hook_ids: list[int]) -> bool:
    """No delivery of these webhooks is pending (public history API)."""
    return all(not client.webhooks.history(h, outcome="pending", limit=1) for h in hook_ids)


def backlog(spec: dict[str, Any]) -> dict[str, Any]:
    from hookbook.client import from_uri

    n_events, hooks = spec["events"], 10
    total = n_events * hooks
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp, ChildReceiver() as receiver:
        root = Path(tmp)
        out["wire"] = wire_bound(receiver)
        with Serve(serve_config(root, "http-only", run_worker=False), api_key=API_KEY) as s:
            s.wait_ready()
            with from_uri(s.uri) as client:
                ids = [
                    client.webhooks.register(receiver.url_for(f"/b{i}"), secret=SECRET).id
                    for i in range(hooks)
                ]
                say(f"backlog: writing {n_events} events x {hooks} webhooks, no worker")
                t0 = time.monotonic()
                for i in range(n_events):
                    client.write_array(SMALL, key=f"b{i}")
                out["write_seconds"] = time.monotonic() - t0
        mark = receiver.count
        say("backlog: draining")
        with Serve(serve_config(root, "full", run_worker=True), api_key=API_KEY) as s:
            first: tuple[int, float] | None = None

            def drained() -> bool:
                nonlocal first
                count, cpu = receiver.count - mark, s.cpu()
                if first is None and count > 0:
                    first = (count, cpu)
                return count >= total

            bounded_poll(drained, timeout=max(300.0, total / 10), interval=0.05, what="the drain")
            s.wait_ready()
            with from_uri(s.uri) as client:
                bounded_poll(lambda: settled(client, ids), timeout=120, interval=0.2, what="settle")
            assert first is not None
            out["engine_cpu"] = (s.cpu() - first[1]) / (total - first[0])
        arrivals = receiver.since(mark)
        out["rate"] = (len(arrivals) - 1) / (arrivals[-1].at - arrivals[0].at)
        out["deliveries"] = len(arrivals)
        out["duplicates"] = duplicates(arrivals)
        concurrency = max(a.connections for a in arrivals)
        out["concurrency"] = concurrency
        requests = [(receiver.url_for(a.path), a.body, a.headers) for a in arrivals]
        say(
            f"backlog: replaying {len(requests)} requests with plain httpx, {concurrency} at a time"
        )
        mark = receiver.count
        replayed = replay_in_child(requests, concurrency)
        again = receiver.since(mark)
        out["replay_rate"] = (len(again) - 1) / (again[-1].at - again[0].at)
        out["replay_cpu"] = replayed["cpu"] / len(requests)
        out["replay_concurrency"] = max(a.connections for a in again)
    return out


def load(spec: dict[str, Any]) -> dict[str, Any]:
    from hookbook.client import from_uri

    seconds, n_writers, hooks = spec["seconds"], spec["writers"], 2
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, ChildReceiver() as receiver:
        out["wire"] = wire_bound(receiver)
        with Serve(serve_config(Path(tmp), "full", run_worker=True), api_key=API_KEY) as s:
            s.wait_ready()
            with from_uri(s.uri) as client:
                for i in range(hooks):
                    client.webhooks.register(receiver.url_for(f"/l{i}"), secret=SECRET)
                mark = receiver.count
                for i in range(5):
                    client.write_array(SMALL, key=f"warm{i}")
                receiver.wait_for(mark + 5 * hooks, timeout=WAIT)
            acks: dict[str, float] = {}
            errors: list[str] = []
            lock = threading.Lock()
            deadline = time.time() + seconds

            def writer(j: int) -> None:
                with from_uri(s.uri) as c:
                    i = 0
                    while time.time() < deadline:
                        key = f"w{j}-{i}"
                        try:
                            c.write_array(SMALL, key=key)
                        except Exception as exc:  # counted and shown, not fatal
                            with lock:
                                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                        else:
                            with lock:
                                acks[key] = time.time()
                        i += 1

            say(f"load: {n_writers} writers for {seconds:g} s, {hooks} webhooks")
            mark = receiver.count
            cpu, own_cpu = s.cpu(), time.process_time()
            start = time.time()
            threads = [threading.Thread(target=writer, args=(j,)) for j in range(n_writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(seconds + 120)
            stopped = time.time()
            out["serve_cpu_share"] = (s.cpu() - cpu) / (stopped - start)
            out["writers_cpu_share"] = (time.process_time() - own_cpu) / (stopped - start)
            expected = len(acks) * hooks
            try:
                receiver.wait_for(mark + expected, timeout=max(120.0, seconds * 2))
            except TimeoutError as exc:
                out["missing"] = str(exc)
        arrivals = [a for a in receiver.since(mark) if a.key() in acks]
    latency = [a.at - acks[str(a.key())] for a in arrivals]
    last = max(a.at for a in arrivals)
    out.update(
        {
            "ack_to_delivery": summary(latency),
            "drain": max(0.0, last - stopped),
            "writes": len(acks),
            "writes_per_s": len(acks) / (stopped - start),
            "errors": len(errors),
            "first_errors": errors[:3],
            "deliveries": len(arrivals),
            "expected": expected,
            "duplicates": duplicates(arrivals),
        }
    )
    return out


WORKLOADS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "e2e": e2e,
    "writes": writes,
    "backlog": backlog,
    "load": load,
}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    quiet()
    load_start = os.getloadavg()[0]
    started = time.monotonic()
    result = WORKLOADS[spec["workload"]](spec)
    result["load_average"] = [load_start, os.getloadavg()[0]]
    result["seconds"] = time.monotonic() - started
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
