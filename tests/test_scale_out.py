"""Scale-out on PostgreSQL, proven with real ``hookbook serve`` processes.

Several processes share one database (the outbox) and one directory. Each
test is bounded in time; all need the PostgreSQL server (``pg_url``).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import time
from pathlib import Path

import httpx
import pytest

from conftest import wait_until
from held import HeldReceiver
from hookbook.testing import WebhookReceiver
from processes import ServeProcess, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(300)]

API_KEY = "scaleout_test_key"


def _client(server: ServeProcess) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.base_url}/api/v1",
        headers={"Authorization": f"Apikey {API_KEY}"},
        timeout=30,
    )


def _create_containers(servers: list[ServeProcess], keys: list[str], threads: int = 6) -> None:
    """Create one container per key, spreading the writes over every server."""
    body = {"structure_family": "container", "metadata": {}, "specs": [], "data_sources": []}
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(_client(s)) for s in servers]

        def create(i: int) -> None:
            r = clients[i % len(clients)].post("metadata/", json={**body, "id": keys[i]})
            assert r.status_code == 200, r.text

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, range(len(keys))))


def _attempts_sent(server: ServeProcess) -> float:
    """The attempts one process has made, from its own ``/metrics``."""
    response = httpx.get(
        f"{server.base_url}/metrics",
        headers={"Authorization": f"Apikey {API_KEY}"},
        timeout=10,
    )
    text = response.raise_for_status().text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hookbook_delivery_attempts_total{")
    )


def _register(server: ServeProcess, url: str) -> int:
    with _client(server) as c:
        r = c.post("webhooks/target/", json={"url": url})
        assert r.status_code == 200, r.text
        return r.json()["id"]


def _history(server: ServeProcess, webhook_id: int) -> list[dict]:
    records: list[dict] = []
    before = None
    with _client(server) as c:
        while True:
            params = {"limit": 500, **({"before": before} if before else {})}
            page = c.get(f"webhooks/history/{webhook_id}", params=params).json()
            records += page
            if len(page) < 500:
                return records
            before = page[-1]["id"]


@pytest.fixture
def config(tmp_path: Path, pg_url: str):
    def make(**extra):
        return write_config(
            tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yml",
            database=pg_url,
            directory=tmp_path / "data",
            api_key=API_KEY,
            **extra,
        )

    return make


@pytest.mark.timeout(600)
def test_three_processes_deliver_every_event_once(config) -> None:
    # A lease far longer than any attempt: without a crash nothing is sent twice.
    cfg = config(webhooks={"lease_seconds": 60})
    n_events = 2000
    servers = [ServeProcess(cfg) for _ in range(3)]
    try:
        for s in servers:
            s.wait_ready()
        with WebhookReceiver() as r1, WebhookReceiver() as r2, WebhookReceiver() as r3:
            receivers = [r1, r2, r3]
            hooks = [_register(servers[0], r.url) for r in receivers]
            _create_containers(servers, [f"e{i:05d}" for i in range(n_events)])
            for r in receivers:
                r.wait_for(n_events, timeout=240, unique=True)
            for r, hook in zip(receivers, hooks, strict=True):
                ids = collections.Counter(d.event_id for d in r.deliveries)
                assert len(ids) == n_events
                dupes = {k: v for k, v in ids.items() if v > 1}
                assert not dupes, f"delivered more than once: {list(dupes)[:5]}"
                paths = sorted(d.json["path"][0] for d in r.deliveries)
                assert paths == [f"e{i:05d}" for i in range(n_events)]
                history = _history(servers[1], hook)
                assert len(history) == n_events
                assert {h["outcome"] for h in history} == {"success"}
                assert {h["attempts"] for h in history} == {1}
            # Every process took part in the sending (each sends what it wrote).
            sent = [_attempts_sent(s) for s in servers]
            assert all(n > 0 for n in sent), sent
            assert sum(sent) == 3 * n_events
    finally:
        for s in servers:
            s.stop()


async def _fetch(pg_url: str, sql: str, *args: object) -> list[tuple]:
    import asyncpg

    from hookbook.webhooks.listener import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(pg_url))
    try:
        return [tuple(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def _outbox(pg_url: str, webhook_id: int) -> dict[int, tuple]:
    """The webhook's outbox rows: id -> (event id, outcome, attempts, lease token, due at)."""
    rows = asyncio.run(
        _fetch(
            pg_url,
            "SELECT id, event_id, outcome, attempts, lease_token, next_attempt_at "
            "FROM deliveries WHERE webhook_id = $1",
            webhook_id,
        )
    )
    return {row[0]: row[1:] for row in rows}


def test_kill_9_loses_nothing(config, pg_url: str) -> None:
    n_events = 12  # within the victim's room: every row is handed to it at insert
    # The lease outlasts the set-up (it must still run when the victim dies).
    cfg = config(webhooks={"lease_seconds": 10, "max_in_flight_per_host": n_events})
    servers = [ServeProcess(cfg) for _ in range(3)]
    victim, survivors = servers[0], servers[1:]
    try:
        for s in servers:
            s.wait_ready()
        with HeldReceiver() as receiver:
            hook_id = _register(victim, receiver.url)
            receiver.hold()  # every attempt stays in flight until released
            _create_containers([victim], [f"k{i:04d}" for i in range(n_events)], threads=4)
            receiver.wait_arrived(n_events, timeout=30)

            # The victim holds every lease when it dies: each row is pending,
            # unattempted, leased until a time still to come, and the other
            # processes have sent nothing.
            leased = _outbox(pg_url, hook_id)
            assert len(leased) == n_events
            assert all(
                outcome == "pending" and attempts == 0 and token is not None
                for _, outcome, attempts, token, _ in leased.values()
            ), leased
            assert [_attempts_sent(s) for s in survivors] == [0, 0]
            victim.kill9()
            dead_at = time.time()
            assert all(due > dead_at for *_, due in leased.values()), (dead_at, leased)
            receiver.release()  # the dead process's requests get their answers, unheard

            # The leases run out and the survivors take the rows over.
            def settled() -> dict[int, tuple] | None:
                rows = _outbox(pg_url, hook_id)
                done = all(outcome == "success" for _, outcome, *_ in rows.values())
                return rows if done else None

            recovered = wait_until(settled, timeout=60, message="every leased row delivered")
            assert recovered.keys() == leased.keys()
            for row_id, (event_id, _, attempts, token, due) in recovered.items():
                assert event_id == leased[row_id][0]
                # One recorded attempt (a survivor's: the victim's was never recorded).
                assert (attempts, token, due) == (1, None, None)
            assert sum(_attempts_sent(s) for s in survivors) == n_events
            # Each event reached the receiver twice: the victim's unanswered
            # attempt and the survivor's, with the same event id.
            sent = collections.Counter(d.event_id for d in receiver.deliveries)
            assert sent == {event_id: 2 for event_id, *_ in leased.values()}
            history = _history(survivors[0], hook_id)
            assert sorted(h["id"] for h in history) == sorted(leased)
            assert {(h["outcome"], h["attempts"]) for h in history} == {("success", 1)}
    finally:
        for s in servers:
            s.stop()


async def _terminate_backends(pg_url: str) -> int:
    import asyncpg

    from hookbook.webhooks.listener import asyncpg_dsn

    dsn = asyncpg_dsn(pg_url)
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        return len(rows)
    finally:
        await conn.close()


def test_database_connections_dropped_mid_run(config, pg_url: str) -> None:
    cfg = config()
    n_events = 150
    servers = [ServeProcess(cfg) for _ in range(2)]
    try:
        for s in servers:
            s.wait_ready()
        with WebhookReceiver() as receiver:
            _register(servers[0], receiver.url)
            receiver.delay(0.05)
            _create_containers(servers, [f"h{i:04d}" for i in range(n_events)], threads=4)
            wait_until(lambda: len(receiver.deliveries) >= 5, timeout=30, message="first ones")
            killed = asyncio.run(_terminate_backends(pg_url))
            assert killed > 0
            receiver.delay(0)
            wait_until(
                lambda: len({d.event_id for d in receiver.deliveries}) == n_events,
                timeout=60,
                message="every event delivered after the connections were dropped",
            )
            wait_until(
                lambda: all(s.health()["listener"]["state"] == "listening" for s in servers),
                timeout=20,
                message="listeners reconnected",
            )
            assert all(s.health()["listener"]["reconnects"] >= 1 for s in servers)
    finally:
        for s in servers:
            s.stop()


def test_hanging_endpoint_does_not_slow_the_others(config) -> None:
    cfg = config(webhooks={"read_timeout": 30, "max_in_flight_per_host": 4})
    servers = [ServeProcess(cfg) for _ in range(2)]
    try:
        for s in servers:
            s.wait_ready()
        with WebhookReceiver() as stuck, WebhookReceiver() as healthy:
            _register(servers[0], stuck.url)
            _register(servers[0], healthy.url)
            stuck.delay(20)
            _create_containers(servers[:1], [f"f{i:03d}" for i in range(40)], threads=2)
            # Every delivery to the healthy endpoint arrives while the other hangs.
            healthy.wait_for(40, timeout=15)
            assert len(stuck.deliveries) <= 2 * 4
    finally:
        for s in servers:
            s.stop(timeout=20)


def test_processes_starting_together_migrate_once(config, pg_url: str) -> None:
    cfg = config()
    servers = [ServeProcess(cfg) for _ in range(3)]
    try:
        for s in servers:
            s.wait_ready()

        async def versions() -> list[str]:
            import asyncpg

            from hookbook.webhooks.listener import asyncpg_dsn

            conn = await asyncpg.connect(asyncpg_dsn(pg_url))
            try:
                return [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
            finally:
                await conn.close()

        from hookbook.migrations import HEAD_REVISION

        assert asyncio.run(versions()) == [HEAD_REVISION]
    finally:
        for s in servers:
            s.stop()


def test_worker_only_process_delivers_for_an_http_only_one(config) -> None:
    http_cfg = config(run_worker=False)
    worker_cfg = config()
    with WebhookReceiver() as receiver:
        api = ServeProcess(http_cfg).wait_ready()
        try:
            _register(api, receiver.url)
            _create_containers([api], ["w1", "w2", "w3"], threads=1)
            assert api.health()["worker"] is None
            worker = ServeProcess(worker_cfg, args=("--worker-only",))
            try:
                got = receiver.wait_for(3, timeout=20)
                assert sorted(d.json["path"][0] for d in got) == ["w1", "w2", "w3"]
            finally:
                assert worker.stop() == 0
        finally:
            api.stop()


def test_processes_share_one_port(config) -> None:
    cfg = config()
    server = ServeProcess(cfg, args=("--processes", "2")).wait_ready(timeout=60)
    try:
        with WebhookReceiver() as receiver:
            _register(server, receiver.url)
            _create_containers([server], [f"p{i}" for i in range(20)], threads=4)
            got = receiver.wait_for(20, timeout=30)
            assert len({d.event_id for d in got}) == 20
    finally:
        assert server.stop() == 0
