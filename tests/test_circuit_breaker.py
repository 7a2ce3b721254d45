"""The per-endpoint circuit breaker: a dead endpoint is found out quickly.

Unit tests drive :class:`CircuitBreaker` with explicit times; the server tests
use a receiver that accepts and never answers, and a port that refuses: the
other webhooks' deliveries are unaffected, the dead endpoint costs a bounded
number of attempts, its held-back deliveries keep their attempts, and it
comes back on its own.
"""

from __future__ import annotations

import time

import pytest

from conftest import wait_until
from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver
from hookbook.webhooks.breaker import CircuitBreaker, is_endpoint_failure

E = "dead.example:443"


def breaker(**overrides: float) -> CircuitBreaker:
    settings = {"threshold": 3, "backoff": 1.0, "max_backoff": 4.0, "disable_after": 100.0}
    return CircuitBreaker(**{**settings, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "unwell"),
    [
        (None, True),
        (500, True),
        (503, True),
        (429, True),
        (408, True),
        (200, False),
        (204, False),
        (400, False),
        (404, False),
        (410, False),
        (307, False),
    ],
)
def test_what_counts_against_an_endpoint(status, unwell):
    assert is_endpoint_failure(status) is unwell


def test_opens_after_a_run_of_failures_and_probes_one_at_a_time_on_a_backoff():
    b = breaker()
    for now in (0.0, 0.1):
        assert b.failed(E, now, probe=False) is False
        assert b.allows(E, now) and not b.is_open(E)
    b.failed(E, 0.2, probe=False)  # the third in a row: open
    assert b.is_open(E)
    assert not b.allows(E, 0.5) and E in b.held_back(0.5)
    assert b.next_probe() == pytest.approx(1.2)
    assert b.allows(E, 1.2)
    assert b.start(E) is True  # the probe
    assert not b.allows(E, 1.3)  # one at a time
    assert b.next_probe() is None
    b.failed(E, 1.5, probe=True)  # back-off doubles: 2 s
    assert b.next_probe() == pytest.approx(3.5)
    assert b.start(E) is True
    b.failed(E, 3.5, probe=True)  # 4 s, the cap
    assert b.start(E) is True
    b.failed(E, 7.5, probe=True)
    assert b.next_probe() == pytest.approx(11.5)  # still 4 s
    b.succeeded(E)
    assert not b.is_open(E) and b.allows(E, 7.6) and b.held_back(7.6) == set()


def test_late_failures_of_attempts_already_in_flight_do_not_move_the_probe():
    b = breaker()
    for now in (0.0, 0.1, 0.2):
        b.failed(E, now, probe=False)
    b.failed(E, 0.3, probe=False)
    assert b.next_probe() == pytest.approx(1.2)


def test_a_success_in_between_resets_the_run():
    b = breaker()
    b.failed(E, 0.0, probe=False)
    b.failed(E, 0.1, probe=False)
    b.succeeded(E)
    b.failed(E, 0.2, probe=False)
    assert not b.is_open(E)


def test_an_abandoned_probe_lets_another_go():
    b = breaker()
    for now in (0.0, 0.1, 0.2):
        b.failed(E, now, probe=False)
    assert b.start(E)
    b.abandoned(E)
    assert b.allows(E, 1.2)


def test_reports_once_when_failing_continuously_for_too_long():
    b = breaker(disable_after=10.0)
    assert not any(b.failed(E, t, probe=False) for t in (0.0, 1.0, 2.0))
    assert b.failed(E, 10.0, probe=True) is True
    assert not b.is_open(E)  # forgotten: its webhooks are disabled now


# --------------------------------------------------------------------------- #
# A real server
# --------------------------------------------------------------------------- #

BREAKER = {
    "breaker_failures": 3,
    "breaker_backoff": 0.3,
    "breaker_max_backoff": 0.6,
    "max_in_flight_per_host": 4,
    "retry_schedule": [0.01] * 20,
}


def attempts_spent(client, webhook_id: int) -> int:
    return sum(d.attempts for d in client.webhooks.history(webhook_id, limit=500))


def test_a_hanging_endpoint_is_held_back_and_recovers_on_its_own():
    settings = {**BREAKER, "read_timeout": 0.2}
    with (
        WebhookReceiver() as hanging,
        WebhookReceiver() as healthy,
        SimpleServer(webhooks=settings) as server,
        from_uri(server.uri) as client,
    ):
        hanging.delay(60)  # accepts, never answers in time
        dead = client.webhooks.register(hanging.url)
        alive = client.webhooks.register(healthy.url)
        for i in range(20):
            client.create_container(f"c{i}")
        # The other webhook's deliveries are unaffected.
        healthy.wait_for(20, timeout=10)
        wait_until(
            lambda: server.app.state.services.worker.status()["endpoints_held_back"],
            timeout=10,
            message="the breaker opens",
        )
        # Held back: a bounded number of attempts, one probe per back-off at most.
        before = attempts_spent(client, dead.id)
        time.sleep(3)  # a window of real time to count attempts in, not a wait for delivery
        spent = attempts_spent(client, dead.id) - before
        assert spent <= 3 / BREAKER["breaker_backoff"] + 4, spent
        # 20 deliveries x 21 attempts each were allowed: held-back ones kept theirs.
        history = client.webhooks.history(dead.id)
        assert {d.outcome for d in history} == {"pending"}
        assert sum(1 for d in history if d.attempts == 0) >= 10
        assert client.webhooks.get(dead.id).active is True
        # It recovers on its own once the endpoint answers again.
        hanging.delay(0)
        server.drain(timeout=30)
        assert {d.outcome for d in client.webhooks.history(dead.id)} == {"success"}
        assert {d.outcome for d in client.webhooks.history(alive.id)} == {"success"}
        assert not server.app.state.services.worker.status()["endpoints_held_back"]


def test_a_refusing_endpoint_is_held_back_and_recovers_on_its_own():
    refusing = WebhookReceiver().start()
    url = refusing.url
    refusing.stop()  # connections to its port are refused until it starts again
    try:
        with (
            WebhookReceiver() as healthy,
            SimpleServer(webhooks=BREAKER) as server,
            from_uri(server.uri) as client,
        ):
            dead = client.webhooks.register(url)
            client.webhooks.register(healthy.url)
            for i in range(10):
                client.create_container(f"c{i}")
            healthy.wait_for(10, timeout=10)
            wait_until(
                lambda: server.app.state.services.worker.status()["endpoints_held_back"],
                timeout=10,
                message="the breaker opens",
            )
            before = attempts_spent(client, dead.id)
            time.sleep(2)  # a window of real time to count attempts in
            spent = attempts_spent(client, dead.id) - before
            assert spent <= 2 / BREAKER["breaker_backoff"] + 4, spent
            refusing.start()
            refusing.wait_for(10, timeout=20, unique=True)
            server.drain(timeout=20)
            assert {d.outcome for d in client.webhooks.history(dead.id)} == {"success"}
    finally:
        refusing.stop()


def test_an_endpoint_failing_for_too_long_disables_its_webhooks_visibly():
    refusing = WebhookReceiver().start()
    url = refusing.url
    refusing.stop()
    settings = {**BREAKER, "disable_endpoint_after": 1.0}
    with (
        WebhookReceiver() as healthy,
        SimpleServer(webhooks=settings) as server,
        from_uri(server.uri) as client,
    ):
        first = client.webhooks.register(url)
        second = client.webhooks.register(url + "/other")  # same endpoint
        alive = client.webhooks.register(healthy.url)
        for i in range(5):
            client.create_container(f"c{i}")
        server.drain(timeout=20)  # settles: the endpoint's webhooks are disabled
        for hook in (first, second):
            disabled = client.webhooks.get(hook.id)
            assert disabled.active is False
            assert "failed continuously" in disabled.disabled_reason
            assert "ConnectError" in disabled.disabled_reason
            history = client.webhooks.history(hook.id)
            assert {d.outcome for d in history} == {"failed"}
            assert all("failed continuously" in d.error_detail for d in history if d.attempts == 0)
        assert client.webhooks.get(alive.id).active is True
        assert {d.outcome for d in client.webhooks.history(alive.id)} == {"success"}
