"""SSRF rules at registration and at delivery, pinned connections, secrets at rest and in logs.

The resolver is injected (``Seams(resolver=...)``), so host names resolve to
whatever a test needs, a public address included, without any network.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from hookbook.client import from_uri
from hookbook.errors import InvalidURLError, UnsafeURLError
from hookbook.server import SimpleServer
from hookbook.server.services import Seams
from hookbook.testing import WebhookReceiver
from hookbook.webhooks.secrets import SecretBox

PUBLIC = "93.184.216.34"
PRODUCTION = {"allow_http": False, "allow_private_addresses": False, "retry_schedule": [0.01, 0.01]}


class FakeDNS:
    """An injected resolver: a fixed table, or answers that change after the first."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.calls: dict[str, int] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        answers = self.table.get(host)
        if answers is None:
            raise OSError(f"no such host {host}")
        n = self.calls.get(host, 0)
        self.calls[host] = n + 1
        return answers[min(n, len(answers) - 1)]


def standard_dns() -> FakeDNS:
    return FakeDNS(
        {
            "hooks.example.com": [[PUBLIC]],
            "localhost.example.com": [["127.0.0.1"]],
            "intranet.example.com": [["10.1.2.3"]],
            "metadata.example.com": [["169.254.169.254"]],
            "mixed.example.com": [[PUBLIC, "192.168.1.1"]],
            "mapped.example.com": [["::ffff:127.0.0.1"]],
            "v6.example.com": [["2606:2800:220:1:248:1893:25c8:1946"]],
        }
    )


@pytest.fixture
def dns() -> FakeDNS:
    return standard_dns()


def post(server: SimpleServer, url: str, path: str = "", **body: object) -> httpx.Response:
    with httpx.Client(base_url=server.base_url, trust_env=False, timeout=10) as api:
        return api.post(
            f"/api/v1/webhooks/target/{path}",
            json={"url": url, **body},
            headers={"Authorization": f"Apikey {server.api_key}"},
        )


@pytest.fixture
def production(dns) -> Iterator[SimpleServer]:
    with SimpleServer(webhooks=PRODUCTION, seams=Seams(resolver=dns)) as server:
        yield server


@pytest.fixture(scope="module")
def shared_production() -> Iterator[SimpleServer]:
    """One production server for the many refusals (each leaves nothing behind)."""
    with SimpleServer(webhooks=PRODUCTION, seams=Seams(resolver=standard_dns())) as server:
        yield server


# --------------------------------------------------------------------------- #
# Production defaults at registration
# --------------------------------------------------------------------------- #


def test_production_refuses_plain_http_with_422(production):
    response = post(production, "http://hooks.example.com/hook")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "InvalidURLError"
    assert "https" in body["detail"]
    assert "allow_http" in body["detail"]


def test_production_accepts_a_public_https_target(production):
    response = post(production, "https://hooks.example.com/hook")
    assert response.status_code == 200, response.text
    ipv6 = post(production, "https://v6.example.com/hook")
    assert ipv6.status_code == 200, ipv6.text


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://localhost.example.com/", "loopback"),
        ("https://intranet.example.com/", "private"),
        ("https://metadata.example.com/", "metadata"),
        ("https://mixed.example.com/", "private"),
        ("https://mapped.example.com/", "loopback"),
        ("https://127.0.0.1/", "loopback"),
        ("https://2130706433/", "loopback"),
        ("https://0x7f.1/", "loopback"),
        ("https://127.1/", "loopback"),
        ("https://[::1]/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://[64:ff9b::7f00:1]/", "NAT64"),
        ("https://10.0.0.1/", "private"),
        ("https://192.168.0.10/", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://100.64.0.1/", "CGNAT"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://240.0.0.1/", "reserved"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[fc00::1]/", "private"),
    ],
)
def test_production_refuses_non_public_targets_with_400_saying_why(shared_production, url, why):
    response = post(shared_production, url)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "UnsafeURLError"
    assert why in body["detail"]


def test_an_unresolvable_host_is_400(production):
    response = post(production, "https://nowhere.example.com/")
    assert response.status_code == 400
    assert "does not resolve" in response.json()["detail"]


def test_refused_registrations_write_nothing(production):
    for url, status in [
        ("https://localhost.example.com/", 400),  # resolves to a blocked address
        ("http://hooks.example.com/", 422),  # plain http while allow_http is false
        ("ftp://x/", 422),  # not a webhook URL at all
    ]:
        assert post(production, url).status_code == status, url
    with from_uri(production.uri) as client:
        assert client.webhooks.list_all() == []


def test_blocked_networks_and_allow_delivery_hosts(dns):
    settings = {
        **PRODUCTION,
        "blocked_networks": ["93.184.216.0/24"],
        "allow_delivery_hosts": ["intranet.example.com"],
    }
    with SimpleServer(webhooks=settings, seams=Seams(resolver=dns)) as server:
        blocked = post(server, "https://hooks.example.com/")
        assert blocked.status_code == 400
        assert "93.184.216.0/24" in blocked.json()["detail"]
        assert "blocked_networks" in blocked.json()["detail"]
        allowed = post(server, "https://intranet.example.com/hook")
        assert allowed.status_code == 200, allowed.text
        # Only the listed name: other private targets are still refused.
        assert post(server, "https://localhost.example.com/").status_code == 400


def test_harness_relaxation_lets_a_local_receiver_register():
    with SimpleServer(enable_webhooks=True) as server, WebhookReceiver() as receiver:
        assert post(server, receiver.url).status_code == 200


# --------------------------------------------------------------------------- #
# At delivery: checked again, and connected to the checked address
# --------------------------------------------------------------------------- #


def test_dns_rebinding_is_refused_before_connecting():
    with WebhookReceiver() as receiver:
        # Public at registration, loopback at every lookup after.
        dns = FakeDNS({"rebind.example.com": [[PUBLIC], ["127.0.0.1"]]})
        settings = {**PRODUCTION, "allow_http": True}  # the receiver speaks plain http
        with (
            SimpleServer(webhooks=settings, seams=Seams(resolver=dns)) as server,
            from_uri(server.uri) as client,
        ):
            hook = client.webhooks.register(f"http://rebind.example.com:{receiver.port}/webhook")
            client.create_container("a")
            server.drain()
            (record,) = client.webhooks.history(hook.id)
            delivery = client.webhooks.delivery(record.id)
        assert receiver.deliveries == []
        assert dns.calls["rebind.example.com"] == 4  # registration + one per attempt
        assert delivery.outcome == "failed"
        assert delivery.attempts == 3
        assert "127.0.0.1" in delivery.error_detail
        assert "loopback" in delivery.error_detail
        for attempt in delivery.attempt_log:
            assert attempt.status_code is None
            assert attempt.error.startswith("target refused before sending")


def test_an_answer_with_one_private_address_is_refused_at_delivery():
    with WebhookReceiver() as receiver:
        dns = FakeDNS({"half.example.com": [[PUBLIC], [PUBLIC, "127.0.0.1"]]})
        settings = {**PRODUCTION, "allow_http": True}
        with (
            SimpleServer(webhooks=settings, seams=Seams(resolver=dns)) as server,
            from_uri(server.uri) as client,
        ):
            hook = client.webhooks.register(f"http://half.example.com:{receiver.port}/webhook")
            client.create_container("a")
            server.drain()
            (record,) = client.webhooks.history(hook.id)
        assert record.outcome == "failed"
        assert receiver.deliveries == []


class Capture:
    """A MockTransport handler that records the requests the worker sends."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"ok": True})


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_the_request_goes_to_the_checked_address_and_ignores_proxy_variables(
    dns, monkeypatch, scheme
):
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    capture = Capture()
    settings = {**PRODUCTION, "allow_http": True}
    seams = Seams(resolver=dns, transport=httpx.MockTransport(capture))
    with SimpleServer(webhooks=settings, seams=seams) as server, from_uri(server.uri) as client:
        hook = client.webhooks.register(f"{scheme}://hooks.example.com/receive?x=1")
        client.create_container("a")
        server.drain()
        (record,) = client.webhooks.history(hook.id)
    assert record.outcome == "success"
    (request,) = capture.requests
    assert request.method == "POST"
    assert request.url.scheme == scheme
    assert request.url.host == PUBLIC  # the address that was checked, not the name
    assert request.url.path == "/receive"
    assert request.url.query == b"x=1"
    assert request.headers["Host"] == "hooks.example.com"
    if scheme == "https":
        # TLS is for the original name (SNI and certificate check).
        assert request.extensions["sni_hostname"] == "hooks.example.com"


def test_an_ipv6_target_is_pinned_too(dns):
    capture = Capture()
    seams = Seams(resolver=dns, transport=httpx.MockTransport(capture))
    with SimpleServer(webhooks=PRODUCTION, seams=seams) as server, from_uri(server.uri) as client:
        client.webhooks.register("https://v6.example.com:8443/hook")
        client.create_container("a")
        server.drain()
    (request,) = capture.requests
    assert request.url.host == "2606:2800:220:1:248:1893:25c8:1946"
    assert request.url.port == 8443
    assert request.headers["Host"] == "v6.example.com:8443"
    assert request.extensions["sni_hostname"] == "v6.example.com"


def test_patching_the_url_checks_it_like_a_registration(production):
    with from_uri(production.uri) as client:
        hook = client.webhooks.register("https://hooks.example.com/hook")
        with pytest.raises(UnsafeURLError, match="loopback"):
            client.webhooks.update(hook.id, url="https://localhost.example.com/hook")
        with pytest.raises(InvalidURLError, match="https"):
            client.webhooks.update(hook.id, url="http://hooks.example.com/hook")
        assert client.webhooks.get(hook.id).url == "https://hooks.example.com/hook"


def test_proxy_variables_do_not_divert_real_deliveries(monkeypatch):
    # A proxy on a dead port: a delivery that went through it would fail.
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with (
        WebhookReceiver() as receiver,
        SimpleServer(enable_webhooks=True) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url)
        client.create_container("a")
        (delivery,) = receiver.wait_for(1, timeout=10)
        assert delivery.key == "a"


# --------------------------------------------------------------------------- #
# Secrets
# --------------------------------------------------------------------------- #

SECRET = "do-not-leak-this-secret-7f3a"


def test_the_secret_is_never_returned_nor_logged(caplog):
    caplog.set_level(logging.DEBUG)
    with (
        WebhookReceiver(secret=SECRET) as receiver,
        SimpleServer(webhooks={"retry_schedule": [0.01, 0.01]}) as server,
        httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Apikey {server.api_key}"},
            trust_env=False,
        ) as api,
        from_uri(server.uri) as client,
    ):
        texts = []
        created = api.post("/api/v1/webhooks/target/", json={"url": receiver.url, "secret": SECRET})
        texts.append(created.text)
        hook_id = created.json()["id"]
        assert created.json()["has_secret"] is True
        receiver.fail_next(1)
        client.write_array(np.arange(3), key="a")
        receiver.wait_for(2, timeout=10)
        api.post(f"/api/v1/webhooks/{hook_id}/ping")
        receiver.wait_for(3, timeout=10)
        server.drain()
        texts.append(api.get("/api/v1/webhooks/target/").text)
        texts.append(api.get("/api/v1/webhooks/").text)
        texts.append(api.get(f"/api/v1/webhooks/{hook_id}").text)
        history = api.get(f"/api/v1/webhooks/history/{hook_id}")
        texts.append(history.text)
        for record in history.json():
            texts.append(api.get(f"/api/v1/webhooks/deliveries/{record['id']}").text)
        rotated = "another-secret-never-shown"
        texts.append(api.patch(f"/api/v1/webhooks/{hook_id}", json={"secret": rotated}).text)
        texts.append(repr(client.webhooks.get(hook_id)))
        texts.append(client.webhooks.get(hook_id)._repr_html_())
        assert all(d.signature_valid for d in receiver.deliveries)
    for text in texts:
        assert SECRET not in text
        assert rotated not in text
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert SECRET not in caplog.text
    assert rotated not in caplog.text


def test_secrets_are_encrypted_at_rest():
    with (
        WebhookReceiver(secret=SECRET) as receiver,
        SimpleServer(enable_webhooks=True) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url, secret=SECRET)
        client.create_container("a")
        (delivery,) = receiver.wait_for(1, timeout=10)
        assert delivery.signature_valid is True
        conn = sqlite3.connect(server.directory / "hookbook.db")
        try:
            ((stored,),) = conn.execute(
                "SELECT secret_ciphertext FROM webhooks WHERE id = ?", (hook.id,)
            ).fetchall()
        finally:
            conn.close()
        assert stored != SECRET
        assert SECRET not in stored
        # It is a Fernet token under the server's key.
        assert SecretBox([server.webhook_secret_key]).decrypt(stored) == SECRET
        for name in ("hookbook.db", "hookbook.db-wal"):
            path = server.directory / name
            if path.exists():
                assert SECRET.encode() not in path.read_bytes(), name


def test_fail_closed_when_the_secret_cannot_be_decrypted(tmp_path):
    with WebhookReceiver(secret=SECRET) as receiver:
        with SimpleServer(tmp_path, enable_webhooks=True) as server, from_uri(server.uri) as client:
            hook = client.webhooks.register(receiver.url, secret=SECRET)
        other = {"secret_keys": ["another key entirely"], "retry_schedule": [0.01, 0.01]}
        with SimpleServer(tmp_path, webhooks=other) as server, from_uri(server.uri) as client:
            client.create_container("a")
            server.drain()
            (record,) = client.webhooks.history(hook.id)
            assert record.outcome == "failed"
            assert record.attempts == 0
            assert "cannot be decrypted" in record.error_detail
            assert "never sent unsigned" in record.error_detail
            ping = client.webhooks.ping(hook.id)
            server.drain()
            assert client.webhooks.delivery(ping.id).outcome == "failed"
        assert receiver.deliveries == []


def test_key_rotation_keeps_old_secrets_readable(tmp_path):
    with WebhookReceiver(secret=SECRET) as receiver:
        with SimpleServer(tmp_path, enable_webhooks=True) as server:
            old_key = server.webhook_secret_key
            with from_uri(server.uri) as client:
                client.webhooks.register(receiver.url, secret=SECRET)
        rotated = {"secret_keys": ["the new key", old_key], "retry_schedule": [0.01]}
        with SimpleServer(tmp_path, webhooks=rotated) as server, from_uri(server.uri) as client:
            client.create_container("a")
            (delivery,) = receiver.wait_for(1, timeout=10)
            assert delivery.signature_valid is True


def test_a_url_with_credentials_is_refused_without_echoing_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    with SimpleServer(enable_webhooks=True) as server, from_uri(server.uri) as client:
        for url in (
            "http://alice:hunter2-pw@127.0.0.1:9/hook",
            "https://alice:hunter2-pw@hooks.example.com/",
            "ftp://alice:hunter2-pw@hooks.example.com/",
        ):
            response = post(server, url)
            assert response.status_code == 422, response.text
            assert "hunter2-pw" not in response.text
            assert "password" in response.json()["detail"] or "scheme" in response.json()["detail"]
        with pytest.raises(InvalidURLError) as caught:
            client.webhooks.register("http://alice:hunter2-pw@127.0.0.1:9/hook")
        assert "hunter2-pw" not in str(caught.value)
        assert client.webhooks.list_all() == []
    assert "hunter2-pw" not in caplog.text


def test_client_sees_unsafe_url_error(dns):
    with (
        SimpleServer(webhooks=PRODUCTION, seams=Seams(resolver=dns)) as server,
        from_uri(server.uri) as client,
        pytest.raises(UnsafeURLError, match="loopback"),
    ):
        client.webhooks.register("https://localhost.example.com/")
