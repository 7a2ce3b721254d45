"""Webhook engine benchmark (issue 3): write overhead, latency, throughput, memory.

    python bench/bench_webhooks.py            # full run, about 5 minutes (7-9 on a busy machine)
    python bench/bench_webhooks.py --quick    # about 1 minute (under 2 on a busy machine)
    python bench/bench_webhooks.py --only e2e throughput --receiver process

Sections (``--only`` picks some), each after a warm-up that is not counted:

- ``memory``: RSS growth of this process while the worker holds a backlog of
  100,000 pending deliveries to a dead loopback endpoint
  (``http://127.0.0.1:9/``, connection refused) and churns through it for
  ~20 s (target < 50 MB). The backlog is inserted in batches through the
  server's own database on its loop (``server.run``), as the store's fan-out
  would write it; the retry schedule is an hour long, so every row stays
  pending. Run first, in a fresh process, so that other sections' garbage
  does not hide growth.
- ``latency``: ``write_array`` latency with 0, 1 and 10 webhooks on the
  written node (blocks of writes, one container per configuration, the
  order rotated each round, deliveries drained between blocks; target:
  p50 with 10 <= 1.2 x p50 with 0; Tiled 2.2x, 94 -> 206 ms).
- ``e2e``: from just before ``write_array`` is called to the receiver getting
  the POST (``time.time()`` vs ``Delivery.received_at``; target p50 < 10 ms;
  Tiled about 50 ms).
- ``throughput``: deliveries per second for 1,000 events fanned out to 10
  webhooks (10,000 deliveries; target >= 250/s and >= 50% of the physical
  limit; Tiled about 48/s). The events are recorded through the store with
  the worker stopped, then the worker is started and timed until the last
  POST arrives (and until every delivery is recorded). The physical limit is
  the same requests (bodies and signed headers, captured) POSTed again by
  plain httpx with keep-alive, 1, 4 and 8 at a time, to the same receiver;
  the best of the three counts. A "live" variant records the events while
  the worker runs.

Everything runs on 127.0.0.1. The client and the server (its thread) share
this process, as a tutorial or a test uses them. The receiver is
``hookbook.testing.WebhookReceiver`` (TCP_NODELAY), verifying signatures;
``latency`` and ``e2e`` run twice (``--receiver both``, the default): with
the receiver in this process (threads competing for our GIL, as in a test)
and in a child process (``--receiver process``: what the engine itself
costs). ``throughput`` and ``memory`` keep it in this process. Beside the
wall-clock numbers the tables give the process CPU time per operation: on a
shared, busy machine it is much steadier.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _common import (
    MB,
    ProcessReceiver,
    Row,
    add_common_arguments,
    console,
    ms,
    p50,
    p95,
    quiet_logs,
    report,
    rss_bytes,
    settled_rss,
    time_calls,
    wait_until,
)
from _targets import REPLAYED_HEADERS, replay

from hookbook import events as ev
from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver

SECRET = "bench-secret"
SMALL = np.array([1.0, 2.0, 3.0])
DEAD = "http://127.0.0.1:9"  # the discard port: nothing listens, connection refused
SECTIONS = ("memory", "latency", "e2e", "throughput")
#: A delivery's retries in the testing mode (nothing fails here anyway).
FAST_RETRIES = {"retry_schedule": [0.05, 0.05]}


def make_receiver(mode: str) -> Any:
    """The receiver, in this process (``thread``: as a test or a notebook runs it)
    or in a child process (``process``: its work does not compete for our GIL)."""
    return ProcessReceiver(SECRET) if mode == "process" else WebhookReceiver(secret=SECRET)


def arrival(delivery: Any) -> float:
    """When the receiver got a delivery, in epoch seconds."""
    at = delivery.received_at
    return at if isinstance(at, float) else at.timestamp()


MODE_LABEL = {"thread": "receiver in-process", "process": "receiver in a child process"}


def services(server: SimpleServer) -> Any:
    return server.app.state.services


def pending_count(server: SimpleServer) -> int:
    count, _ = server.run(services(server).webhooks.pending(limit=0))
    return count


# ---- memory -------------------------------------------------------------------


async def insert_backlog(server: SimpleServer, webhook_ids: list[int], total: int) -> int:
    """Insert ``total`` pending deliveries (``total / len(webhook_ids)`` events, one
    delivery per webhook each), 5,000 rows per transaction, as a fan-out would."""
    import sqlalchemy as sa

    from hookbook.db import deliveries, event_log

    db = services(server).db
    per_tx = max(1, 5000 // len(webhook_ids))
    n_events = total // len(webhook_ids)
    done = 0
    while done < n_events:
        batch = range(done, min(done + per_tx, n_events))
        stamp = ev.now()
        async with db.write() as tx:
            event_rows = [
                {
                    "type": "container-child-created",
                    "path": f"backlog{i}",
                    "body": ev.serialize(
                        ev.ContainerChildCreated(
                            timestamp=stamp,
                            key=f"backlog{i}",
                            path=[f"backlog{i}"],
                            structure_family="container",
                            specs=[],
                            metadata={},
                        )
                    ),
                    "time_created": stamp,
                }
                for i in batch
            ]
            ids = (await tx.execute(event_log.insert().returning(event_log.c.id), event_rows)).all()
            due = time.time()
            rows = [
                {
                    "webhook_id": hook,
                    "event_row_id": row.id,
                    "event_id": f"{row.id:016x}{hook:016x}",
                    "event_type": "container-child-created",
                    "outcome": "pending",
                    "attempts": 0,
                    "next_attempt_at": due,
                    "time_created": stamp,
                }
                for row in ids
                for hook in webhook_ids
            ]
            await tx.execute(deliveries.insert(), rows)
            tx.new_deliveries += len(rows)  # wake the worker after the commit
        done = batch.stop
    async with db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(deliveries))).scalar()


async def count_attempts(server: SimpleServer) -> int:
    import sqlalchemy as sa

    from hookbook.db import attempts

    async with services(server).db.read() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(attempts))).scalar()


def bench_memory(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    backlog = args.backlog
    churn = 8.0 if args.quick else 20.0
    console.print(f"[bold]memory[/bold]: backlog {backlog:,}, worker churns {churn:g} s")
    # The circuit breaker off (a dead endpoint's attempts are what this churns on).
    settings = {"retry_schedule": [3600, 3600], "auto_disable_after": 0, "breaker_failures": 10**6}
    with SimpleServer(webhooks=settings) as server, from_uri(server.uri) as client:
        hooks = [client.webhooks.register(f"{DEAD}/hook{i}", secret=SECRET).id for i in range(10)]
        # Warm-up: one failed attempt per webhook, so the worker, its HTTP client
        # and the attempt log are all in use before the baseline is taken.
        for hook in hooks:
            client.webhooks.ping(hook)
        wait_until(
            lambda: server.run(count_attempts(server)) >= len(hooks),
            timeout=30,
            what="the warm-up attempts",
        )
        before = settled_rss()
        t0 = time.monotonic()
        inserted = server.run(insert_backlog(server, hooks, backlog), timeout=600)
        insert_time = time.monotonic() - t0
        after_insert = rss_bytes()
        attempts_0 = server.run(count_attempts(server))
        samples = []
        start = time.monotonic()
        while time.monotonic() - start < churn:
            samples.append(rss_bytes())
            time.sleep(0.25)
        attempts_1 = server.run(count_attempts(server))
        elapsed = time.monotonic() - start
        after = settled_rss()
        pending = pending_count(server)
        worker_state = services(server).worker.state
    peak = max([after_insert, *samples])
    growth = peak - before
    rows = [
        Row(
            f"RSS growth, {backlog:,}-delivery backlog, peak while churning",
            f"{growth / MB:.1f} MB",
            "< 50 MB",
            "",
            growth < 50 * MB and backlog >= 100_000,
            note=f"baseline {before / MB:.0f} MB, peak {peak / MB:.0f} MB",
        ),
        Row(
            "  RSS growth after churning (after gc)",
            f"{(after - before) / MB:.1f} MB",
            "",
            "",
            None,
        ),
        Row(
            "  worker attempts while churning (dead endpoint)",
            f"{(attempts_1 - attempts_0) / elapsed:.0f} /s",
            "",
            "",
            None,
            note=f"{attempts_1 - attempts_0:,} in {elapsed:.0f} s; worker {worker_state}",
        ),
        Row(
            "  backlog still pending at the end",
            f"{pending:,}",
            f"~{inserted:,}",
            "",
            None,
            note=f"inserted in {insert_time:.1f} s",
        ),
    ]
    notes = [
        f"memory: {len(hooks)} webhooks to {DEAD}/hookN (connection refused), retry "
        "schedule [3600, 3600], auto-disable off; RSS from /proc/self/status VmRSS "
        "(whole process: server, worker, client)."
    ]
    return rows, notes


# ---- write latency with 0, 1 and 10 webhooks -----------------------------------


def bench_latency(args: argparse.Namespace, mode: str) -> tuple[list[Row], list[str]]:
    rounds, per_block = (3, 10) if args.quick else (5, 40)
    configs = {0: "c0", 1: "c1", 10: "c10"}
    console.print(
        f"[bold]latency[/bold] ({MODE_LABEL[mode]}): {rounds} rounds x {per_block} writes "
        "for 0, 1, 10 webhooks"
    )
    times: dict[int, list[float]] = {n: [] for n in configs}
    cpu: dict[int, float] = dict.fromkeys(configs, 0.0)
    with (
        make_receiver(mode) as receiver,
        SimpleServer(webhooks=FAST_RETRIES) as server,
        from_uri(server.uri) as client,
    ):
        containers = {}
        for n, name in configs.items():
            containers[n] = client.create_container(name)
            for i in range(n):
                client.webhooks.register(receiver.url_for(f"/{name}/{i}"), path=name, secret=SECRET)
        order = list(configs)
        for n in order:  # warm-up
            time_calls(lambda i, n=n: containers[n].write_array(SMALL, key=f"w{i}"), repeat=5)
        server.drain(timeout=60)
        for r in range(rounds):
            for n in order[r % 3 :] + order[: r % 3]:
                cpu_start = time.process_time()
                times[n] += time_calls(
                    lambda i, n=n, r=r: containers[n].write_array(SMALL, key=f"r{r}-{i}"),
                    repeat=per_block,
                    budget=60,
                )
                server.drain(timeout=120)
                cpu[n] += time.process_time() - cpu_start
        expected = sum(n for n in configs) * (rounds * per_block + 5)
        try:
            delivered = len(receiver.wait_for(expected, timeout=10))
        except TimeoutError:
            delivered = len(receiver.deliveries)
    base = p50(times[0])
    rows = [
        Row(
            f"write_array with {n} webhook{'s' if n != 1 else ''}, {MODE_LABEL[mode]}, p50 / p95",
            f"{ms(p50(times[n]))} / {ms(p95(times[n]))}",
            "",
            {0: "~94 ms", 1: "", 10: "~206 ms"}[n],
            None,
            note=f"n={len(times[n])}, CPU {ms(cpu[n] / len(times[n]))} per write "
            "with its deliveries",
        )
        for n in configs
    ]
    rows += [
        Row(
            "  ratio p50(1 webhook) / p50(0)",
            f"{p50(times[1]) / base:.2f}x",
            "",
            "",
            None,
        ),
        Row(
            "  ratio p50(10 webhooks) / p50(0)",
            f"{p50(times[10]) / base:.2f}x",
            "<= 1.2x",
            "2.2x",
            p50(times[10]) / base <= 1.2,
        ),
    ]
    cpu_ratio = (cpu[10] / len(times[10])) / (cpu[0] / len(times[0]))
    rows.append(
        Row("  ratio of CPU per write (10 webhooks / 0)", f"{cpu_ratio:.2f}x", "", "", None)
    )
    notes = [
        f"latency ({MODE_LABEL[mode]}): {delivered:,} deliveries received of {expected:,} expected."
    ]
    return rows, notes


# ---- end-to-end latency -------------------------------------------------------


def bench_e2e(args: argparse.Namespace, mode: str) -> tuple[list[Row], list[str]]:
    repeat, warmup = (30, 5) if args.quick else (150, 10)
    console.print(f"[bold]e2e[/bold] ({MODE_LABEL[mode]}): {repeat} writes, one webhook")
    e2e: list[float] = []
    after_return: list[float] = []
    with (
        make_receiver(mode) as receiver,
        SimpleServer(webhooks=FAST_RETRIES) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url, secret=SECRET)
        for i in range(warmup + repeat):
            seen = len(receiver.deliveries)
            t0 = time.time()
            client.write_array(SMALL, key=f"e{i}")
            returned = time.time()
            delivery = receiver.wait_for(seen + 1, timeout=10)[seen]
            if i >= warmup:
                arrived = arrival(delivery)
                e2e.append(arrived - t0)
                after_return.append(arrived - returned)
        valid = sum(1 for d in receiver.deliveries if d.signature_valid)
        total = len(receiver.deliveries)
    early = sum(1 for x in after_return if x < 0) / len(after_return)
    rows = [
        Row(
            f"end-to-end: write_array called -> receiver has the POST ({MODE_LABEL[mode]}), "
            "p50 / p95",
            f"{ms(p50(e2e))} / {ms(p95(e2e))}",
            "p50 < 10 ms",
            "~50 ms",
            p50(e2e) < 0.010,
            note=f"n={len(e2e)}",
        ),
        Row(
            "  POST arrived before write_array returned",
            f"{early:.0%}",
            "",
            "",
            None,
            note=f"p50 of arrival - return: {ms(p50(after_return))}",
        ),
    ]
    notes = [f"e2e ({MODE_LABEL[mode]}): {valid} of {total} deliveries carried a valid signature."]
    return rows, notes


# ---- throughput -----------------------------------------------------------------


async def record_events(server: SimpleServer, n: int, prefix: str) -> None:
    """``n`` catalog changes through the store (a container each: one event)."""
    store = services(server).store
    for i in range(n):
        await store.create("", f"{prefix}{i}", "container")


def bench_throughput(args: argparse.Namespace) -> tuple[list[Row], list[str]]:
    n_events = args.events
    n_hooks = 10
    total = n_events * n_hooks
    timeout = max(120.0, total / 20)
    console.print(f"[bold]throughput[/bold]: {n_events:,} events x {n_hooks} webhooks")
    notes = []
    with (
        WebhookReceiver(secret=SECRET) as receiver,
        SimpleServer(webhooks=FAST_RETRIES) as server,
    ):
        with from_uri(server.uri) as client:
            for i in range(n_hooks):
                client.webhooks.register(receiver.url_for(f"/hook{i}"), secret=SECRET)
            client.write_array(SMALL, key="warmup")  # warm-up: one event, 10 deliveries
        server.drain(timeout=60)
        wait_until(lambda: len(receiver.deliveries) >= n_hooks, timeout=30, what="warm-up")
        worker = services(server).worker
        settings = server.settings.webhooks

        # Backlog: record every event with the worker stopped, then start it.
        receiver.clear()
        server.run(worker.stop())
        t0 = time.monotonic()
        server.run(record_events(server, n_events, "t"), timeout=600)
        record_time = time.monotonic() - t0
        assert pending_count(server) == total, "the fan-out did not queue every delivery"
        start = time.time()
        cpu_start = time.process_time()
        server.run(worker.start())
        wait_until(lambda: len(receiver.deliveries) >= total, timeout=timeout, what="deliveries")
        received = receiver.deliveries
        last = max(d.received_at.timestamp() for d in received)
        server.drain(timeout=timeout)
        recorded = time.time()
        engine_cpu = (time.process_time() - cpu_start) / total
        engine_rate = total / (last - start)
        recorded_rate = total / (recorded - start)
        unique = len({d.event_id for d in received})
        valid = sum(1 for d in received if d.signature_valid)
        notes.append(
            f"throughput: {n_events:,} events recorded in {record_time:.1f} s with the worker "
            f"stopped; {len(received):,} POSTs received ({unique:,} distinct event ids, "
            f"{valid:,} valid signatures); worker max_in_flight={settings.max_in_flight}, "
            f"max_in_flight_per_host={settings.max_in_flight_per_host} (all 10 webhooks "
            "are one host:port)."
        )
        requests = [
            (
                receiver.url_for(d.path),
                d.body,
                {k: d.headers[k] for k in REPLAYED_HEADERS if k in d.headers},
            )
            for d in received
        ]

        # Live: the events are recorded while the worker runs.
        receiver.clear()
        n_live = n_events
        start_live = time.time()
        server.run(record_events(server, n_live, "live"), timeout=600)
        live_recorded = time.time()
        wait_until(
            lambda: len(receiver.deliveries) >= n_live * n_hooks,
            timeout=timeout,
            what="live deliveries",
        )
        last_live = max(d.received_at.timestamp() for d in receiver.deliveries)
        live_rate = n_live * n_hooks / (last_live - start_live)
        notes.append(
            f"live: {n_live:,} events recorded in {live_recorded - start_live:.1f} s while "
            "the worker ran; rate = deliveries / (first change -> last POST)."
        )
        server.drain(timeout=timeout)

        # The physical limit: the same requests, plain httpx, same receiver.
        physical: dict[int, float] = {}
        physical_cpu: dict[int, float] = {}
        subset = requests[: min(len(requests), args.replay)]
        for concurrency in (1, 4, 8):
            receiver.clear()
            cpu_start = time.process_time()
            elapsed = replay(subset, concurrency)
            physical_cpu[concurrency] = (time.process_time() - cpu_start) / len(subset)
            assert len(receiver.deliveries) == len(subset)
            physical[concurrency] = len(subset) / elapsed
    best = max(physical, key=physical.__getitem__)
    limit = physical[best]
    rows = [
        Row(
            f"deliveries/s, {n_events:,} events x {n_hooks} webhooks (backlog -> last POST)",
            f"{engine_rate:.0f} /s",
            ">= 250 /s",
            "~48 /s",
            engine_rate >= 250,
            note=f"{total:,} in {last - start:.1f} s",
        ),
        Row(
            "  share of the physical limit",
            f"{engine_rate / limit:.0%}",
            ">= 50%",
            "",
            engine_rate / limit >= 0.5,
        ),
        Row(
            "  physical limit: same POSTs by plain httpx, keep-alive",
            f"{limit:.0f} /s",
            "",
            "",
            None,
            note=", ".join(f"{c} at a time: {r:.0f}/s" for c, r in physical.items())
            + f"; {len(subset):,} requests",
        ),
        Row(
            "  CPU per delivery: engine / plain httpx (sender + receiver)",
            f"{ms(engine_cpu)} / {ms(physical_cpu[best])}",
            "",
            "",
            None,
            note=f"CPU-bound rates {1 / engine_cpu:.0f}/s vs {1 / physical_cpu[best]:.0f}/s",
        ),
        Row(
            "  deliveries/s until every attempt is recorded (drain)",
            f"{recorded_rate:.0f} /s",
            "",
            "",
            None,
        ),
        Row(
            "  deliveries/s, live (events recorded while the worker runs)",
            f"{live_rate:.0f} /s",
            "",
            "",
            None,
        ),
    ]
    return rows, notes


# ---- main -------------------------------------------------------------------------


def main(args: argparse.Namespace) -> None:
    chosen = args.only or list(SECTIONS)
    rows: list[Row] = []
    notes: list[str] = []
    functions = {
        "memory": bench_memory,
        "latency": bench_latency,
        "e2e": bench_e2e,
        "throughput": bench_throughput,
    }
    modes = ["thread", "process"] if args.receiver == "both" else [args.receiver]
    for name in SECTIONS:  # fixed order: memory first, in a fresh process
        if name not in chosen:
            continue
        for mode in modes if name in ("latency", "e2e") else [None]:
            started = time.monotonic()
            section = functions[name]
            more_rows, more_notes = section(args) if mode is None else section(args, mode)
            rows += more_rows
            notes += more_notes
            console.print(f"[dim]  {name}: {time.monotonic() - started:.0f} s[/dim]")
    leftover = [t.name for t in threading.enumerate() if t.name.startswith("hookbook-")]
    if leftover:
        notes.append(f"threads still running at the end: {leftover}")
    report("hookbook webhook engine benchmark (issue 3)", rows, args, notes=notes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument(
        "--receiver",
        choices=("thread", "process", "both"),
        default="both",
        help="latency and e2e: the receiver in this process, in a child process, or both",
    )
    parser.add_argument(
        "--events", type=int, help="throughput: events (x 10 webhooks); default 1000, quick 200"
    )
    parser.add_argument(
        "--backlog", type=int, help="memory: pending deliveries; default 100000 (quick too)"
    )
    parser.add_argument(
        "--replay",
        type=int,
        help="throughput: requests replayed per concurrency level for the physical limit; "
        "default 3000, quick 1000",
    )
    parsed = parser.parse_args()
    if parsed.events is None:
        parsed.events = 200 if parsed.quick else 1000
    if parsed.replay is None:
        parsed.replay = 1000 if parsed.quick else 3000
    if parsed.backlog is None:
        parsed.backlog = 100_000
    quiet_logs()
    main(parsed)
