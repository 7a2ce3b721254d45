"""The webhook HTTP API through raw httpx, exactly as a Tiled user would call it.

Routes, bodies, fields and status codes are Tiled's (DESIGN.md "HTTP API");
the management routes beyond Tiled are checked here too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime

import httpx
import numpy as np
import pytest

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver

FAST = {"retry_schedule": [0.01, 0.01]}
TILED_WEBHOOK_FIELDS = {"id", "url", "events", "active", "time_created"}
TILED_RECORD_FIELDS = {
    "id",
    "webhook_id",
    "event_type",
    "payload",
    "status_code",
    "attempts",
    "outcome",
    "error_detail",
    "time_created",
    "delivered_at",
}


@pytest.fixture
def server() -> Iterator[SimpleServer]:
    with SimpleServer(
        webhooks=FAST,
        api_keys=[
            {"key": "reader_key_0001", "scopes": ["read:webhooks", "read:metadata"]},
            {"key": "writer_key_0001", "scopes": ["write:webhooks"]},
            {"key": "node_writer_001", "scopes": ["write:webhooks", "read:metadata"]},
            {"key": "catalog_key_001", "scopes": ["read:metadata", "write:metadata"]},
        ],
    ) as s:
        yield s


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def http(server: SimpleServer, key: str | None = None) -> httpx.Client:
    """A plain httpx client against the server, as in Tiled's docs."""
    headers = {"Authorization": f"Apikey {key or server.api_key}"}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=10, trust_env=False)


def register(api: httpx.Client, url: str, path: str = "", **body: object) -> dict:
    response = api.post(f"/api/v1/webhooks/target/{path}", json={"url": url, **body})
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- #
# The Tiled flow: register -> write -> deliver -> history
# --------------------------------------------------------------------------- #


def test_register_write_deliver_history_through_raw_httpx(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        assert hook.keys() >= TILED_WEBHOOK_FIELDS
        assert hook["url"] == receiver.url
        assert hook["events"] is None
        assert hook["active"] is True
        assert isinstance(hook["id"], int)
        datetime.fromisoformat(hook["time_created"])
        assert "secret" not in hook

        client.write_array(np.array([1.0, 2.0, 3.0]), key="temperature")
        client.write_array(np.array([10, 20, 30]), key="counts")
        delivered = receiver.wait_for(2, timeout=10)
        assert {d.key for d in delivered} == {"temperature", "counts"}
        server.drain()

        response = api.get(f"/api/v1/webhooks/history/{hook['id']}")
        assert response.status_code == 200
        records = response.json()
        assert len(records) == 2
        for record in records:
            assert TILED_RECORD_FIELDS | {"event_id"} <= record.keys()
            assert record["webhook_id"] == hook["id"]
            assert record["event_type"] == "container-child-created"
            assert record["outcome"] == "success"
            assert record["status_code"] == 200
            assert record["attempts"] == 1
            assert record["error_detail"] is None
            assert record["delivered_at"] is not None
            datetime.fromisoformat(record["time_created"])
        # Newest first, by delivery id.
        assert records[0]["id"] > records[1]["id"]
        assert [r["payload"]["key"] for r in records] == ["counts", "temperature"]
        # Each record names the X-Tiled-Event-ID it was sent with.
        by_key = {d.key: d.event_id for d in delivered}
        assert {r["payload"]["key"]: r["event_id"] for r in records} == by_key


def test_empty_events_list_is_stored_and_returned_as_null(server, receiver):
    with http(server) as api:
        hook = register(api, receiver.url, events=[])
        assert hook["events"] is None
        conn = sqlite3.connect(server.directory / "hookbook.db")
        try:
            stored = conn.execute("SELECT events FROM webhooks WHERE id = ?", (hook["id"],))
            assert stored.fetchall() == [("null",)]  # JSON null, not "[]"
        finally:
            conn.close()
        (listed,) = api.get("/api/v1/webhooks/target/").json()
        assert listed["events"] is None
        assert api.get(f"/api/v1/webhooks/{hook['id']}").json()["events"] is None


def test_event_filter_is_returned_as_given(server, receiver):
    with http(server) as api:
        hook = register(api, receiver.url, events=["stream-closed", "container-child-created"])
        assert hook["events"] == ["stream-closed", "container-child-created"]


def test_list_webhooks_on_a_node(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        client.create_container("a").create_container("b")
        on_root = register(api, receiver.url)
        on_a = register(api, receiver.url_for("/a"), "a")
        on_b = register(api, receiver.url_for("/b"), "a/b")
        assert [w["id"] for w in api.get("/api/v1/webhooks/target/").json()] == [on_root["id"]]
        assert [w["id"] for w in api.get("/api/v1/webhooks/target/a").json()] == [on_a["id"]]
        listed = api.get("/api/v1/webhooks/target/a/b").json()
        assert [w["id"] for w in listed] == [on_b["id"]]
        assert listed[0].keys() >= TILED_WEBHOOK_FIELDS
        assert listed[0]["path"] == ["a", "b"]
        everything = api.get("/api/v1/webhooks/").json()
        assert sorted(w["id"] for w in everything) == sorted(
            [on_root["id"], on_a["id"], on_b["id"]]
        )
        one = api.get(f"/api/v1/webhooks/{on_a['id']}")
        assert one.status_code == 200
        assert one.json()["url"] == receiver.url_for("/a")


def test_registering_sends_nothing(server, receiver):
    with http(server) as api:
        hook = register(api, receiver.url, secret="s3cret")
        server.drain()
        with pytest.raises(TimeoutError):
            receiver.wait_for(1, timeout=0.3)
        assert api.get(f"/api/v1/webhooks/history/{hook['id']}").json() == []


def test_delete_returns_the_id_and_takes_the_history_along(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        client.create_container("x")
        receiver.wait_for(1, timeout=10)
        server.drain()
        assert len(api.get(f"/api/v1/webhooks/history/{hook['id']}").json()) == 1

        response = api.delete(f"/api/v1/webhooks/{hook['id']}")
        assert response.status_code == 200
        assert response.json() == {"deleted": hook["id"]}
        history = api.get(f"/api/v1/webhooks/history/{hook['id']}")
        assert history.status_code == 404
        assert history.json()["error"] == "NotFoundError"
        assert api.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404
        assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 404
        assert api.get("/api/v1/webhooks/target/").json() == []
        # And it no longer receives anything.
        client.create_container("y")
        server.drain()
        assert len(receiver.deliveries) == 1


def test_delete_removes_pending_deliveries(receiver):
    receiver.fail_next(1)
    with (
        SimpleServer(webhooks={"retry_schedule": [30]}) as server,
        http(server) as api,
        from_uri(server.uri) as client,
    ):
        hook = register(api, receiver.url)
        client.create_container("x")
        receiver.wait_for(1, timeout=10)
        (record,) = api.get(f"/api/v1/webhooks/history/{hook['id']}").json()
        assert record["outcome"] == "pending"
        api.delete(f"/api/v1/webhooks/{hook['id']}").raise_for_status()
        server.drain(timeout=5)  # nothing left pending
        response = api.get(f"/api/v1/webhooks/deliveries/{record['id']}")
        assert response.status_code == 404


# --------------------------------------------------------------------------- #
# History: limit, order, filters, paging
# --------------------------------------------------------------------------- #


def _deliver_containers(server, client, receiver, keys) -> None:
    for key in keys:
        client.create_container(key)
    receiver.wait_for(len(keys), timeout=10)
    server.drain()


def test_history_limit_default_and_order_by_delivery_id(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        keys = [f"k{i:02d}" for i in range(51)]
        _deliver_containers(server, client, receiver, keys)
        default = api.get(f"/api/v1/webhooks/history/{hook['id']}").json()
        assert len(default) == 50
        ids = [r["id"] for r in default]
        assert ids == sorted(ids, reverse=True)
        assert default[0]["payload"]["key"] == "k50"
        # limit=2 gives exactly the two newest (Tiled's one-second ordering can miss them).
        two = api.get(f"/api/v1/webhooks/history/{hook['id']}", params={"limit": 2}).json()
        assert [r["payload"]["key"] for r in two] == ["k50", "k49"]
        everything = api.get(f"/api/v1/webhooks/history/{hook['id']}", params={"limit": 500})
        assert len(everything.json()) == 51
        one = api.get(f"/api/v1/webhooks/history/{hook['id']}", params={"limit": 1}).json()
        assert len(one) == 1


def test_history_cursor_paging_with_before(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        keys = [f"k{i}" for i in range(7)]
        _deliver_containers(server, client, receiver, keys)
        seen: list[str] = []
        before = None
        pages = 0
        while True:
            params = {"limit": 3} if before is None else {"limit": 3, "before": before}
            page = api.get(f"/api/v1/webhooks/history/{hook['id']}", params=params).json()
            if not page:
                break
            pages += 1
            assert len(page) <= 3
            seen += [r["payload"]["key"] for r in page]
            before = page[-1]["id"]
        assert pages == 3
        assert seen == list(reversed(keys))


def test_history_filters_by_outcome_and_event_type(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        node = client.create_container("a")
        receiver.wait_for(1, timeout=10)
        server.drain()
        receiver.fail_next(3)
        node.update_metadata(metadata={"x": 1})
        receiver.wait_for(4, timeout=10)
        server.drain()
        url = f"/api/v1/webhooks/history/{hook['id']}"
        failed = api.get(url, params={"outcome": "failed"}).json()
        assert [r["event_type"] for r in failed] == ["container-child-metadata-updated"]
        assert failed[0]["attempts"] == 3
        success = api.get(url, params={"outcome": "success"}).json()
        assert [r["event_type"] for r in success] == ["container-child-created"]
        assert api.get(url, params={"outcome": "pending"}).json() == []
        created = api.get(url, params={"event_type": "container-child-created"}).json()
        assert [r["payload"]["key"] for r in created] == ["a"]
        both = api.get(
            url, params={"event_type": "container-child-created", "outcome": "failed"}
        ).json()
        assert both == []


def test_delivery_detail_has_the_attempt_log(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        client.create_container("a")
        receiver.wait_for(1, timeout=10)
        server.drain()
        (record,) = api.get(f"/api/v1/webhooks/history/{hook['id']}").json()
        detail = api.get(f"/api/v1/webhooks/deliveries/{record['id']}")
        assert detail.status_code == 200
        body = detail.json()
        assert body["id"] == record["id"]
        assert body["event_id"] == record["event_id"]
        (attempt,) = body["attempt_log"]
        assert attempt["number"] == 1
        assert attempt["status_code"] == 200
        assert attempt["error"] is None
        assert attempt["duration_ms"] >= 0
        assert attempt["response_excerpt"] == '{"ok": true}'
        datetime.fromisoformat(attempt["started_at"])
        assert api.get("/api/v1/webhooks/deliveries/999999").status_code == 404


# --------------------------------------------------------------------------- #
# Management beyond Tiled
# --------------------------------------------------------------------------- #


def test_same_url_twice_on_one_node_is_409_naming_the_existing_webhook(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        client.create_container("a")
        first = register(api, receiver.url)
        again = api.post("/api/v1/webhooks/target/", json={"url": receiver.url})
        assert again.status_code == 409
        body = again.json()
        assert body["error"] == "DuplicateWebhookError"
        assert f"webhook {first['id']}" in body["detail"]
        assert len(api.get("/api/v1/webhooks/").json()) == 1
        # The same URL on another node is a different webhook.
        register(api, receiver.url, "a")
        assert len(api.get("/api/v1/webhooks/").json()) == 2


def test_patch_changes_fields_and_refuses_a_taken_url(server, receiver):
    with http(server) as api:
        one = register(api, receiver.url)
        two = register(api, receiver.url_for("/two"))
        patched = api.patch(
            f"/api/v1/webhooks/{one['id']}",
            json={"events": ["stream-closed"], "secret": "new-secret"},
        )
        assert patched.status_code == 200, patched.text
        body = patched.json()
        assert body["events"] == ["stream-closed"]
        assert body["has_secret"] is True
        assert "new-secret" not in patched.text
        moved = api.patch(f"/api/v1/webhooks/{one['id']}", json={"url": receiver.url_for("/x")})
        assert moved.json()["url"] == receiver.url_for("/x")
        taken = api.patch(f"/api/v1/webhooks/{one['id']}", json={"url": two["url"]})
        assert taken.status_code == 409
        assert taken.json()["error"] == "DuplicateWebhookError"
        assert api.get(f"/api/v1/webhooks/{one['id']}").json()["url"] == receiver.url_for("/x")
        off = api.patch(f"/api/v1/webhooks/{two['id']}", json={"active": False}).json()
        assert off["active"] is False
        assert off["disabled_reason"]
        on = api.patch(f"/api/v1/webhooks/{two['id']}", json={"active": True}).json()
        assert on["active"] is True
        assert on["disabled_reason"] is None
        assert api.patch("/api/v1/webhooks/99999", json={"active": True}).status_code == 404


def test_a_disabled_webhook_gets_no_deliveries(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        api.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": False}).raise_for_status()
        client.create_container("a")
        server.drain()
        assert api.get(f"/api/v1/webhooks/history/{hook['id']}").json() == []
        assert receiver.deliveries == []


def test_ping_is_sent_whatever_the_filter_and_recorded(server, receiver):
    with http(server) as api:
        hook = register(api, receiver.url, events=["stream-closed"], secret="pingsecret")
        response = api.post(f"/api/v1/webhooks/{hook['id']}/ping")
        assert response.status_code == 200
        queued = response.json()
        assert queued["event_type"] == "ping"
        (delivery,) = receiver.wait_for(1, timeout=10)
        assert delivery.json["type"] == "ping"
        assert delivery.json["webhook_id"] == hook["id"]
        assert delivery.json["url"] == receiver.url
        assert delivery.event_id == queued["event_id"]
        server.drain()
        (record,) = api.get(f"/api/v1/webhooks/history/{hook['id']}").json()
        assert record["event_type"] == "ping"
        assert record["outcome"] == "success"
        assert api.post("/api/v1/webhooks/424242/ping").status_code == 404


def test_redeliver_makes_a_new_record_with_the_same_event_id(server, receiver):
    with http(server) as api, from_uri(server.uri) as client:
        hook = register(api, receiver.url)
        client.create_container("a")
        (first,) = receiver.wait_for(1, timeout=10)
        server.drain()
        (original,) = api.get(f"/api/v1/webhooks/history/{hook['id']}").json()
        response = api.post(f"/api/v1/webhooks/deliveries/{original['id']}/redeliver")
        assert response.status_code == 200, response.text
        again = response.json()
        assert again["id"] != original["id"]
        assert again["event_id"] == original["event_id"]
        assert again["redelivery_of"] == original["id"]
        assert again["payload"] == original["payload"]
        _, second = receiver.wait_for(2, timeout=10)
        assert second.event_id == first.event_id
        assert second.body == first.body
        server.drain()
        history = api.get(f"/api/v1/webhooks/history/{hook['id']}").json()
        assert [r["id"] for r in history] == [again["id"], original["id"]]
        assert history[0]["outcome"] == "success"
        assert api.post("/api/v1/webhooks/deliveries/99999/redeliver").status_code == 404


# --------------------------------------------------------------------------- #
# Auth and mounting
# --------------------------------------------------------------------------- #


def test_api_key_as_query_parameter(server, receiver):
    with httpx.Client(base_url=server.base_url, trust_env=False) as api:
        response = api.post(
            "/api/v1/webhooks/target/",
            params={"api_key": server.api_key},
            json={"url": receiver.url},
        )
        assert response.status_code == 200


def test_without_a_key_is_401(server, receiver):
    with httpx.Client(base_url=server.base_url, trust_env=False) as api:
        for method, route in [
            ("POST", "/api/v1/webhooks/target/"),
            ("GET", "/api/v1/webhooks/target/"),
            ("GET", "/api/v1/webhooks/history/1"),
            ("DELETE", "/api/v1/webhooks/1"),
            ("GET", "/api/v1/webhooks/"),
        ]:
            response = api.request(method, route, json={"url": receiver.url})
            assert response.status_code == 401, (method, route)
            assert response.json()["error"] == "AuthenticationError"
        wrong = api.get("/api/v1/webhooks/target/", headers={"Authorization": "Apikey not-the-key"})
        assert wrong.status_code == 401


def test_scopes(server, receiver):
    with http(server) as admin:
        hook = register(admin, receiver.url)
    with http(server, "reader_key_0001") as reader:
        assert reader.get("/api/v1/webhooks/target/").status_code == 200
        assert reader.get(f"/api/v1/webhooks/history/{hook['id']}").status_code == 200
        assert reader.get(f"/api/v1/webhooks/{hook['id']}").status_code == 200
        denied = reader.post("/api/v1/webhooks/target/", json={"url": receiver.url_for("/r")})
        assert denied.status_code == 403
        assert denied.json()["error"] == "PermissionDeniedError"
        assert "write:webhooks" in denied.json()["detail"]
        assert reader.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 403
        assert reader.post(f"/api/v1/webhooks/{hook['id']}/ping").status_code == 403
        patch = reader.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": False})
        assert patch.status_code == 403
    with http(server, "writer_key_0001") as writer:
        # Registering chooses where a node's events (its metadata) go: read:metadata too.
        denied = writer.post("/api/v1/webhooks/target/", json={"url": receiver.url_for("/w")})
        assert denied.status_code == 403
        assert "read:metadata" in denied.json()["detail"]
        assert (
            writer.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": True}).status_code == 200
        )
        moved = writer.patch(f"/api/v1/webhooks/{hook['id']}", json={"url": receiver.url_for("/x")})
        assert moved.status_code == 403
        assert "read:metadata" in moved.json()["detail"]
        denied = writer.get(f"/api/v1/webhooks/history/{hook['id']}")
        assert denied.status_code == 403
        assert "read:webhooks" in denied.json()["detail"]
        assert writer.get("/api/v1/webhooks/target/").status_code == 403
    with http(server, "node_writer_001") as writer:
        created = writer.post("/api/v1/webhooks/target/", json={"url": receiver.url_for("/w")})
        assert created.status_code == 200
    with http(server, "catalog_key_001") as catalog:
        assert catalog.get("/api/v1/webhooks/target/").status_code == 403
        assert catalog.post("/api/v1/webhooks/target/", json={"url": "x"}).status_code == 403
    with http(server) as admin:
        assert len(admin.get("/api/v1/webhooks/").json()) == 2
        assert admin.get(f"/api/v1/webhooks/{hook['id']}").json()["active"] is True


def test_routes_are_404_when_webhooks_are_not_enabled(receiver):
    with SimpleServer() as server, http(server) as api:
        for method, route in [
            ("POST", "/api/v1/webhooks/target/"),
            ("GET", "/api/v1/webhooks/target/"),
            ("GET", "/api/v1/webhooks/history/1"),
            ("DELETE", "/api/v1/webhooks/1"),
            ("GET", "/api/v1/webhooks/"),
            ("GET", "/api/v1/webhooks/deliveries/1"),
        ]:
            response = api.request(method, route, json={"url": receiver.url})
            assert response.status_code == 404, (method, route, response.text)
        # The catalog still works.
        assert api.get("/api/v1/").status_code == 200
