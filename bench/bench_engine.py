"""The delivery engine's own costs (issue 10), against plain httpx in the same run.

    python bench/bench_engine.py [--events 300] [--webhooks 10] [--writes 100]
                                 [--only drain e2e load] [--load-seconds 60] [--writers 20]

Every delivery goes to ``fast_receiver.py`` in a child process (stdlib asyncio,
HTTP/1.1 keep-alive, TCP_NODELAY), so the receiver's CPU is not this
process's, and the wire is cheap. Sections:

- ``drain``: ``--events`` events x ``--webhooks`` webhooks (signed) recorded
  with the worker stopped; then the worker starts and drains them. Engine CPU
  per delivery = this process's CPU per delivery while it drains, minus plain
  httpx's CPU per request replaying the same bodies (signed the same way) to
  the same receiver at the same concurrency (``max_in_flight_per_host``, 8);
  drain rate as a share of plain httpx's rate.
- ``e2e``: one webhook; ``--writes`` sequential ``write_array`` calls.
  End-to-end = call start -> the receiver has read the POST; notify lag =
  call return -> the same; beside it, the p50 of one plain httpx POST to the
  same receiver.
- ``load``: a ``hookbook serve`` process on SQLite with 2 webhooks, and
  ``--writers`` threads writing containers as fast as they can for
  ``--load-seconds``: writes/s, acknowledgement -> delivery p50 / p95 / max,
  and how long the outbox takes to drain after the load stops.

Ratios within one run are what to compare on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import p50, p95, quiet_logs  # noqa: E402
from _targets import replay  # noqa: E402

from hookbook.client import from_uri  # noqa: E402
from hookbook.db import event_log  # noqa: E402
from hookbook.server import SimpleServer  # noqa: E402
from hookbook.signing import sign_headers  # noqa: E402

SECRET = "bench-secret"


class FastReceiver:
    """``fast_receiver.py`` in a child process."""

    def __init__(self, keep_bodies: bool = False) -> None:
        args = [sys.executable, str(HERE / "fast_receiver.py")]
        if keep_bodies:
            args.append("--keep-bodies")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.port = int(line.rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def stats(self, arrivals: bool = False) -> dict[str, Any]:
        query = "?arrivals=1" if arrivals else ""
        return httpx.get(f"{self.base}/_stats{query}", timeout=30).json()

    def reset(self) -> None:
        httpx.post(f"{self.base}/_reset", timeout=30)

    def wait_distinct(self, n: int, timeout: float = 600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["distinct"] >= n:
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"{stats['distinct']} of {n} deliveries")
            time.sleep(0.05)  # each look costs this process CPU: not too often

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def cpu() -> float:
    return time.process_time()


# ---- drain -----------------------------------------------------------------------


def replay_cpu(
    requests: list[tuple[str, bytes, dict[str, str]]], concurrency: int
) -> tuple[float, float]:
    """Plain httpx (:func:`_targets.replay`): POST every request, ``concurrency`` at a
    time, keep-alive. Returns (seconds, CPU seconds) of this process."""
    replay(requests[:1], 1)  # warm the server's side of the path
    start_cpu = cpu()
    seconds = replay(requests, concurrency)
    return seconds, cpu() - start_cpu


def bench_drain(args: argparse.Namespace, receiver: FastReceiver) -> dict[str, float]:
    with SimpleServer(webhooks={}) as server, from_uri(server.uri) as client:
        services = server.app.state.services
        urls = [f"{receiver.base}/h{i}" for i in range(args.webhooks)]
        for url in urls:
            client.webhooks.register(url, secret=SECRET)
        # Warm-up: connections, caches.
        client.create_container("warm")
        receiver.wait_distinct(args.webhooks)
        server.drain()
        worker = services.worker
        server.run(worker.stop())

        async def record() -> None:
            for i in range(args.events):
                await services.store.create("", f"e{i}", "container")

        server.run(record(), timeout=600)
        receiver.reset()
        total = args.events * args.webhooks
        start, start_cpu = time.perf_counter(), cpu()
        server.run(worker.start())
        stats = receiver.wait_distinct(total)
        arrived = stats["last_new"]
        server.drain(timeout=600)
        engine_seconds = time.time() - (time.time() - (time.perf_counter() - start))
        engine_cpu = cpu() - start_cpu
        wall = arrived - (time.time() - (time.perf_counter() - start))

        async def bodies() -> list[str]:
            async with services.db.read() as conn:
                return list(
                    (await conn.execute(sa.select(event_log.c.body).where(event_log.c.type != "x")))
                    .scalars()
                    .all()
                )

        all_bodies = server.run(bodies())[-args.events :]
    requests = []
    for i, body in enumerate(all_bodies):
        raw = body.encode()
        for url in urls:
            event_id = f"{i:016x}{hash(url) & 0xFFFFFFFF:016x}"
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "bench",
                "X-Tiled-Event-ID": event_id,
                **sign_headers(raw, SECRET, event_id),
            }
            requests.append((url, raw, headers))
    httpx_seconds, httpx_cpu = replay_cpu(requests, 8)
    n = len(requests)
    del engine_seconds
    return {
        "deliveries": total,
        "engine_rate": total / wall,
        "engine_cpu_ms": engine_cpu / total * 1000,
        "httpx_rate": n / httpx_seconds,
        "httpx_cpu_ms": httpx_cpu / n * 1000,
    }


# ---- e2e -------------------------------------------------------------------------


def bench_e2e(args: argparse.Namespace, receiver: FastReceiver) -> dict[str, float]:
    with SimpleServer(webhooks={}) as server, from_uri(server.uri) as client:
        client.webhooks.register(f"{receiver.base}/e2e", secret=SECRET)
        for i in range(5):
            client.write_array(np.arange(3.0), key=f"warm{i}")
        receiver.wait_distinct(5)
        server.drain()
        receiver.reset()
        calls: list[tuple[float, float]] = []
        for i in range(args.writes):
            before = time.time()
            client.write_array(np.arange(3.0), key=f"w{i}")
            calls.append((before, time.time()))
            receiver.wait_distinct(i + 1, timeout=30)
        arrivals = sorted(a[1] for a in receiver.stats(arrivals=True)["arrivals"])
    e2e = [(a - b) * 1000 for (b, _), a in zip(calls, arrivals, strict=True)]
    lag = [(a - r) * 1000 for (_, r), a in zip(calls, arrivals, strict=True)]
    with httpx.Client(trust_env=False) as http:
        http.post(f"{receiver.base}/plain", content=b"{}")
        posts = []
        for _ in range(args.writes):
            t = time.perf_counter()
            http.post(f"{receiver.base}/plain", content=b'{"k": 1}')
            posts.append((time.perf_counter() - t) * 1000)
    return {
        "e2e_p50": p50(e2e),
        "e2e_p95": p95(e2e),
        "lag_p50": p50(lag),
        "lag_p95": p95(lag),
        "post_p50": p50(posts),
    }


# ---- load ------------------------------------------------------------------------


def bench_load(
    args: argparse.Namespace, receiver: FastReceiver, python: str = sys.executable
) -> dict[str, float]:
    import socket

    import yaml

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        key = "bench_api_key_0123"
        config = Path(tmp) / "config.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "directory": str(Path(tmp) / "data"),
                    "api_keys": [{"key": key}],
                    "webhooks": {
                        "secret_keys": ["k" * 32],
                        "allow_http": True,
                        "allow_private_addresses": True,
                    },
                }
            )
        )
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [
                python,
                "-m",
                "hookbook.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}/api/v1"
        headers = {"Authorization": f"Apikey {key}"}
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError("server did not start")
                time.sleep(0.1)
            for i in range(2):
                r = httpx.post(
                    f"{base}/webhooks/target/",
                    json={"url": f"{receiver.base}/load{i}"},
                    headers=headers,
                )
                r.raise_for_status()
            receiver.reset()
            acks: dict[str, float] = {}
            stop_at = time.monotonic() + args.load_seconds
            counter = iter(range(10**9))
            lock = threading.Lock()

            def writer() -> None:
                body = {
                    "structure_family": "container",
                    "metadata": {},
                    "specs": [],
                    "data_sources": [],
                }
                with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                    while time.monotonic() < stop_at:
                        with lock:
                            key = f"k{next(counter)}"
                        r = http.post("metadata/", json={**body, "id": key})
                        if r.status_code == 200:
                            acks[key] = time.time()

            stat_before = _proc_cpu(proc.pid)
            start = time.time()
            threads = [threading.Thread(target=writer) for _ in range(args.writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            load_end = time.time()
            server_cpu = _proc_cpu(proc.pid) - stat_before
            expected = 2 * len(acks)
            stats = receiver.wait_distinct(expected, timeout=600)
            arrivals = receiver.stats(arrivals=True)["arrivals"]
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
    ack_to_delivery = [
        (arrival - acks[key.split("/")[-1]]) * 1000
        for _, arrival, _, key in arrivals
        if key and key.split("/")[-1] in acks
    ]
    return {
        "writes": len(acks),
        "writes_per_s": len(acks) / (load_end - start),
        "server_cpu_per_write_ms": server_cpu / len(acks) * 1000,
        "ack_p50": p50(ack_to_delivery),
        "ack_p95": p95(ack_to_delivery),
        "ack_max": max(ack_to_delivery),
        "drain_after_s": max(0.0, stats["last_new"] - load_end),
    }


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--only", nargs="*", default=["drain", "e2e", "load"])
    parser.add_argument(
        "--baseline-rounds",
        type=int,
        default=0,
        help="load: also run hookbook at the baseline commit (bench/_envs.py), alternating, "
        "this many rounds each",
    )
    args = parser.parse_args()
    quiet_logs()
    results: dict[str, Any] = {"load_average_start": os.getloadavg()[0]}
    receiver = FastReceiver(keep_bodies=True)
    try:
        if "drain" in args.only:
            results["drain"] = bench_drain(args, receiver)
            d = results["drain"]
            d["engine_cpu_beyond_httpx_ms"] = d["engine_cpu_ms"] - d["httpx_cpu_ms"]
            d["share_of_httpx"] = d["engine_rate"] / d["httpx_rate"]
        if "e2e" in args.only:
            results["e2e"] = bench_e2e(args, receiver)
            results["e2e"]["lag_over_post"] = results["e2e"]["lag_p50"] / results["e2e"]["post_p50"]
        if "load" in args.only and args.baseline_rounds:
            from _envs import BASELINE, baseline_python

            pythons = {"current": sys.executable, f"baseline {BASELINE}": str(baseline_python())}
            for round_ in range(1, args.baseline_rounds + 1):
                for name, python in pythons.items():
                    results[f"load round {round_}, {name}"] = bench_load(args, receiver, python)
        elif "load" in args.only:
            results["load"] = bench_load(args, receiver)
    finally:
        receiver.close()
    results["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
