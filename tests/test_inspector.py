"""The receiver's inspector at /_hookbook/ over HTTP (the browser tests drive its page)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import wait_until
from hookbook.testing import WebhookReceiver

PROBE = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret="s3cret") as receiver:
        yield receiver


def token_of(receiver: WebhookReceiver) -> str:
    return parse_qs(urlsplit(receiver.inspector_url).query)["token"][0]


def api(receiver: WebhookReceiver, token: str | None = "own") -> httpx.Client:
    headers = {"X-Hookbook-Token": token_of(receiver) if token == "own" else token or ""}
    return httpx.Client(base_url=f"http://127.0.0.1:{receiver.port}/_hookbook", headers=headers)


def test_inspector_url_carries_a_per_receiver_token(receiver):
    url = receiver.inspector_url
    assert url.startswith(f"http://127.0.0.1:{receiver.port}/_hookbook/?token=")
    with WebhookReceiver() as other:
        assert token_of(other) != token_of(receiver)
    page = httpx.get(url)
    assert page.status_code == 200
    assert f'<meta name="hookbook-token" content="{token_of(receiver)}">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert receiver.deliveries == []


def test_everything_but_its_assets_needs_the_token(receiver):
    base = f"http://127.0.0.1:{receiver.port}/_hookbook"
    for token in (None, "wrong-token"):
        with api(receiver, token) as client:
            assert client.get("/").status_code == 403
            assert client.get("/api/deliveries").status_code == 403
            refused = client.post("/api/faults", json={"action": "gone"})
            assert refused.status_code == 403
            assert "inspector_url" in refused.json()["detail"]
    assert httpx.get(f"{base}/?token=wrong").status_code == 403
    assert httpx.get(f"{base}/static/inspector.js").status_code == 200
    # httpx removes the dot segment: this asks for {base}/receiver.py, with no token.
    assert httpx.get(f"{base}/static/../receiver.py").status_code == 403
    assert receiver.script == () and receiver.deliveries == []  # nothing changed, nothing kept


def test_requests_under_the_prefix_are_never_recorded_nor_faulted(receiver):
    receiver.fail_next(1, status=503)
    receiver.delay(0)
    with api(receiver) as client:
        assert client.get("/").status_code == 200
        assert client.get("/api/deliveries").status_code == 200
        assert client.post("/nowhere").status_code == 404
    receiver.gone()
    assert httpx.get(receiver.inspector_url).status_code == 200  # not 410
    assert receiver.deliveries == []
    assert len(receiver.script) == 1  # the inspector's requests did not use it up


def test_url_for_refuses_the_inspector_prefix(receiver):
    for path in ("/_hookbook/", "/_hookbook", "_hookbook/api/faults", "/_hookbook/x?y=1"):
        with pytest.raises(ValueError, match="inspector"):
            receiver.url_for(path)
    assert receiver.url_for("/_hookbooks").endswith("/_hookbooks")  # only the prefix itself


def test_deliveries_come_as_escaped_fragments_newest_first(receiver):
    httpx.post(receiver.url, json={"type": "stream-closed", "key": PROBE, "path": ["a", PROBE]})
    httpx.post(receiver.url_for("/second"), content=b"not json")
    with api(receiver) as client:
        data = client.get("/api/deliveries", params={"after": 0}).json()
    assert data["total"] == 2 and data["start"] == 0
    html = data["html"]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert html.index("#2") < html.index("#1")  # newest first
    assert "signature INVALID" in html  # unsigned, and the receiver has a secret
    assert "POST /second" in html and "not json" in html


def test_a_waiting_request_returns_when_a_delivery_arrives(receiver):
    result: dict = {}

    def wait() -> None:
        with api(receiver) as client:
            result["data"] = client.get(
                "/api/deliveries", params={"after": 0, "wait": 10, "generation": 0}, timeout=15
            ).json()

    thread = threading.Thread(target=wait)
    thread.start()
    httpx.post(receiver.url, json={"type": "stream-closed", "key": "k", "path": ["k"]})
    thread.join(5)
    assert not thread.is_alive()
    assert result["data"]["total"] == 1 and "stream-closed" in result["data"]["html"]


def test_stop_ends_a_waiting_request_at_once():
    receiver = WebhookReceiver().start()
    errors: list = []

    def wait() -> None:
        try:
            with api(receiver) as client:
                client.get(
                    "/api/deliveries", params={"after": 0, "wait": 10, "generation": 0}, timeout=15
                )
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    try:
        # The request is in and waiting: the receiver holds its connection open.
        wait_until(lambda: receiver._server.server._active, message="the request is waiting")
    finally:
        receiver.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_controls_are_the_python_fault_injection(receiver):
    with api(receiver) as client:
        done = client.post("/api/faults", json={"action": "fail_next", "count": 2, "status": 503})
        assert done.status_code == 200
        assert done.json()["faults"] == "script: 503, 503"
        client.post("/api/faults", json={"action": "reset_next", "count": 1})
        client.post("/api/faults", json={"action": "delay", "seconds": 0.5})
        assert [getattr(s, "status", "reset") for s in receiver.script] == [503, 503, "reset"]
        assert "delay 0.5 s" in client.post("/api/faults", json={"action": "gone"}).json()["faults"]
        assert receiver._gone and receiver._delay == 0.5

        cleared = client.post("/api/faults", json={"action": "clear_faults"}).json()
        assert cleared["faults"].startswith("none")
        assert receiver.script == () and not receiver._gone and receiver._delay == 0

        for bad, message in (
            ({"action": "fail_next", "count": 0}, "count must be between 1 and 1000"),
            ({"action": "fail_next", "status": 700}, "status must be an HTTP status code"),
            ({"action": "fail_next", "count": "2"}, "count must be a whole number"),
            ({"action": "delay", "seconds": 301}, "delay must be between 0 and 300"),
            ({"action": "explode"}, "unknown action 'explode'"),
        ):
            refused = client.post("/api/faults", json=bad)
            assert refused.status_code == 400, bad
            assert message in refused.json()["detail"], bad
        not_json = client.post("/api/faults", content=b"gone")
        assert not_json.status_code == 400 and "JSON object" in not_json.json()["detail"]
        assert receiver.script == ()


def test_clear_starts_the_inspector_list_again(receiver):
    httpx.post(receiver.url, json={"type": "stream-closed"})
    with api(receiver) as client:
        before = client.get("/api/deliveries").json()
        client.post("/api/faults", json={"action": "clear"})
        assert receiver.deliveries == []
        httpx.post(receiver.url, json={"type": "ping"})
        after = client.get(
            "/api/deliveries", params={"after": before["total"], "generation": 0}
        ).json()
    assert after["generation"] == before["generation"] + 1
    assert after["start"] == 0 and after["total"] == 1 and "ping" in after["html"]


def test_the_jupyter_repr_links_the_inspector(receiver):
    assert f"href='{receiver.inspector_url}'" in receiver._repr_html_()
    receiver.stop()
    assert "inspector" not in receiver._repr_html_()
