"""What a delivery looks like on the wire, and which webhooks get which events."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import standardwebhooks

import hookbook
from conftest import wait_until
from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.signing import standard_webhooks_secret
from hookbook.testing import WebhookReceiver

FAST = {"retry_schedule": [0.01, 0.01]}
SECRET = "delivery-secret-ünï"  # non-ASCII on purpose: the key is its UTF-8 bytes
HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def server() -> Iterator[SimpleServer]:
    with SimpleServer(webhooks=FAST) as s:
        yield s


@pytest.fixture
def client(server):
    with from_uri(server.uri) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as r:
        yield r


def _tiled_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- #
# Headers and signatures
# --------------------------------------------------------------------------- #


def test_headers_and_both_signatures(server, client, receiver):
    client.webhooks.register(receiver.url, secret=SECRET)
    client.create_container("a")
    client.create_container("b")
    deliveries = receiver.wait_for(2, timeout=10)
    verifier = standardwebhooks.Webhook(standard_webhooks_secret(SECRET))
    for delivery in deliveries:
        headers = delivery.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == f"hookbook/{hookbook.__version__}"
        assert HEX32.fullmatch(delivery.event_id)
        assert headers["X-Tiled-Signature"] == _tiled_signature(delivery.body)
        assert headers["webhook-id"] == delivery.event_id
        assert headers["webhook-signature"].startswith("v1,")
        # The real standardwebhooks package verifies it (it raises otherwise).
        verified = verifier.verify(delivery.body, dict(headers))
        assert verified == delivery.json
        assert delivery.signature_valid is True
    assert deliveries[0].event_id != deliveries[1].event_id


def test_standard_webhooks_refuses_a_tampered_body(server, client, receiver):
    client.webhooks.register(receiver.url, secret=SECRET)
    client.create_container("a")
    (delivery,) = receiver.wait_for(1, timeout=10)
    verifier = standardwebhooks.Webhook(standard_webhooks_secret(SECRET))
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verifier.verify(delivery.body.replace(b'"a"', b'"z"'), dict(delivery.headers))
    wrong = standardwebhooks.Webhook(standard_webhooks_secret("another secret"))
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        wrong.verify(delivery.body, dict(delivery.headers))


def test_retries_keep_the_event_id_and_are_signed_afresh(receiver):
    # A wait of at least one second makes the integer webhook-timestamp move on.
    with (
        SimpleServer(webhooks={"retry_schedule": [1.3]}) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url, secret=SECRET)
        receiver.fail_next(1)
        client.create_container("a")
        first, second = receiver.wait_for(2, timeout=10)
        assert first.status_sent == 500 and second.status_sent == 200
        assert first.event_id == second.event_id
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == first.event_id
        assert first.body == second.body
        assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
        assert first.headers["webhook-signature"] != second.headers["webhook-signature"]
        verifier = standardwebhooks.Webhook(standard_webhooks_secret(SECRET))
        for delivery in (first, second):
            verifier.verify(delivery.body, dict(delivery.headers))
            # The timestamp is the attempt's, not the event's.
            stamp = datetime.fromtimestamp(int(delivery.headers["webhook-timestamp"]), tz=None)
            received = delivery.received_at.astimezone().replace(tzinfo=None)
            assert abs(received - stamp) < timedelta(seconds=2)


def test_no_signature_headers_without_a_secret(server, client):
    with WebhookReceiver() as plain:
        client.webhooks.register(plain.url)
        client.create_container("a")
        (delivery,) = plain.wait_for(1, timeout=10)
        names = {name.lower() for name in delivery.headers}
        assert "x-tiled-signature" not in names
        assert not names & {"webhook-id", "webhook-timestamp", "webhook-signature"}
        assert HEX32.fullmatch(delivery.event_id)
        assert delivery.headers["Content-Type"] == "application/json"


# --------------------------------------------------------------------------- #
# Payloads
# --------------------------------------------------------------------------- #


def _timestamp(payload: dict) -> datetime:
    stamp = datetime.fromisoformat(payload["timestamp"])
    assert stamp.utcoffset() == timedelta(0), payload["timestamp"]
    return stamp


def test_payload_fields_per_event_type(server, client, receiver):
    client.webhooks.register(receiver.url, secret=SECRET)
    run = client.create_container("run1", metadata={"scan": 7}, specs=["BlueskyRun"])
    (created,) = receiver.wait_for(1, timeout=10)
    assert created.json.keys() == {
        "type",
        "timestamp",
        "key",
        "path",
        "structure_family",
        "specs",
        "metadata",
    }
    assert created.json["type"] == "container-child-created"
    assert created.json["key"] == "run1"
    assert created.json["path"] == ["run1"]
    assert created.json["structure_family"] == "container"
    assert created.json["metadata"] == {"scan": 7}
    assert created.json["specs"][0]["name"] == "BlueskyRun"
    _timestamp(created.json)

    det = run.write_array(np.arange(3.0), key="det", metadata={"units": "mm"})
    array_created = receiver.wait_for(1, timeout=10, path="run1/det")[0].json
    assert array_created["structure_family"] == "array"
    assert array_created["path"] == ["run1", "det"]
    assert array_created["key"] == "det"
    assert array_created["metadata"] == {"units": "mm"}

    run.write_table(pd.DataFrame({"x": [1, 2]}), key="tbl")
    table_created = receiver.wait_for(1, timeout=10, path="run1/tbl")[0].json
    assert table_created["structure_family"] == "table"

    det.update_metadata(metadata={"units": "m"})
    (updated,) = receiver.wait_for(1, timeout=10, event_type="container-child-metadata-updated")
    assert updated.json.keys() == {"type", "timestamp", "key", "path", "specs", "metadata"}
    assert updated.json["metadata"] == {"units": "m"}
    assert updated.json["path"] == ["run1", "det"]

    det.close_stream()
    (closed,) = receiver.wait_for(1, timeout=10, event_type="stream-closed")
    assert closed.json.keys() == {"type", "timestamp", "key", "path"}
    assert closed.json["path"] == ["run1", "det"]
    assert closed.json["key"] == "det"

    run.delete()
    (deleted,) = receiver.wait_for(1, timeout=10, event_type="container-child-deleted")
    assert deleted.json.keys() == {"type", "timestamp", "key", "path"}
    assert deleted.json["path"] == ["run1"]
    _timestamp(deleted.json)
    server.drain()
    # One event per change: nothing extra for the deleted children.
    assert len(receiver.deliveries) == 6
    assert all(d.signature_valid for d in receiver.deliveries)


def test_history_payload_is_the_body_that_was_sent(server, client, receiver):
    hook = client.webhooks.register(receiver.url, secret=SECRET)
    client.create_container("a", metadata={"n": 1})
    (delivery,) = receiver.wait_for(1, timeout=10)
    server.drain()
    (record,) = client.webhooks.history(hook.id)
    assert record.payload == delivery.json
    assert record.event_id == delivery.event_id


# --------------------------------------------------------------------------- #
# Who gets what
# --------------------------------------------------------------------------- #


def test_subtree_matching(server, client):
    a = client.create_container("a")
    b = a.create_container("b")
    x = client.create_container("x")
    with WebhookReceiver() as on_a, WebhookReceiver() as on_root, WebhookReceiver() as on_b:
        client.webhooks.register(on_a.url, path="a")
        client.webhooks.register(on_root.url)
        client.webhooks.register(on_b.url, path=["a", "b"])
        b.create_container("c")
        x.create_container("y")
        a.create_container("d")
        server.drain()
        assert sorted(d.node_path for d in on_a.deliveries) == [("a", "b", "c"), ("a", "d")]
        assert sorted(d.node_path for d in on_root.deliveries) == [
            ("a", "b", "c"),
            ("a", "d"),
            ("x", "y"),
        ]
        assert [d.node_path for d in on_b.deliveries] == [("a", "b", "c")]
        # Events on the node itself count too.
        a.update_metadata(metadata={"k": 1})
        on_a.wait_for(3, timeout=10)
        server.drain()
        assert on_a.deliveries[-1].json["type"] == "container-child-metadata-updated"
        assert len(on_b.deliveries) == 1


def test_event_type_filter(server, client):
    with WebhookReceiver() as only_closed, WebhookReceiver() as everything:
        client.webhooks.register(only_closed.url, events=["stream-closed"])
        client.webhooks.register(everything.url)
        node = client.write_array(np.arange(4), key="arr")
        node.update_metadata(metadata={"a": 1})
        node.close_stream()
        everything.wait_for(3, timeout=10)
        server.drain()
        assert [d.event_type for d in only_closed.deliveries] == ["stream-closed"]
        assert [d.event_type for d in everything.deliveries] == [
            "container-child-created",
            "container-child-metadata-updated",
            "stream-closed",
        ]


def test_deleted_subtree_removes_its_webhooks_and_tells_the_ancestors(server, client):
    a = client.create_container("a")
    a.create_container("b").create_container("c")
    client.create_container("keep")
    with WebhookReceiver() as outside, WebhookReceiver() as inside:
        on_root = client.webhooks.register(outside.url)
        on_keep = client.webhooks.register(outside.url_for("/keep"), path="keep")
        on_a = client.webhooks.register(inside.url, path="a")
        on_b = client.webhooks.register(inside.url_for("/b"), path="a/b")
        a.delete()
        (deleted,) = outside.wait_for(1, timeout=10)
        server.drain()
        assert deleted.json["type"] == "container-child-deleted"
        assert deleted.json["path"] == ["a"]
        assert inside.deliveries == []
        assert {w.id for w in client.webhooks.list_all()} == {on_root.id, on_keep.id}
        for gone in (on_a, on_b):
            with pytest.raises(hookbook.errors.NotFoundError):
                client.webhooks.get(gone.id)
        # The path can be used again; the old webhooks do not come back.
        client.create_container("a")
        outside.wait_for(2, timeout=10)
        server.drain()
        assert inside.deliveries == []
        assert [d.path for d in outside.deliveries] == ["/webhook", "/webhook"]


def test_a_node_deleted_before_it_was_announced_takes_its_webhooks_along(server, client):
    store = server.app.state.services.store
    structure = client.write_array(np.zeros(2), key="model").structure
    # Declared, its data not written yet: not announced.
    server.run(store.create("", "declared", "array", structure=structure))
    with WebhookReceiver() as outside, WebhookReceiver() as on_it:
        watcher = client.webhooks.register(outside.url)
        doomed = client.webhooks.register(on_it.url, path="declared")
        assert server.run(store.delete("declared")) == 1
        client.create_container("after")  # an event that does go out, to wait on
        outside.wait_for(1, timeout=10)
        server.drain()
        assert [d.json["type"] for d in outside.deliveries] == ["container-child-created"]
        assert on_it.deliveries == []
        assert [w.id for w in client.webhooks.list_all()] == [watcher.id]
        with pytest.raises(hookbook.errors.NotFoundError):
            client.webhooks.get(doomed.id)


def test_the_worker_drops_rows_it_holds_for_webhooks_deleted_with_their_node():
    # The first attempt stays in flight until the server closes (the wait below
    # is far shorter); the next row waits behind it, in the worker's memory.
    settings = {
        "max_in_flight_per_host": 1,
        "read_timeout": 300,
        "shutdown_grace": 0.5,
        "retry_schedule": [0.01],
    }
    with (
        WebhookReceiver() as slow,
        SimpleServer(webhooks=settings) as server,
        from_uri(server.uri) as client,
    ):
        slow.delay(300)
        worker = server.app.state.services.worker
        run = client.create_container("run")
        client.webhooks.register(slow.url, path="run")
        run.create_container("first")
        run.create_container("second")
        wait_until(
            lambda: worker.status()["queued"] == 1,
            timeout=10,
            message=f"one row queued behind the attempt in flight: {worker.status()}",
        )
        run.delete()
        wait_until(
            lambda: worker.status()["queued"] == 0,
            timeout=10,
            message=f"the worker forgets the deleted webhook's row: {worker.status()}",
        )


def test_a_write_that_fails_sends_nothing(server, client, receiver):
    client.webhooks.register(receiver.url)
    client.create_container("a")
    receiver.wait_for(1, timeout=10)
    with pytest.raises(hookbook.errors.AlreadyExistsError):
        client.create_container("a")
    server.drain()
    assert len(receiver.deliveries) == 1


def test_one_change_fans_out_to_every_matching_webhook(server, client):
    with WebhookReceiver() as r:
        hooks = [client.webhooks.register(r.url_for(f"/h{i}")) for i in range(5)]
        client.create_container("a")
        deliveries = r.wait_for(5, timeout=10)
        server.drain()
        assert sorted(d.path for d in deliveries) == [f"/h{i}" for i in range(5)]
        # One event id per delivery, not per event.
        assert len({d.event_id for d in deliveries}) == 5
        for hook in hooks:
            (record,) = client.webhooks.history(hook.id)
            assert record.outcome == "success"
