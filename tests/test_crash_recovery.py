"""Durability and latency: nothing is lost across stops and crashes, nobody waits on a slow peer.

The kill -9 test runs a real server process and kills it with SIGKILL while
deliveries are in flight and pending; a new server on the same directory then
completes every one of them (at least once: receivers dedupe by event id).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_until
from held import HeldReceiver
from hookbook.client import from_uri
from hookbook.config import parse_settings
from hookbook.server import SimpleServer
from hookbook.server.services import Seams, Services
from hookbook.testing import WebhookReceiver
from hookbook.webhooks.secrets import generate_key

API_KEY = "crash_test_api_key"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def rows(directory: Path, sql: str, *params: object) -> list[tuple]:
    """Run SQL on the server's SQLite database directly (what is in the outbox)."""
    conn = sqlite3.connect(directory / "hookbook.db", timeout=10)
    try:
        found = conn.execute(sql, params).fetchall()
        conn.commit()
        return found
    finally:
        conn.close()


def close_within(server: SimpleServer, seconds: float) -> bool:
    """Close the server on a thread; True if it returned within ``seconds``."""
    closer = threading.Thread(target=server.close, daemon=True)
    closer.start()
    closer.join(seconds)
    return not closer.is_alive()


# --------------------------------------------------------------------------- #
# Written while no worker runs
# --------------------------------------------------------------------------- #


def test_a_delivery_written_while_no_worker_runs_is_sent_when_one_starts(tmp_path, receiver):
    key = generate_key()
    settings = parse_settings(
        {
            "directory": str(tmp_path),
            "api_keys": [{"key": API_KEY}],
            "webhooks": {"secret_keys": [key], "allow_http": True, "allow_private_addresses": True},
            "run_worker": False,
        }
    )

    async def write_without_a_worker() -> None:
        services = await Services.start(settings, Seams())
        try:
            assert services.worker is None
            await services.webhooks.register("", receiver.url, secret="s")
            await services.store.create("", "offline", "container")
        finally:
            await services.stop()

    asyncio.run(write_without_a_worker())
    assert rows(tmp_path, "SELECT outcome, attempts FROM deliveries") == [("pending", 0)]
    assert receiver.deliveries == []

    with SimpleServer(
        tmp_path, api_key=API_KEY, webhooks={"secret_keys": [key], "retry_schedule": [0.01]}
    ) as server:
        (delivery,) = receiver.wait_for(1, timeout=10)
        assert delivery.key == "offline"
        server.drain()
        with from_uri(server.uri) as client:
            (hook,) = client.webhooks.list_all()
            (record,) = client.webhooks.history(hook.id)
        assert record.outcome == "success"
        assert record.event_id == delivery.event_id


def test_a_delivery_to_a_down_endpoint_completes_after_a_restart(tmp_path, receiver):
    receiver.fail_next(2, status=503)  # down for the first two attempts
    settings = {"retry_schedule": [0.01, 30]}
    with SimpleServer(tmp_path, webhooks=settings) as server, from_uri(server.uri) as client:
        hook = client.webhooks.register(receiver.url)
        client.create_container("a")
        wait_until(
            lambda: client.webhooks.history(hook.id)[0].attempts == 2,
            timeout=10,
            message="two failed attempts",
        )
    (pending,) = rows(tmp_path, "SELECT outcome, attempts FROM deliveries")
    assert pending == ("pending", 2)
    receiver.clear()
    # The restart does not reset the schedule: the row is due in 30 s. The
    # worker on the new server takes it when due; make it due now.
    rows(tmp_path, "UPDATE deliveries SET next_attempt_at = 0")
    with SimpleServer(tmp_path, webhooks=settings) as server, from_uri(server.uri) as client:
        (delivery,) = receiver.wait_for(1, timeout=10)
        server.drain()
        (record,) = client.webhooks.history(hook.id)
        assert record.outcome == "success"
        assert record.attempts == 3
        assert record.event_id == delivery.event_id


# --------------------------------------------------------------------------- #
# kill -9 with a real process
# --------------------------------------------------------------------------- #

CHILD = textwrap.dedent(
    """
    import sys, time
    from hookbook.server import SimpleServer

    server = SimpleServer(
        sys.argv[1],
        api_key=sys.argv[2],
        webhooks={"retry_schedule": [0.3] * 20, "lease_seconds": 1,
                  "max_in_flight_per_host": 2},
    )
    print(server.uri, flush=True)
    time.sleep(600)
    """
)


def _start_child(directory: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    with log.open("w") as stderr:  # a file, not a pipe nobody drains
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), API_KEY],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    return child, _announced_uri(child, log)


def _announced_uri(child: subprocess.Popen[str], log: Path, timeout: float = 30) -> str:
    """The URI the child prints once its server is up (read with a bound: a child
    that hangs or dies fails the test with its log instead of blocking it)."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(child.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line or not line[0].startswith("http"):
        child.kill()
        child.communicate(timeout=10)
        raise AssertionError(f"the server process did not start: {log.read_text()}")
    return line[0].strip()


@pytest.mark.slow
def test_kill_9_loses_nothing(tmp_path):
    data = tmp_path / "data"
    with WebhookReceiver() as hanging, WebhookReceiver() as failing:
        hanging.delay(30)  # in flight when the process dies
        failing.fail_next(1000)  # pending, between retries, when the process dies
        child, uri = _start_child(data, tmp_path / "child.log")
        try:
            with from_uri(uri) as client:
                slow = client.webhooks.register(hanging.url)
                flaky = client.webhooks.register(failing.url)
                for i in range(5):
                    client.create_container(f"run{i}")

                def in_flight_and_retrying() -> bool:
                    leased = rows(
                        data,
                        "SELECT COUNT(*) FROM deliveries WHERE webhook_id = ? "
                        "AND lease_token IS NOT NULL",
                        slow.id,
                    )[0][0]
                    retried = rows(
                        data,
                        "SELECT MIN(attempts) FROM deliveries WHERE webhook_id = ?",
                        flaky.id,
                    )[0][0]
                    # Two in flight (the per-host limit), up to two more queued behind them.
                    return leased >= 2 and retried >= 1

                wait_until(in_flight_and_retrying, timeout=15, message="deliveries in flight")
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=10)
        assert child.returncode == -signal.SIGKILL
        states = rows(data, "SELECT outcome FROM deliveries")
        assert len(states) == 10
        assert {s for (s,) in states} == {"pending"}

        hanging.clear()
        failing.clear()
        with (
            SimpleServer(data, api_key=API_KEY, webhooks={"retry_schedule": [0.3] * 20}) as server,
            from_uri(server.uri) as client,
        ):
            server.drain(timeout=20)
            expected = {}
            for hook in (slow, flaky):
                history = client.webhooks.history(hook.id)
                assert len(history) == 5
                assert {d.outcome for d in history} == {"success"}, history
                expected[hook.id] = {d.event_id for d in history}
        assert len(expected[slow.id] | expected[flaky.id]) == 10
        for hook, receiver in ((slow, hanging), (flaky, failing)):
            accepted = {d.event_id for d in receiver.deliveries if d.accepted}
            # Every delivery arrived; anything sent twice carries the same event id.
            assert accepted == expected[hook.id]
            assert {d.event_id for d in receiver.deliveries} <= expected[hook.id]


# --------------------------------------------------------------------------- #
# Shutdown has a deadline
# --------------------------------------------------------------------------- #


def test_close_with_a_hanging_receiver_returns_and_keeps_the_delivery(tmp_path):
    with HeldReceiver() as receiver:
        receiver.hold()  # answers nothing until released
        server = SimpleServer(tmp_path, webhooks={"retry_schedule": [0.01]})
        try:
            with from_uri(server.uri) as client:
                hook = client.webhooks.register(receiver.url)
                client.create_container("a")
            receiver.wait_arrived(1, timeout=10)  # in flight
        finally:
            # Bounded well below the hold: close() gives up on the attempt.
            assert close_within(server, 30), "close() blocked on a hanging receiver"
        assert receiver.deliveries == []  # still held: nothing was answered
        ((outcome, attempts, event_id, lease),) = rows(
            tmp_path, "SELECT outcome, attempts, event_id, lease_token FROM deliveries"
        )
        assert (outcome, attempts) == ("pending", 0)
        assert lease is None  # handed over at insert, given back unsent by stop()

        receiver.release()  # answers the held request, to a closed connection
        receiver.wait_for(1, timeout=10)
        receiver.clear()
        with SimpleServer(tmp_path, webhooks={"retry_schedule": [0.01]}) as server:
            delivered = receiver.wait_for(1, timeout=10)
            server.drain()
            with from_uri(server.uri) as client:
                (record,) = client.webhooks.history(hook.id)
            assert record.outcome == "success"
            assert record.event_id == event_id
            assert delivered[0].event_id == event_id


# --------------------------------------------------------------------------- #
# Latency: woken by commits, not held up by slow peers
# --------------------------------------------------------------------------- #


def test_a_commit_wakes_the_worker(receiver):
    # The fallback poll is an hour away: what arrives was woken by the commits.
    with (
        SimpleServer(webhooks={"poll_interval": 3600}) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url)
        client.create_container("a")
        (first,) = receiver.wait_for(1, timeout=30)
        client.create_container("b")
        receiver.wait_for(2, timeout=30)
        assert first.key == "a"


def test_a_slow_endpoint_does_not_hold_up_a_healthy_one():
    settings = {"max_in_flight": 4, "max_in_flight_per_host": 2, "retry_schedule": [0.01]}
    with (
        HeldReceiver() as slow,
        WebhookReceiver() as healthy,
        SimpleServer(webhooks=settings) as server,
        from_uri(server.uri) as client,
    ):
        slow.hold()  # answers nothing until the end of the test
        # Registered first, so their rows come first in the outbox.
        for i in range(8):
            client.webhooks.register(slow.url_for(f"/slow{i}"))
        client.webhooks.register(healthy.url)
        client.create_container("a")  # one commit, nine deliveries
        (delivery,) = healthy.wait_for(1, timeout=30)
        assert delivery.key == "a"
        slow.wait_arrived(2, timeout=30)  # the slow endpoint's two slots are taken
        client.create_container("b")
        healthy.wait_for(2, timeout=30)
        # Both arrived while the slow endpoint held its requests unanswered.
        assert slow.arrived == 2
        assert slow.deliveries == []


def test_in_flight_per_endpoint_is_bounded():
    settings = {"max_in_flight_per_host": 2, "retry_schedule": [0.01]}
    with (
        HeldReceiver() as receiver,
        SimpleServer(webhooks=settings) as server,
        from_uri(server.uri) as client,
    ):
        for i in range(6):
            client.webhooks.register(receiver.url_for(f"/h{i}"))
        receiver.hold()
        client.create_container("a")  # one commit, six deliveries to one endpoint
        # Let them through one by one: each answer frees a slot for the next one.
        for answered in range(4):
            receiver.wait_arrived(answered + 2, timeout=10)
            receiver.allow(1)
        receiver.release()
        deliveries = receiver.wait_for(6, timeout=10)
        server.drain()
    assert len({d.path for d in deliveries}) == 6
    # The worker never had a third request open to the endpoint.
    assert receiver.most_at_once == 2


def test_a_dead_endpoint_does_not_hold_up_a_healthy_one(receiver, reserved_port):
    settings = {"max_in_flight": 4, "max_in_flight_per_host": 2, "retry_schedule": [0.01] * 3}
    with SimpleServer(webhooks=settings) as server, from_uri(server.uri) as client:
        for i in range(6):
            client.webhooks.register(f"http://127.0.0.1:{reserved_port}/{i}")
        healthy = client.webhooks.register(receiver.url)
        for key in ("a", "b"):
            client.create_container(key)
        receiver.wait_for(2, timeout=30)
        # The dead endpoint's deliveries stay pending (its breaker holds them back);
        # the healthy one's settle.
        wait_until(
            lambda: [d.outcome for d in client.webhooks.history(healthy.id)] == ["success"] * 2,
            timeout=30,
            message="the healthy webhook's deliveries recorded",
        )


class SlowResolver:
    """Answers 127.0.0.1; one host name does not answer (until the test ends) once
    ``slow`` is set."""

    def __init__(self, slow_host: str) -> None:
        self.slow_host = slow_host
        self.slow = False
        self.asked: list[str] = []
        self.waiting = 0

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if self.slow and host == self.slow_host:
            self.waiting += 1
            await asyncio.sleep(60)
        return ["127.0.0.1"]


def test_a_slow_dns_answer_does_not_hold_up_others():
    resolver = SlowResolver("slow-dns.test")
    with (
        WebhookReceiver() as slow,
        WebhookReceiver() as healthy,
        SimpleServer(webhooks={"retry_schedule": [0.01]}, seams=Seams(resolver=resolver)) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(f"http://slow-dns.test:{slow.port}/webhook")
        client.webhooks.register(f"http://fast-dns.test:{healthy.port}/webhook")
        resolver.slow = True
        client.create_container("a")
        (delivery,) = healthy.wait_for(1, timeout=30)
        assert delivery.key == "a"
        assert delivery.headers["Host"] == f"fast-dns.test:{healthy.port}"
        wait_until(lambda: resolver.waiting, timeout=30, message="the slow lookup under way")
        client.create_container("b")
        healthy.wait_for(2, timeout=30)
        # Delivered while the slow name's lookup was still unanswered.
        assert resolver.waiting >= 1
        assert slow.deliveries == []
        assert "slow-dns.test" in resolver.asked


# --------------------------------------------------------------------------- #
# Retention
# --------------------------------------------------------------------------- #


def test_retention_prunes_settled_history_only(tmp_path, receiver, reserved_port):
    dead_url = f"http://127.0.0.1:{reserved_port}/webhook"
    with (
        SimpleServer(tmp_path, webhooks={"retry_schedule": [0.01, 60]}) as server,
        from_uri(server.uri) as client,
    ):
        settled = client.webhooks.register(receiver.url)
        pending = client.webhooks.register(dead_url)
        client.create_container("a")
        receiver.wait_for(1, timeout=10)
        wait_until(
            lambda: client.webhooks.history(pending.id)[0].attempts == 2,
            timeout=10,
            message="two refused attempts",
        )
        assert client.webhooks.history(settled.id)[0].outcome == "success"
    # A retention shorter than the records' age: the next start prunes.
    short = {"retry_schedule": [0.01, 60], "retention_days": 1e-9}
    with SimpleServer(tmp_path, webhooks=short) as server, from_uri(server.uri) as client:
        wait_until(
            lambda: client.webhooks.history(settled.id) == [],
            timeout=30,
            message="settled history pruned",
        )
        (kept,) = client.webhooks.history(pending.id)
        assert kept.outcome == "pending"
        assert kept.attempts == 2
        assert client.webhooks.delivery(kept.id).payload["key"] == "a"


# --------------------------------------------------------------------------- #
# kill -9 during a stream of appends
# --------------------------------------------------------------------------- #

STREAM_CHILD = textwrap.dedent(
    """
    import sys, time
    from hookbook.server import SimpleServer

    server = SimpleServer(sys.argv[1], api_key=sys.argv[2])
    print(server.uri, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.slow
def test_kill_9_during_appends_loses_nothing_acknowledged(tmp_path):
    import numpy as np
    import sqlalchemy as sa

    from hookbook.db import fragments, nodes, retired_data

    data = tmp_path / "data"
    script = tmp_path / "child.py"
    script.write_text(STREAM_CHILD)
    with (tmp_path / "child.log").open("w") as log:
        child = subprocess.Popen(
            [sys.executable, str(script), str(data), API_KEY],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    uri = _announced_uri(child, tmp_path / "child.log")
    acked: dict[str, list[int]] = {"a": [], "t": []}
    stopped = threading.Event()

    def append_until_killed() -> None:
        try:
            with from_uri(uri) as client:
                array, table = client["a"], client["t"]
                for i in range(1, 10_000):
                    array.append(np.full((1, 1000), float(i)))
                    acked["a"].append(i)
                    table.append({"i": [i]})
                    acked["t"].append(i)
        except Exception:
            stopped.set()

    try:
        with from_uri(uri) as client:
            client.write_array(np.zeros((1, 1000)), key="a")
            client.write_table({"i": [0]}, key="t")
        writer = threading.Thread(target=append_until_killed, daemon=True)
        writer.start()
        wait_until(lambda: len(acked["t"]) >= 25, timeout=60, message="appends acknowledged")
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    assert stopped.wait(30), "the writer did not notice the server dying"

    with (
        SimpleServer(data, api_key=API_KEY, storage={"sweep_after": 0}) as server,
        from_uri(server.uri) as client,
    ):
        rows = client["a"].read()
        landed = rows[:, 0].astype(int).tolist()
        # Every acknowledged append is there, in order; at most the one in flight more.
        assert landed == list(range(len(landed)))
        assert len(acked["a"]) + 1 <= len(landed) <= len(acked["a"]) + 2
        assert (rows == rows[:, :1]).all()
        values = client["t"].read()["i"].tolist()
        assert values == list(range(len(values)))
        assert len(acked["t"]) + 1 <= len(values) <= len(acked["t"]) + 2

        async def referenced():
            async with server.app.state.services.db.read() as conn:
                found = set((await conn.execute(sa.select(nodes.c.data_location))).scalars())
                found |= set((await conn.execute(sa.select(fragments.c.location))).scalars())
                found |= set((await conn.execute(sa.select(retired_data.c.location))).scalars())
                return {Path(p).name for p in found if p}

        # What a killed append left behind was swept; zarr.json says the committed shape.
        assert {p.name for p in (data / "data").iterdir()} <= server.run(referenced())
        import zarr

        (location,) = [p for p in (data / "data").iterdir() if p.suffix == ".zarr"]
        assert zarr.open_array(location, mode="r").shape == rows.shape
        client["a"].append(np.full((1, 1000), float(len(landed))))
        assert client["a"].read().shape == (len(landed) + 1, 1000)
