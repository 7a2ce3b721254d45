"""Group commit of outcomes, and the clock seam."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.server.services import Seams
from hookbook.testing import WebhookReceiver
from hookbook.webhooks.clock import SystemClock


def test_outcomes_that_finish_together_share_one_transaction():
    # A generous wait, so that the test does not depend on the machine's speed:
    # the ten attempts of one fan-out finish well within it.
    settings = {"group_commit_wait": 0.5, "retry_schedule": [0.01]}
    with (
        WebhookReceiver() as receiver,
        SimpleServer(webhooks=settings) as server,
        from_uri(server.uri) as client,
    ):
        hooks = [client.webhooks.register(receiver.url_for(f"/h{i}")) for i in range(10)]
        updates: list[str] = []

        def log(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
            # The outcome's update, conditional on the lease token (SQLite's paramstyle).
            if statement.startswith("UPDATE deliveries") and "lease_token = ?" in statement:
                updates.append(statement)

        writer = server.app.state.services.db.writer.sync_engine
        event.listen(writer, "before_cursor_execute", log)
        try:
            client.create_container("a")
            receiver.wait_for(10, timeout=10)
            server.drain()  # returns once the outcomes are committed
            history = [client.webhooks.history(h.id)[0] for h in hooks]
        finally:
            event.remove(writer, "before_cursor_execute", log)
    assert [d.outcome for d in history] == ["success"] * 10
    assert 1 <= len(updates) <= 3, updates  # ten outcomes, one statement per batch


class ShiftedClock(SystemClock):
    """The real clock, an hour behind."""

    def time(self) -> float:
        return super().time() - 3600

    def now(self) -> datetime:
        return super().now() - timedelta(hours=1)


def test_the_engine_reads_the_injected_clock():
    with (
        WebhookReceiver() as receiver,
        SimpleServer(webhooks={}, seams=Seams(clock=ShiftedClock())) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url)
        client.create_container("a")
        receiver.wait_for(1, timeout=10)
        server.drain()
        (record,) = client.webhooks.history(hook.id)
        delivery = client.webhooks.delivery(record.id)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    stamps = (
        hook.time_created,
        record.time_created,
        record.delivered_at,
        delivery.attempt_log[0].started_at,
    )
    for stamp in stamps:
        assert abs(stamp - an_hour_ago) < timedelta(minutes=5), stamp
