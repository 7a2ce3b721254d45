"""CPU per POST: httpx against aiohttp, the same requests to the same receiver.

    python bench/bench_http_clients.py [--requests 3000] [--rounds 3] [--concurrency 1 8]

The receiver is ``fast_receiver.py`` in a child process (keep-alive,
TCP_NODELAY), so this process's CPU time is the client's alone. Each client
sends the same signed JSON body (the size of a typical event) with the
headers a delivery carries, keep-alive, ``concurrency`` requests at a time
over as many connections, reading each response in full; the clients
alternate in every round, and the table shows each round and the median.
Used to decide which HTTP client the delivery worker uses (issue 10: keep
httpx unless the other is at least 1.5x cheaper).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from hookbook.signing import sign_headers  # noqa: E402

BODY = json.dumps(
    {
        "type": "container-child-created",
        "timestamp": "2026-12-06T12:00:00.000000Z",
        "key": "temperature",
        "path": ["run1", "temperature"],
        "structure_family": "array",
        "specs": [],
        "metadata": {"units": "K", "sample": "A-17", "operator": "someone"},
    }
).encode()
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "hookbook/bench",
    "X-Tiled-Event-ID": "0" * 32,
    **sign_headers(BODY, "bench-secret", "0" * 32),
}


async def with_httpx(url: str, n: int, concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one() -> None:
            response = await client.post(url, content=BODY, headers=HEADERS)
            response.raise_for_status()

        return await _run(one, n, concurrency)


async def with_aiohttp(url: str, n: int, concurrency: int) -> tuple[float, float]:
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                response.raise_for_status()

        return await _run(one, n, concurrency)


async def _run(one, n: int, concurrency: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for _ in range(concurrency * 4):  # warm: open the connections
        await one()
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    start, start_cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, time.process_time() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "fast_receiver.py")], stdout=subprocess.PIPE, text=True
    )
    assert receiver.stdout is not None
    port = int(receiver.stdout.readline().rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}/hook"
    clients = {"httpx": with_httpx, "aiohttp": with_aiohttp}
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for concurrency in args.concurrency:
                for name, run in clients.items():
                    seconds, cpu = asyncio.run(run(url, args.requests, concurrency))
                    results.setdefault((name, concurrency), []).append((seconds, cpu))
    finally:
        receiver.terminate()
        receiver.wait(10)
    print(f"httpx {httpx.__version__}, aiohttp {aiohttp.__version__}; {args.requests} POSTs a run")
    print("| client | concurrency | CPU per POST, each round (ms) | median | POSTs/s (median) |")
    print("| --- | ---: | --- | ---: | ---: |")
    medians = {}
    for (name, concurrency), runs in results.items():
        per_post = [cpu / args.requests * 1000 for _, cpu in runs]
        medians[(name, concurrency)] = statistics.median(per_post)
        rate = statistics.median(args.requests / seconds for seconds, _ in runs)
        rounds = " / ".join(f"{v:.3f}" for v in per_post)
        print(
            f"| {name} | {concurrency} | {rounds} | {medians[(name, concurrency)]:.3f} "
            f"| {rate:,.0f} |"
        )
    for concurrency in args.concurrency:
        ratio = medians[("httpx", concurrency)] / medians[("aiohttp", concurrency)]
        print(f"concurrency {concurrency}: httpx costs {ratio:.2f}x aiohttp's CPU per POST")


if __name__ == "__main__":
    main()
