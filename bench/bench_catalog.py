"""Catalog benchmark (issue 2): SimpleServer start-up and close, write and read latency.

    python bench/bench_catalog.py            # full run, about 1 minute
    python bench/bench_catalog.py --quick    # about 20 s

Measures, each after a warm-up that is not counted:

- start-up: ``SimpleServer()`` until a first ``GET /api/v1/`` answers 200
  (median of 15; target < 0.5 s; Tiled's SimpleTiledServer: 5-8 s), with and
  without webhooks; and once in a fresh interpreter (imports included);
- close: ``server.close()`` (target < 0.2 s);
- ``write_array`` latency, p50 and p95, for a small array (3 float64; target
  p50 < 10 ms; Tiled about 94 ms) and a 1 MiB array, and where that time goes
  (the client's HTTP requests, one by one);
- read latency (``node.read()``, and ``client[key].read()`` which also looks
  the node up), small and 1 MiB.

Everything runs in this process, on 127.0.0.1: the client on the main thread,
the server on its own thread, as a tutorial or a test uses them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import numpy as np
from _common import (
    Row,
    Timing,
    add_common_arguments,
    console,
    ms,
    p50,
    p95,
    quiet_logs,
    report,
    secs,
    time_calls,
)

from hookbook.client import from_uri
from hookbook.server import SimpleServer

SMALL = np.array([1.0, 2.0, 3.0])
ONE_MB = np.random.default_rng(0).random(128 * 1024)  # 128 Ki float64 = 1 MiB

_COLD_START = r"""
import json, time
t0 = time.perf_counter()
import httpx
from hookbook.server import SimpleServer
t1 = time.perf_counter()
server = SimpleServer()
t2 = time.perf_counter()
r = httpx.get(server.base_url + "/api/v1/", headers={"Authorization": "Apikey " + server.api_key})
r.raise_for_status()
t3 = time.perf_counter()
server.close()
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "start": t3 - t1, "total": t3 - t0, "close": t4 - t3}))
"""


# ---- start-up and close -------------------------------------------------------


def first_request(http: httpx.Client, server: SimpleServer, timeout: float = 10.0) -> None:
    """GET /api/v1/ until it answers 200 (bounded)."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Apikey {server.api_key}"}
    while True:
        try:
            if http.get(f"{server.base_url}/api/v1/", headers=headers).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{server!r} did not answer within {timeout} s")
        time.sleep(0.001)


def start_stop(repeat: int, warmup: int, **kwargs: object) -> tuple[list[float], list[float]]:
    starts: list[float] = []
    closes: list[float] = []
    with httpx.Client(trust_env=False) as http:
        for i in range(warmup + repeat):
            t0 = time.perf_counter()
            server = SimpleServer(**kwargs)  # type: ignore[arg-type]
            try:
                first_request(http, server)
                t1 = time.perf_counter()
            finally:
                server.close()
            t2 = time.perf_counter()
            if i >= warmup:
                starts.append(t1 - t0)
                closes.append(t2 - t1)
    return starts, closes


def cold_start(repeat: int) -> list[dict[str, float]]:
    results = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", _COLD_START],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


# ---- write and read ---------------------------------------------------------


class RequestTimer:
    """Times each HTTP request a client makes, grouped by method and route."""

    def __init__(self, client: object) -> None:
        self.transport = client._transport  # type: ignore[attr-defined]
        self.original = self.transport.request
        self.times: dict[str, list[float]] = defaultdict(list)
        self.enabled = False

        def timed(method: str, route: str, **kwargs: object) -> httpx.Response:
            start = time.perf_counter()
            try:
                return self.original(method, route, **kwargs)
            finally:
                if self.enabled:
                    name = route.split("?")[0].split("/api/v1/")[-1].split("/")[0]
                    self.times[f"{method} /{name}/..."].append(time.perf_counter() - start)

        self.transport.request = timed


def main(args: argparse.Namespace) -> None:
    quick = args.quick
    n_start = 5 if quick else 15
    n_small = 40 if quick else 200
    n_big = 10 if quick else 50
    rows: list[Row] = []

    console.print(f"[bold]start-up and close[/bold]: {n_start} each, after 2 warm-ups")
    starts, closes = start_stop(n_start, 2)
    hook_starts, hook_closes = start_stop(n_start, 1, enable_webhooks=True)
    cold = cold_start(1 if quick else 3)
    rows += [
        Row(
            "SimpleServer() -> first request OK, median",
            secs(p50(starts)),
            "< 0.5 s",
            "5-8 s",
            p50(starts) < 0.5,
            note=f"n={len(starts)}, max {secs(max(starts))}",
        ),
        Row(
            "  same, enable_webhooks=True, median",
            secs(p50(hook_starts)),
            "< 0.5 s",
            "5-8 s",
            p50(hook_starts) < 0.5,
            note=f"n={len(hook_starts)}, max {secs(max(hook_starts))}",
        ),
        Row(
            "  fresh interpreter: import + start + first request",
            secs(p50([c["total"] for c in cold])),
            "",
            "",
            None,
            note=f"import {secs(p50([c['import'] for c in cold]))}, "
            f"start {secs(p50([c['start'] for c in cold]))}, n={len(cold)}",
        ),
        Row(
            "close(), median",
            secs(p50(closes)),
            "< 0.2 s",
            "",
            p50(closes) < 0.2,
            note=f"max {secs(max(closes))}",
        ),
        Row(
            "  same, enable_webhooks=True, median",
            secs(p50(hook_closes)),
            "< 0.2 s",
            "",
            p50(hook_closes) < 0.2,
            note=f"max {secs(max(hook_closes))}",
        ),
    ]

    console.print(
        f"[bold]write/read[/bold]: small x{n_small}, 1 MiB x{n_big}, after warm-ups",
    )
    breakdown: dict[str, list[float]] = {}
    with SimpleServer() as server, from_uri(server.uri) as client:
        timer = RequestTimer(client)
        client.keys()

        def write_small(i: int) -> None:
            client.write_array(SMALL, key=f"small{i}")

        def write_big(i: int) -> None:
            client.write_array(ONE_MB, key=f"big{i}")

        time_calls(write_small, repeat=10)  # warm-up, not counted
        timer.enabled = True
        w_small = time_calls(lambda i: write_small(i + 10), repeat=n_small, budget=120)
        timer.enabled = False
        breakdown = dict(timer.times)
        w_big = time_calls(write_big, repeat=n_big, warmup=3, budget=120)

        small_node = client["small0"]
        big_node = client["big0"]
        assert np.array_equal(small_node.read(), SMALL)
        assert np.array_equal(big_node.read(), ONE_MB)
        r_small = time_calls(lambda i: small_node.read(), repeat=n_small, warmup=10, budget=60)
        r_big = time_calls(lambda i: big_node.read(), repeat=n_big, warmup=3, budget=60)
        lookups = time_calls(
            lambda i: client[f"small{max(i, 0) % n_small}"].read(),
            repeat=n_small,
            warmup=5,
            budget=60,
        )

    def latency(name: str, values: Timing, target: str = "", tiled: str = "", ok=None):
        return Row(
            name,
            f"{ms(p50(values))} / {ms(p95(values))}",
            target,
            tiled,
            ok,
            note=f"n={len(values)}, CPU {ms(values.cpu)} per call",
        )

    rows += [
        latency(
            "write_array small (3 x float64), p50 / p95",
            w_small,
            "p50 < 10 ms",
            "~94 ms",
            p50(w_small) < 0.010,
        ),
        latency("write_array 1 MiB, p50 / p95", w_big),
        latency("node.read() small, p50 / p95", r_small),
        latency("node.read() 1 MiB, p50 / p95", r_big),
        latency("client[key].read() small (lookup + read), p50 / p95", lookups),
    ]
    notes = [
        "write_array's HTTP requests (the event is recorded by the data upload), p50 each: "
        + ", ".join(
            f"{name} {ms(p50(v))} (x{len(v) / len(w_small):g})" for name, v in breakdown.items()
        ),
        "SQLite in a temporary directory; client, server and (elsewhere) receiver share "
        "one process and its GIL.",
    ]
    report("hookbook catalog benchmark (issue 2)", rows, args, notes=notes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    quiet_logs()
    main(parser.parse_args())
