"""Retries, classification, the attempt log, disabling and re-enabling (testing-mode schedules)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from conftest import wait_until
from held import HeldReceiver
from hookbook.client import from_uri
from hookbook.errors import ConflictError
from hookbook.server import SimpleServer
from hookbook.server.services import Seams
from hookbook.testing import ScriptedResponse, WebhookReceiver

FAST = {"retry_schedule": [0.01, 0.01]}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def server() -> Iterator[SimpleServer]:
    with SimpleServer(webhooks=FAST) as s:
        yield s


@pytest.fixture
def client(server):
    with from_uri(server.uri) as c:
        yield c


def only_delivery(client, hook_id):
    (record,) = client.webhooks.history(hook_id)
    return client.webhooks.delivery(record.id)


def leased(server: SimpleServer) -> int:
    """How many deliveries a worker holds (in flight), read from the outbox."""
    conn = sqlite3.connect(server.directory / "hookbook.db", timeout=10)
    try:
        return conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE lease_token IS NOT NULL"
        ).fetchone()[0]
    finally:
        conn.close()


def outbox_rows(server: SimpleServer) -> tuple[int, int]:
    """How many delivery rows and attempt rows the outbox holds."""
    conn = sqlite3.connect(server.directory / "hookbook.db", timeout=10)
    try:
        return (
            conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0],
        )
    finally:
        conn.close()


# --------------------------------------------------------------------------- #
# The schedule
# --------------------------------------------------------------------------- #


def test_two_failures_then_success_on_the_third_attempt(server, client, receiver):
    hook = client.webhooks.register(receiver.url)
    receiver.respond_with(
        ScriptedResponse(500, body="first failure"), ScriptedResponse(502, body="bad gateway")
    )
    client.create_container("a")
    deliveries = receiver.wait_for(3, timeout=10)
    server.drain()
    assert [d.status_sent for d in deliveries] == [500, 502, 200]
    assert len({d.event_id for d in deliveries}) == 1
    delivery = only_delivery(client, hook.id)
    assert delivery.outcome == "success"
    assert delivery.attempts == 3
    assert delivery.status_code == 200
    assert delivery.error_detail is None
    log = delivery.attempt_log
    assert [a.number for a in log] == [1, 2, 3]
    assert [a.status_code for a in log] == [500, 502, 200]
    assert [a.error for a in log] == ["HTTP 500", "HTTP 502", None]
    assert [a.response_excerpt for a in log] == ["first failure", "bad gateway", '{"ok": true}']
    assert all(isinstance(a.started_at, datetime) for a in log)
    assert log[0].started_at <= log[1].started_at <= log[2].started_at
    assert all(a.duration_ms >= 0 for a in log)


def test_every_attempt_fails(server, client, receiver):
    hook = client.webhooks.register(receiver.url)
    receiver.fail_next(3, status=503)
    client.create_container("a")
    receiver.wait_for(3, timeout=10)
    server.drain()
    delivery = only_delivery(client, hook.id)
    assert delivery.outcome == "failed"
    assert delivery.attempts == 3
    assert delivery.status_code == 503
    assert delivery.delivered_at is None
    assert "3 attempts" in delivery.error_detail
    assert "503" in delivery.error_detail
    assert len(delivery.attempt_log) == 3
    # No fourth attempt.
    assert len(receiver.deliveries) == 3


def test_schedule_length_sets_the_number_of_attempts(receiver):
    with (
        SimpleServer(webhooks={"retry_schedule": [0.01, 0.01, 0.01, 0.01]}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        receiver.fail_next(10)
        client.create_container("a")
        receiver.wait_for(5, timeout=10)
        server.drain()
        assert only_delivery(client, hook.id).attempts == 5
        assert len(receiver.deliveries) == 5


def test_history_shows_pending_with_the_true_attempt_count(server, client):
    with HeldReceiver() as receiver:
        hook = client.webhooks.register(receiver.url)
        receiver.hold()  # each attempt waits for the test's go-ahead
        receiver.fail_next(3)
        client.create_container("a")

        def pending_with(n):
            history = client.webhooks.history(hook.id)
            return history if history[0].attempts == n else None

        receiver.wait_arrived(1, timeout=10)
        receiver.allow(1)  # the first attempt fails; the second is then held
        receiver.wait_arrived(2, timeout=10)
        (after_one,) = wait_until(lambda: pending_with(1), timeout=10, message="1 attempt")
        assert after_one.outcome == "pending"
        assert after_one.status_code == 500
        assert after_one.error_detail == "HTTP 500"
        receiver.allow(1)  # the second fails; the third is held
        receiver.wait_arrived(3, timeout=10)
        (after_two,) = wait_until(lambda: pending_with(2), timeout=10, message="2 attempts")
        assert after_two.outcome == "pending"
        assert after_two.delivered_at is None
        assert len(client.webhooks.delivery(after_two.id).attempt_log) == 2
        with pytest.raises(TimeoutError, match="1 deliveries still pending"):
            server.drain(timeout=0.2)
        receiver.release()
        server.drain()
        (settled,) = client.webhooks.history(hook.id)
        assert (settled.outcome, settled.attempts) == ("failed", 3)


# --------------------------------------------------------------------------- #
# Classification
# --------------------------------------------------------------------------- #


def test_a_reset_connection_is_retried(server, client, receiver):
    hook = client.webhooks.register(receiver.url)
    receiver.reset_next(1)
    client.create_container("a")
    receiver.wait_for(2, timeout=10)
    server.drain()
    delivery = only_delivery(client, hook.id)
    assert delivery.outcome == "success"
    assert delivery.attempts == 2
    first, second = delivery.attempt_log
    assert first.status_code is None
    assert first.error
    assert second.status_code == 200


def test_a_refused_connection_is_retried_then_fails(server, client, reserved_port):
    url = f"http://127.0.0.1:{reserved_port}/hook"
    hook = client.webhooks.register(url)
    client.create_container("a")
    server.drain()
    delivery = only_delivery(client, hook.id)
    assert delivery.outcome == "failed"
    assert delivery.attempts == 3
    assert delivery.status_code is None
    assert "ConnectError" in delivery.error_detail
    assert all(a.status_code is None and "ConnectError" in a.error for a in delivery.attempt_log)


def test_4xx_is_retried(server, client, receiver):
    hook = client.webhooks.register(receiver.url)
    receiver.respond_with(ScriptedResponse(400), ScriptedResponse(404))
    client.create_container("a")
    receiver.wait_for(3, timeout=10)
    server.drain()
    delivery = only_delivery(client, hook.id)
    assert [a.status_code for a in delivery.attempt_log] == [400, 404, 200]
    assert delivery.outcome == "success"


def test_redirects_are_not_followed(server, client, receiver):
    hook = client.webhooks.register(receiver.url)
    elsewhere = receiver.url_for("/elsewhere")
    receiver.respond_with(*[ScriptedResponse(307, headers={"Location": elsewhere})] * 3)
    client.create_container("a")
    receiver.wait_for(3, timeout=10)
    server.drain()
    assert {d.path for d in receiver.deliveries} == {"/webhook"}
    delivery = only_delivery(client, hook.id)
    assert delivery.outcome == "failed"
    assert delivery.attempts == 3
    assert delivery.status_code == 307
    assert "redirect" in delivery.error_detail


def test_response_excerpt_is_capped(receiver):
    with (
        SimpleServer(webhooks={**FAST, "response_excerpt_bytes": 8}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        receiver.respond_with(ScriptedResponse(200, body="0123456789" * 100))
        client.create_container("a")
        receiver.wait_for(1, timeout=10)
        server.drain()
        (attempt,) = only_delivery(client, hook.id).attempt_log
        assert attempt.response_excerpt == "01234567"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_up_to_the_cap(receiver, status):
    cap = 0.6
    with (
        SimpleServer(webhooks={**FAST, "retry_after_cap": cap}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        receiver.respond_with(ScriptedResponse(status, headers={"Retry-After": "3600"}))
        client.create_container("a")
        receiver.wait_for(2, timeout=10)
        server.drain()
        delivery = only_delivery(client, hook.id)
        assert delivery.outcome == "success"
        first, second = delivery.attempt_log
        assert first.status_code == status
        waited = (second.started_at - first.started_at).total_seconds()
        assert waited >= cap * 0.95, waited


# --------------------------------------------------------------------------- #
# 410 Gone and auto-disable
# --------------------------------------------------------------------------- #


def test_410_stops_disables_and_settles_queued_deliveries():
    with (
        HeldReceiver() as receiver,
        SimpleServer(webhooks={**FAST, "max_in_flight_per_host": 1}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        receiver.gone()
        receiver.hold()  # the first attempt is in flight while the rest queue
        for key in ("a", "b", "c"):
            client.create_container(key)
        receiver.wait_arrived(1, timeout=10)
        receiver.release()
        receiver.wait_for(1, timeout=10)
        server.drain()
        assert len(receiver.deliveries) == 1
        assert receiver.deliveries[0].status_sent == 410
        disabled = client.webhooks.get(hook.id)
        assert disabled.active is False
        assert "410" in disabled.disabled_reason
        history = client.webhooks.history(hook.id)
        assert [d.outcome for d in history] == ["failed"] * 3
        first = history[-1]
        assert first.attempts == 1
        assert first.status_code == 410
        assert "410" in first.error_detail
        for queued in history[:-1]:
            assert queued.attempts == 0
            assert "disabled" in queued.error_detail
        # Disabled: new events are not queued for it.
        client.create_container("d")
        server.drain()
        assert len(client.webhooks.history(hook.id)) == 3

        # PATCH active=true enables it again.
        receiver.clear()
        enabled = client.webhooks.update(hook.id, active=True)
        assert enabled.active is True
        assert enabled.disabled_reason is None
        client.create_container("e")
        (delivery,) = receiver.wait_for(1, timeout=10)
        assert delivery.key == "e"
        server.drain()
        assert client.webhooks.history(hook.id, limit=1)[0].outcome == "success"


def test_auto_disable_after_consecutive_failed_deliveries(receiver):
    with (
        SimpleServer(webhooks={**FAST, "auto_disable_after": 2}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        # failed, success, failed: not consecutive, still active.
        receiver.fail_next(3)
        client.create_container("a")
        receiver.wait_for(3, timeout=10)
        server.drain()
        client.create_container("b")
        receiver.wait_for(4, timeout=10)
        server.drain()
        receiver.fail_next(3)
        client.create_container("c")
        receiver.wait_for(7, timeout=10)
        server.drain()
        still = client.webhooks.get(hook.id)
        assert still.active is True
        assert still.consecutive_failures == 1
        # A second failed delivery in a row disables it.
        receiver.fail_next(3)
        client.create_container("d")
        receiver.wait_for(10, timeout=10)
        server.drain()
        disabled = client.webhooks.get(hook.id)
        assert disabled.active is False
        assert "2 consecutive failed deliveries" in disabled.disabled_reason
        client.create_container("e")
        server.drain()
        assert len(receiver.deliveries) == 10
        assert [d.payload["key"] for d in client.webhooks.history(hook.id)] == [
            "d",
            "c",
            "b",
            "a",
        ]
        # Redelivering to a disabled webhook is refused, saying why.
        failed = client.webhooks.history(hook.id, outcome="failed")[0]
        with pytest.raises(ConflictError, match="disabled"):
            client.webhooks.redeliver(failed.id)
        # Enabled again, with a clean count.
        enabled = client.webhooks.update(hook.id, active=True)
        assert enabled.active is True
        assert enabled.consecutive_failures == 0
        client.create_container("f")
        receiver.wait_for(11, timeout=10)
        server.drain()
        assert client.webhooks.get(hook.id).active is True


def test_redeliver_a_failed_delivery(server, client, receiver):
    hook = client.webhooks.register(receiver.url)
    receiver.fail_next(3)
    client.create_container("a")
    receiver.wait_for(3, timeout=10)
    server.drain()
    (failed,) = client.webhooks.history(hook.id)
    assert failed.outcome == "failed"
    again = client.webhooks.redeliver(failed.id)
    assert again.id != failed.id
    assert again.event_id == failed.event_id
    assert again.redelivery_of == failed.id
    fourth = receiver.wait_for(4, timeout=10)[-1]
    assert fourth.event_id == failed.event_id
    server.drain()
    assert client.webhooks.delivery(again.id).outcome == "success"
    assert client.webhooks.delivery(failed.id).outcome == "failed"


def test_ping_is_retried_like_any_delivery(server, client, receiver):
    hook = client.webhooks.register(receiver.url, events=["stream-closed"])
    receiver.fail_next(1)
    ping = client.webhooks.ping(hook.id)
    receiver.wait_for(2, timeout=10)
    server.drain()
    done = client.webhooks.delivery(ping.id)
    assert done.event_type == "ping"
    assert done.outcome == "success"
    assert done.attempts == 2


def test_a_disabled_webhook_is_not_pinged(server, client, receiver):
    hook = client.webhooks.register(receiver.url)
    receiver.gone()
    client.webhooks.ping(hook.id)
    receiver.wait_for(1, timeout=10)
    server.drain()
    assert client.webhooks.get(hook.id).active is False
    with pytest.raises(ConflictError, match="410 Gone") as caught:
        client.webhooks.ping(hook.id)
    assert "PATCH" in str(caught.value)
    server.drain()
    assert len(receiver.deliveries) == 1
    assert len(client.webhooks.history(hook.id)) == 1


def test_deleting_a_webhook_while_its_delivery_is_in_flight(server, client, caplog):
    with HeldReceiver() as receiver:
        hook = client.webhooks.register(receiver.url)
        receiver.hold()
        client.create_container("a")
        receiver.wait_arrived(1, timeout=10)
        assert leased(server) == 1  # in flight
        client.webhooks.delete(hook.id)
        # The delete takes the delivery with it, in flight or not.
        assert outbox_rows(server) == (0, 0)
        receiver.release()  # the answer comes after the webhook is gone
        (answered,) = receiver.wait_for(1, timeout=10)
        assert answered.status_sent == 200
        worker = server.app.state.services.worker
        wait_until(lambda: worker.status()["in_flight"] == 0, timeout=10, message="worker idle")
        server.drain()
        # The outcome had nothing to be recorded against: nothing came back,
        # nothing was sent again, and the worker is fine.
        assert outbox_rows(server) == (0, 0)
        assert len(receiver.deliveries) == 1
        assert (worker.status()["state"], worker.status()["last_error"]) == ("running", None)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_read_timeout_is_retried_and_logged():
    with (
        HeldReceiver() as receiver,
        SimpleServer(webhooks={"retry_schedule": [0.01], "read_timeout": 0.2}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        receiver.hold()  # never answers in time
        client.create_container("a")
        server.drain()
        delivery = only_delivery(client, hook.id)
        assert delivery.outcome == "failed"
        assert delivery.attempts == 2
        assert [a.error for a in delivery.attempt_log] == ["timeout: ReadTimeout"] * 2
        assert "ReadTimeout" in delivery.error_detail


def test_disabling_by_patch_settles_what_is_queued(receiver):
    with (
        SimpleServer(webhooks={"retry_schedule": [30]}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        receiver.fail_next(1)
        client.create_container("a")
        receiver.wait_for(1, timeout=10)
        wait_until(
            lambda: client.webhooks.history(hook.id)[0].attempts == 1, timeout=5, message="retry"
        )
        client.webhooks.update(hook.id, active=False)
        server.drain(timeout=5)
        (record,) = client.webhooks.history(hook.id)
        assert record.outcome == "failed"
        assert "disabled by PATCH" in record.error_detail
        assert len(receiver.deliveries) == 1


def test_an_unexpected_error_while_sending_is_settled_not_retried(caplog):
    calls = []

    def broken(request):
        calls.append(request)
        raise RuntimeError("a bug in a transport")

    seams = Seams(transport=httpx.MockTransport(broken))
    with (
        SimpleServer(webhooks=FAST, seams=seams) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register("http://127.0.0.1:9/hook")
        client.create_container("a")
        server.drain()
        delivery = only_delivery(client, hook.id)
    assert len(calls) == 1
    assert delivery.outcome == "failed"
    assert "internal error" in delivery.error_detail
    assert "a bug in a transport" in delivery.error_detail
    assert any(r.levelno == logging.ERROR for r in caplog.records)
