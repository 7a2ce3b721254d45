"""``client.webhooks``: every method, typed answers, readable repr and HTML tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from hookbook.client import Attempt, DeliveryRecord, Webhook, from_uri
from hookbook.client.webhooks import DeliveryList, WebhookList
from hookbook.errors import (
    DuplicateWebhookError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver

FAST = {"retry_schedule": [0.01, 0.01]}


@pytest.fixture
def server() -> Iterator[SimpleServer]:
    with SimpleServer(
        webhooks=FAST,
        api_keys=[{"key": "reader_only_key", "scopes": ["read:webhooks", "read:metadata"]}],
    ) as s:
        yield s


@pytest.fixture
def client(server):
    with from_uri(server.uri) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret="client-secret") as r:
        yield r


def test_register_returns_a_typed_webhook(client, receiver):
    hook = client.webhooks.register(receiver.url, secret="client-secret")
    assert isinstance(hook, Webhook)
    assert isinstance(hook.id, int)
    assert hook.url == receiver.url
    assert hook.events is None
    assert hook.active is True
    assert hook.path == []
    assert hook.has_secret is True
    assert hook.disabled_reason is None
    assert isinstance(hook.time_created, datetime)
    assert hook.time_created.tzinfo is not None
    assert not hasattr(hook, "secret")


def test_register_on_a_path_given_as_text_or_segments(client, receiver):
    client.create_container("a").create_container("b")
    by_text = client.webhooks.register(receiver.url, path="a/b", events=["stream-closed"])
    by_list = client.webhooks.register(receiver.url_for("/2"), path=["a", "b"])
    assert by_text.path == by_list.path == ["a", "b"]
    assert by_text.events == ["stream-closed"]
    listed = client.webhooks.list("a/b")
    assert isinstance(listed, WebhookList)
    assert [w.id for w in listed] == [by_text.id, by_list.id]
    assert client.webhooks.list(["a", "b"]) == listed
    assert list(client.webhooks.list()) == []
    assert [w.id for w in client.webhooks.list_all()] == [by_text.id, by_list.id]


def test_get_update_delete(client, receiver):
    hook = client.webhooks.register(receiver.url)
    assert client.webhooks.get(hook.id) == hook
    changed = client.webhooks.update(hook.id, events=["container-child-created"], active=False)
    assert changed.events == ["container-child-created"]
    assert changed.active is False
    assert changed.disabled_reason
    again = client.webhooks.update(hook.id, active=True, events=[])
    assert again.active is True
    assert again.events is None
    signed = client.webhooks.update(hook.id, secret="now-signed")
    assert signed.has_secret is True
    assert client.webhooks.update(hook.id, secret=None).has_secret is False
    with pytest.raises(TypeError, match="colour"):
        client.webhooks.update(hook.id, colour="blue")
    assert client.webhooks.delete(hook.id) is None
    with pytest.raises(NotFoundError):
        client.webhooks.get(hook.id)
    with pytest.raises(NotFoundError):
        client.webhooks.history(hook.id)


def test_errors_are_hookbook_exceptions(client, receiver):
    hook = client.webhooks.register(receiver.url)
    with pytest.raises(DuplicateWebhookError) as caught:
        client.webhooks.register(receiver.url)
    assert caught.value.status_code == 409
    assert caught.value.context["webhook_id"] == hook.id
    with pytest.raises(NotFoundError):
        client.webhooks.register(receiver.url, path="missing")
    with pytest.raises(NotFoundError):
        client.webhooks.delivery(99999)


def test_bad_bodies_are_refused_by_the_servers_own_models_before_sending(server, client, receiver):
    hook = client.webhooks.register(receiver.url, events=[])  # [] means every event
    assert hook.events is None
    # Refused by the client: the server's own 422 would name the location "body.events.0".
    with pytest.raises(InvalidRequestError, match=r"^events\.0: Input should be"):
        client.webhooks.register(receiver.url + "/other", events=["entry-created"])
    with pytest.raises(InvalidRequestError, match="lists stream-closed more than once"):
        client.webhooks.register(receiver.url + "/other", events=["stream-closed", "stream-closed"])
    with pytest.raises(InvalidRequestError, match="active may not be null"):
        client.webhooks.update(hook.id, active=None)
    with pytest.raises(InvalidRequestError, match=r"^secret: String should have at least 1"):
        client.webhooks.update(hook.id, secret="")
    # Nothing reached the server: one webhook, unchanged.
    (only,) = client.webhooks.list_all()
    assert (only.id, only.active, only.has_secret) == (hook.id, True, False)


def test_a_narrow_key_gets_permission_denied(server, receiver):
    with from_uri(server.uri, api_key="reader_only_key") as reader:
        assert list(reader.webhooks.list_all()) == []
        with pytest.raises(PermissionDeniedError, match="write:webhooks"):
            reader.webhooks.register(receiver.url)


def test_history_delivery_redeliver_ping(server, client, receiver):
    hook = client.webhooks.register(receiver.url, secret="client-secret")
    receiver.fail_next(1)
    client.create_container("a")
    receiver.wait_for(2, timeout=10)
    server.drain()

    history = client.webhooks.history(hook.id)
    assert isinstance(history, DeliveryList)
    (record,) = history
    assert isinstance(record, DeliveryRecord)
    assert record.webhook_id == hook.id
    assert record.event_type == "container-child-created"
    assert record.outcome == "success"
    assert record.attempts == 2
    assert record.status_code == 200
    assert record.payload["key"] == "a"
    assert record.event_id == receiver.deliveries[-1].event_id
    assert isinstance(record.delivered_at, datetime)
    assert record.attempt_log is None  # the history is a summary

    detail = client.webhooks.delivery(record.id)
    assert [type(a) for a in detail.attempt_log] == [Attempt, Attempt]
    first, second = detail.attempt_log
    assert (first.number, first.status_code, first.error) == (1, 500, "HTTP 500")
    assert (second.number, second.status_code, second.error) == (2, 200, None)
    assert isinstance(first.started_at, datetime)

    again = client.webhooks.redeliver(record.id)
    assert isinstance(again, DeliveryRecord)
    assert again.redelivery_of == record.id
    assert again.event_id == record.event_id
    ping = client.webhooks.ping(hook.id)
    assert ping.event_type == "ping"
    receiver.wait_for(4, timeout=10)
    server.drain()
    assert [d.event_type for d in client.webhooks.history(hook.id)] == [
        "ping",
        "container-child-created",
        "container-child-created",
    ]
    assert [d.id for d in client.webhooks.history(hook.id, event_type="ping")] == [ping.id]
    assert len(client.webhooks.history(hook.id, limit=1)) == 1
    assert [d.id for d in client.webhooks.history(hook.id, before=again.id)] == [record.id]
    assert client.webhooks.history(hook.id, outcome="failed") == []
    assert all(d.signature_valid for d in receiver.deliveries)


def test_repr_is_readable(server, client, receiver):
    hook = client.webhooks.register(receiver.url, path="", events=["stream-closed"])
    text = repr(hook)
    assert text.startswith("<Webhook ")
    assert str(hook.id) in text
    assert receiver.url in text
    assert "stream-closed" in text
    assert "active" in text
    disabled = client.webhooks.update(hook.id, active=False)
    assert "disabled" in repr(disabled)
    client.webhooks.update(hook.id, active=True, events=[])
    assert "all events" in repr(client.webhooks.get(hook.id))

    ping = client.webhooks.ping(hook.id)
    receiver.wait_for(1, timeout=10)
    server.drain()
    delivery = client.webhooks.delivery(ping.id)
    text = repr(delivery)
    assert text.startswith("<DeliveryRecord ")
    assert str(delivery.id) in text
    assert "ping" in text
    assert "success" in text
    assert "attempts=1" in text
    assert "status=200" in text


def test_repr_html_tables(server, client, receiver):
    hook = client.webhooks.register(receiver.url + "?a=1&b=2")
    html = hook._repr_html_()
    assert html.startswith("<table>")
    assert "<caption>Webhook" in html
    assert "?a=1&amp;b=2" in html  # escaped
    assert "?a=1&b=2" not in html
    listed = client.webhooks.list_all()._repr_html_()
    assert "<table>" in listed and "?a=1&amp;b=2" in listed

    client.create_container("a")
    receiver.wait_for(1, timeout=10)
    server.drain()
    history = client.webhooks.history(hook.id)
    table = history._repr_html_()
    assert "1 deliveries" in table
    assert "container-child-created" in table
    assert "success" in table
    detail = client.webhooks.delivery(history[0].id)._repr_html_()
    assert detail.count("<table>") == 2  # the delivery and its attempts
    assert "Attempts" in detail


def test_the_old_name_of_the_history_record_warns_only_when_used():
    import warnings

    import hookbook.client

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec("from hookbook.client import *", {})  # listing the module stays quiet
        assert "Delivery" not in hookbook.client.__all__
    with pytest.warns(DeprecationWarning, match="DeliveryRecord"):
        from hookbook.client import Delivery
    assert Delivery is DeliveryRecord
    with pytest.raises(AttributeError):
        hookbook.client.NoSuchName  # noqa: B018
