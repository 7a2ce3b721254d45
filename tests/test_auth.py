"""API keys and scopes: 401 without a valid key, 403 without the scope, over
HTTP and through the client (typed exceptions carrying the server's message)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from hookbook.client import from_uri
from hookbook.errors import AuthenticationError, ConfigurationError, PermissionDeniedError
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver

READER = "reader_key_0123456789"
WRITER = "writer_key_0123456789"
HOOKS = "hooks_key_0123456789"
HOOKS_ONLY = "hooks_only_key_0123456789"
HOOK_WRITER = "hook_writer_key_0123456789"


@pytest.fixture(scope="module")
def server():
    with SimpleServer(
        enable_webhooks=True,
        api_keys=[
            {"key": READER, "scopes": ["read:metadata"]},
            {"key": WRITER, "scopes": ["write:metadata"]},
            {"key": HOOKS, "scopes": ["read:webhooks", "read:metadata"]},
            {"key": HOOKS_ONLY, "scopes": ["read:webhooks"]},
            {"key": HOOK_WRITER, "scopes": ["write:webhooks"]},
        ],
    ) as srv:
        with from_uri(srv.uri) as admin:
            admin.write_array(np.arange(3), key="a")
        yield srv


def api(server: SimpleServer) -> str:
    return f"{server.base_url}/api/v1"


CATALOG_READS = [
    ("GET", "/metadata/"),
    ("GET", "/metadata/a"),
    ("GET", "/search/"),
    ("GET", "/array/full/a"),
]
CATALOG_WRITES = [
    ("POST", "/metadata/", {"id": "x", "structure_family": "container", "data_sources": []}),
    ("PUT", "/metadata/a", {"metadata": {"hacked": True}}),
    ("DELETE", "/metadata/a", None),
    ("DELETE", "/stream/close/a", None),
]


@pytest.mark.parametrize("method,route", CATALOG_READS + [(m, r) for m, r, _ in CATALOG_WRITES])
def test_missing_key_is_401(server, method, route):
    response = httpx.request(method, api(server) + route)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "AuthenticationError"
    assert "API key is required" in body["detail"]
    assert response.headers["www-authenticate"] == "Apikey"


@pytest.mark.parametrize(
    "how", ["header", "query", "bearer", "other scheme", "lowercase scheme"], ids=str
)
def test_wrong_key_is_401(server, how):
    kwargs = {
        "header": {"headers": {"Authorization": "Apikey wrong_key_123456"}},
        "query": {"params": {"api_key": "wrong_key_123456"}},
        "bearer": {"headers": {"Authorization": "Bearer wrong_key_123456"}},
        "other scheme": {"headers": {"Authorization": "Basic dXNlcjpwYXNz"}},
        "lowercase scheme": {"headers": {"Authorization": "apikey wrong_key_123456"}},
    }[how]
    response = httpx.get(api(server) + "/metadata/", **kwargs)
    assert response.status_code == 401
    assert response.json()["error"] == "AuthenticationError"


@pytest.mark.parametrize("how", ["header", "query"])
def test_a_valid_key_in_header_or_query(server, how):
    kwargs = (
        {"headers": {"Authorization": f"Apikey {server.api_key}"}}
        if how == "header"
        else {"params": {"api_key": server.api_key}}
    )
    response = httpx.get(api(server) + "/array/full/a", **kwargs)
    assert response.status_code == 200
    assert np.frombuffer(response.content, dtype=np.int64).tolist() == [0, 1, 2]


def test_the_about_document_needs_no_key(server):
    assert httpx.get(api(server) + "/").status_code == 200


@pytest.mark.parametrize("method,route,body", CATALOG_WRITES)
def test_a_read_key_cannot_write(server, method, route, body):
    response = httpx.request(
        method, api(server) + route, json=body, headers={"Authorization": f"Apikey {READER}"}
    )
    assert response.status_code == 403
    assert response.json()["error"] == "PermissionDeniedError"
    assert "lacks the 'write:metadata' scope" in response.json()["detail"]
    admin = {"Authorization": f"Apikey {server.api_key}"}
    node = httpx.get(api(server) + "/metadata/a", headers=admin).json()["data"]
    assert node["attributes"]["metadata"] == {}
    assert httpx.get(api(server) + "/metadata/x", headers=admin).status_code == 404
    # Still open: a 403 changed nothing.
    patch = httpx.patch(
        api(server) + "/array/full/a",
        params={"offset": "3", "shape": "0", "extend": "true"},
        headers=admin,
    )
    assert patch.status_code == 200


@pytest.mark.parametrize("method,route", CATALOG_READS)
def test_a_write_key_cannot_read(server, method, route):
    response = httpx.request(
        method, api(server) + route, headers={"Authorization": f"Apikey {WRITER}"}
    )
    assert response.status_code == 403
    assert "lacks the 'read:metadata' scope" in response.json()["detail"]


def test_webhook_routes_need_webhook_scopes(server):
    reader = {"Authorization": f"Apikey {READER}"}
    response = httpx.get(api(server) + "/webhooks/", headers=reader)
    assert response.status_code == 403
    assert "read:webhooks" in response.json()["detail"]
    hooks = {"Authorization": f"Apikey {HOOKS}"}
    assert httpx.get(api(server) + "/webhooks/", headers=hooks).status_code == 200
    response = httpx.post(
        api(server) + "/webhooks/target/", json={"url": "http://127.0.0.1:9/x"}, headers=hooks
    )
    assert response.status_code == 403
    assert "write:webhooks" in response.json()["detail"]


# ---- through the client ---------------------------------------------------------


def test_client_without_a_key(server):
    with pytest.raises(AuthenticationError, match="API key is required") as info:
        from_uri(api(server))
    assert info.value.status_code == 401


def test_client_with_a_wrong_key(server):
    with pytest.raises(AuthenticationError, match="not valid"):
        from_uri(api(server), api_key="wrong_key_123456")
    with pytest.raises(AuthenticationError, match="not valid"):
        from_uri(f"{api(server)}?api_key=wrong_key_123456")


def test_client_with_a_read_only_key(server):
    with from_uri(api(server), api_key=READER) as client:
        assert client["a"].read().tolist()[:3] == [0, 1, 2]
        with pytest.raises(PermissionDeniedError, match="lacks the 'write:metadata' scope") as info:
            client.create_container("nope")
        assert info.value.status_code == 403
        assert info.value.context == {"scope": "write:metadata"}
        with pytest.raises(PermissionDeniedError):
            client["a"].update_metadata(metadata={"x": 1})
        with pytest.raises(PermissionDeniedError):
            client["a"].close_stream()
        with pytest.raises(PermissionDeniedError, match="read:webhooks"):
            client.webhooks.list_all()
        assert "nope" not in client


def test_client_with_a_write_only_key(server):
    with pytest.raises(PermissionDeniedError, match="read:metadata"):
        from_uri(api(server), api_key=WRITER)


def test_keys_are_validated_at_start_up():
    with pytest.raises(ConfigurationError, match="api_keys"):
        SimpleServer(api_keys=[{"key": "k", "scopes": ["read:metadata"]}])
    with pytest.raises(ConfigurationError, match="scopes"):
        SimpleServer(api_keys=[{"key": "long_enough_key", "scopes": ["read:everything"]}])


# ---- scopes mean what they say: webhook keys do not read the catalog -------------------


def test_history_payloads_need_read_metadata(server):
    with WebhookReceiver() as receiver, from_uri(server.uri) as admin:
        hook = admin.webhooks.register(receiver.url, path="a")
        admin["a"].update_metadata(metadata={"token": "CONFIDENTIAL"})
        admin.webhooks.ping(hook.id)
        receiver.wait_for(2, timeout=10)
        server.drain()
        try:
            with from_uri(api(server), api_key=HOOKS) as both:
                full = {d.event_type: d for d in both.webhooks.history(hook.id)}
            assert full["container-child-metadata-updated"].payload["metadata"] == {
                "token": "CONFIDENTIAL"
            }
            assert full["container-child-metadata-updated"].payload_withheld is None
            with httpx.Client(headers={"Authorization": f"Apikey {HOOKS_ONLY}"}) as only:
                history = only.get(f"{api(server)}/webhooks/history/{hook.id}")
                assert history.status_code == 200
                assert "CONFIDENTIAL" not in history.text
                records = {r["event_type"]: r for r in history.json()}
                updated = records["container-child-metadata-updated"]
                assert updated["payload"] is None
                assert "read:metadata" in updated["payload_withheld"]
                # A ping carries only the webhook's own URL: shown.
                assert records["ping"]["payload"]["url"] == receiver.url
                detail = only.get(f"{api(server)}/webhooks/deliveries/{updated['id']}")
                assert detail.status_code == 200
                assert detail.json()["payload"] is None and "CONFIDENTIAL" not in detail.text
            with httpx.Client(headers={"Authorization": f"Apikey {HOOK_WRITER}"}) as writer:
                first = full["container-child-metadata-updated"].id
                again = writer.post(f"{api(server)}/webhooks/deliveries/{first}/redeliver")
                assert again.status_code == 200
                assert again.json()["payload"] is None
                assert "read:metadata" in again.json()["payload_withheld"]
            receiver.wait_for(3, timeout=10)
        finally:
            admin.webhooks.delete(hook.id)
            admin["a"].update_metadata(metadata={})


@pytest.mark.parametrize("key", [HOOKS_ONLY, HOOK_WRITER])
def test_a_key_that_cannot_read_the_catalog_cannot_probe_paths(server, key):
    answers = set()
    with httpx.Client(headers={"Authorization": f"Apikey {key}"}) as client:
        for path in ("a", "no/such/node"):
            for method in ("GET", "POST"):
                response = client.request(
                    method, f"{api(server)}/webhooks/target/{path}", json={"url": "http://h/"}
                )
                answers.add((response.status_code, response.json()["detail"]))
    # The same answer whether or not the node exists: a 403 naming the missing scope.
    statuses = {status for status, _ in answers}
    assert statuses == {403}
    assert len({detail for _, detail in answers if "read:metadata" in detail}) == 1
