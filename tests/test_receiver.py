"""WebhookReceiver alone, driven by a plain httpx sender (no hookbook server)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import hookbook.testing
from hookbook.signing import sign_headers
from hookbook.testing import (
    Delivery,
    ResetConnection,
    ScriptedResponse,
    WebhookReceiver,
    http_server,
)
from hookbook.testing import receiver as receiver_module

SECRET = "test-secret"


def created(key: str = "x", path: list[str] | None = None) -> dict[str, Any]:
    """A container-child-created payload, as a hookbook or Tiled server sends it."""
    return {
        "type": "container-child-created",
        "timestamp": "2024-01-01T00:00:00+00:00",
        "key": key,
        "path": path if path is not None else [key],
        "structure_family": "array",
        "specs": [],
        "metadata": {},
    }


def send(
    http: httpx.Client,
    url: str,
    payload: Any,
    *,
    secret: str | None = None,
    event_id: str | None = None,
    timestamp: int | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    """POST a delivery like a webhook sender: JSON body, event id, signed when given a secret.

    ``body`` replaces the bytes sent after signing (to tamper with a delivery).
    """
    signed = json.dumps(payload).encode()
    event_id = event_id or uuid.uuid4().hex
    headers = {"Content-Type": "application/json", "X-Tiled-Event-ID": event_id}
    if secret is not None:
        headers.update(sign_headers(signed, secret, event_id, timestamp=timestamp))
    return http.post(url, content=signed if body is None else body, headers=headers)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture
def signed_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as r:
        yield r


# --------------------------------------------------------------------------- #
# Recording
# --------------------------------------------------------------------------- #


def test_records_a_delivery(receiver: WebhookReceiver, http: httpx.Client) -> None:
    before = datetime.now(UTC)
    response = send(http, receiver.url, created("temperature"), event_id="abc123")

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    (d,) = receiver.deliveries
    assert isinstance(d, Delivery)
    assert d.method == "POST"
    assert d.path == "/webhook"
    assert d.json == created("temperature")
    assert json.loads(d.body) == created("temperature")
    assert d.event_id == "abc123"
    assert d.event_type == "container-child-created"
    assert d.key == "temperature"
    assert d.node_path == ("temperature",)
    assert d.status_sent == 200
    assert d.accepted
    assert d.fault is None
    assert before <= d.received_at <= datetime.now(UTC)
    assert d.received_at.tzinfo is not None


def test_headers_are_case_insensitive(receiver: WebhookReceiver, http: httpx.Client) -> None:
    http.post(receiver.url, json={}, headers={"X-Custom": "one", "X-Tiled-Event-ID": "e1"})
    (d,) = receiver.deliveries
    assert d.headers["x-custom"] == "one"
    assert d.headers["X-CUSTOM"] == "one"
    assert d.headers.get("x-tiled-event-id") == "e1"
    assert "content-type" in d.headers
    assert "X-Missing" not in d.headers
    with pytest.raises(KeyError):
        d.headers["x-missing"]


def test_url_port_and_other_paths(receiver: WebhookReceiver, http: httpx.Client) -> None:
    assert receiver.url == f"http://127.0.0.1:{receiver.port}/webhook"
    assert receiver.port > 0
    http.post(receiver.url_for("/hooks/b"), json=created())
    http.post(receiver.url_for("c"), content=b"not json")
    first, second = receiver.deliveries
    assert first.path == "/hooks/b"
    assert second.path == "/c"
    assert second.json is None
    assert second.body == b"not json"
    assert second.event_type is None and second.node_path is None


def test_deliveries_is_a_snapshot(receiver: WebhookReceiver, http: httpx.Client) -> None:
    send(http, receiver.url, created())
    snapshot = receiver.deliveries
    snapshot.clear()
    assert len(receiver.deliveries) == 1
    send(http, receiver.url, created())
    assert len(snapshot) == 0


def test_concurrent_senders_are_all_recorded(receiver: WebhookReceiver) -> None:
    def post(i: int) -> None:
        with httpx.Client(timeout=10) as client:
            send(client, receiver.url, created(f"k{i}"))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    got = receiver.wait_for(8, timeout=10)
    for t in threads:
        t.join()
    assert sorted(d.key for d in got) == sorted(f"k{i}" for i in range(8))


def test_a_url_needs_a_started_receiver() -> None:
    receiver = WebhookReceiver()
    with pytest.raises(RuntimeError, match="start it first"):
        receiver.url  # noqa: B018


# --------------------------------------------------------------------------- #
# Signatures
# --------------------------------------------------------------------------- #


def test_signature_is_none_without_a_secret(receiver: WebhookReceiver, http: httpx.Client) -> None:
    send(http, receiver.url, created(), secret=SECRET)
    (d,) = receiver.deliveries
    assert d.signature_valid is None
    assert d.signature_error is None


def test_signed_delivery_is_valid(signed_receiver: WebhookReceiver, http: httpx.Client) -> None:
    assert signed_receiver.secret == SECRET
    send(http, signed_receiver.url, created(), secret=SECRET)
    (d,) = signed_receiver.deliveries
    assert d.signature_valid is True
    assert d.signature_error is None
    assert d.signature_scheme == "standard-webhooks"


def test_tiled_only_signature_is_valid(
    signed_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    body = json.dumps(created()).encode()
    tiled = sign_headers(body, SECRET, "e1")["X-Tiled-Signature"]
    http.post(signed_receiver.url, content=body, headers={"X-Tiled-Signature": tiled})
    (d,) = signed_receiver.deliveries
    assert d.signature_valid is True
    assert d.signature_scheme == "tiled"


def test_unsigned_delivery_is_invalid_with_a_secret(
    signed_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    response = send(http, signed_receiver.url, created())
    assert response.status_code == 200  # reported, not refused, by default
    (d,) = signed_receiver.deliveries
    assert d.signature_valid is False
    assert d.signature_error is not None
    assert "MissingSignatureError" in d.signature_error


def test_tampered_body_is_invalid(signed_receiver: WebhookReceiver, http: httpx.Client) -> None:
    tampered = json.dumps(created("evil")).encode()
    send(http, signed_receiver.url, created(), secret=SECRET, body=tampered)
    (d,) = signed_receiver.deliveries
    assert d.signature_valid is False
    assert d.signature_error is not None
    assert "BadSignatureError" in d.signature_error
    assert d.key == "evil"


def test_wrong_secret_is_invalid(signed_receiver: WebhookReceiver, http: httpx.Client) -> None:
    send(http, signed_receiver.url, created(), secret="another-secret")
    (d,) = signed_receiver.deliveries
    assert d.signature_valid is False
    assert "BadSignatureError" in (d.signature_error or "")


def test_stale_timestamp_is_invalid_with_the_reason(http: httpx.Client) -> None:
    with WebhookReceiver(secret=SECRET, tolerance=60) as receiver:
        send(http, receiver.url, created(), secret=SECRET, timestamp=int(time.time()) - 3600)
        send(http, receiver.url, created(), secret=SECRET, timestamp=int(time.time()))
    stale, fresh = receiver.deliveries
    assert stale.signature_valid is False
    assert stale.signature_error is not None
    assert "StaleTimestampError" in stale.signature_error
    assert "tolerance of 60 s" in stale.signature_error
    assert fresh.signature_valid is True


def test_malformed_signature_header_does_not_crash(
    signed_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    response = http.post(
        signed_receiver.url,
        json=created(),
        headers={"webhook-id": "e", "webhook-timestamp": "soon", "webhook-signature": "v1,???"},
    )
    assert response.status_code == 200
    (d,) = signed_receiver.deliveries
    assert d.signature_valid is False


def test_reject_bad_signatures_answers_401(http: httpx.Client) -> None:
    with WebhookReceiver(secret=SECRET, reject_bad_signatures=True) as receiver:
        bad = send(http, receiver.url, created(), secret="wrong")
        unsigned = send(http, receiver.url, created())
        good = send(http, receiver.url, created(), secret=SECRET)
    assert (bad.status_code, unsigned.status_code, good.status_code) == (401, 401, 200)
    statuses = [(d.status_sent, d.fault, d.signature_valid) for d in receiver.deliveries]
    assert statuses == [
        (401, "bad-signature", False),
        (401, "bad-signature", False),
        (200, None, True),
    ]


def test_reject_bad_signatures_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="needs a secret"):
        WebhookReceiver(reject_bad_signatures=True)


# --------------------------------------------------------------------------- #
# Waiting
# --------------------------------------------------------------------------- #


def test_wait_for_returns_the_first_n(receiver: WebhookReceiver, http: httpx.Client) -> None:
    for key in ("a", "b", "c"):
        send(http, receiver.url, created(key))
    got = receiver.wait_for(2, timeout=5)
    assert [d.key for d in got] == ["a", "b"]
    assert receiver.wait_for(0) == []


def test_wait_for_waits_for_a_later_delivery(receiver: WebhookReceiver) -> None:
    started = threading.Event()

    def later() -> None:
        started.wait(5)
        with httpx.Client(timeout=10) as client:
            send(client, receiver.url, created("late"))

    thread = threading.Thread(target=later)
    thread.start()
    started.set()
    (d,) = receiver.wait_for(1, timeout=10)
    thread.join()
    assert d.key == "late"


def test_wait_for_timeout_lists_what_arrived(
    signed_receiver: WebhookReceiver, http: httpx.Client
) -> None:
    signed_receiver.fail_next(1, status=503)
    send(http, signed_receiver.url, created("first", ["run1", "first"]), event_id="evt-one")
    send(http, signed_receiver.url, created("second"), secret=SECRET, event_id="evt-two")

    with pytest.raises(TimeoutError) as info:
        signed_receiver.wait_for(3, timeout=0.05)

    message = str(info.value)
    assert "3 deliveries" in message
    assert "0 matched" not in message
    assert "2 arrived" in message
    assert "container-child-created" in message
    assert "run1/first" in message
    assert "evt-one" in message and "evt-two" in message
    assert "503" in message and "200" in message
    assert "MissingSignatureError" in message  # why the first one's signature failed
    assert signed_receiver.url in message


def test_wait_for_timeout_when_nothing_arrived(receiver: WebhookReceiver) -> None:
    with pytest.raises(TimeoutError, match="nothing was delivered"):
        receiver.wait_for(1, timeout=0.01)


def test_wait_for_always_has_a_deadline(receiver: WebhookReceiver) -> None:
    with pytest.raises(ValueError, match="timeout must be"):
        receiver.wait_for(1, timeout=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be"):
        receiver.wait_for(-1)


def test_filtered_waits(receiver: WebhookReceiver, http: httpx.Client) -> None:
    send(http, receiver.url, created("a", ["run1", "a"]))
    send(http, receiver.url, {"type": "stream-closed", "key": "b", "path": ["run1", "b"]})
    send(http, receiver.url, created("c", ["run2", "c"]))

    (closed,) = receiver.wait_for(1, event_type="stream-closed")
    assert closed.key == "b"
    (by_string,) = receiver.wait_for(1, path="run2/c")
    (by_list,) = receiver.wait_for(1, path=["run1", "a"])
    assert (by_string.key, by_list.key) == ("c", "a")
    both = receiver.wait_for(2, event_type="container-child-created")
    assert [d.key for d in both] == ["a", "c"]

    with pytest.raises(TimeoutError) as info:
        receiver.wait_for(1, timeout=0.01, event_type="stream-closed", path="run2/c")
    message = str(info.value)
    assert "matching event_type='stream-closed', path='run2/c'" in message
    assert "0 matched, 3 arrived" in message


def test_unique_drops_retries(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.fail_next(2)
    for _ in range(3):
        send(http, receiver.url, created("a"), event_id="same")
    send(http, receiver.url, created("b"), event_id="other")
    http.post(receiver.url, content=b"no id")
    http.post(receiver.url, content=b"no id")

    everything = receiver.deliveries
    assert len(everything) == 6
    kept = receiver.unique()
    assert [d.event_id for d in kept] == ["same", "other", None, None]
    assert kept[0] is everything[0]  # the first of the retries is kept
    assert receiver.unique(everything[1:3]) == [everything[1]]

    with pytest.raises(TimeoutError):
        receiver.wait_for(3, timeout=0.01, unique=True, event_type="container-child-created")
    assert [d.key for d in receiver.wait_for(2, unique=True)] == ["a", "b"]


# --------------------------------------------------------------------------- #
# Fault injection
# --------------------------------------------------------------------------- #


def test_fail_next_then_success(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.fail_next(2)
    statuses = [send(http, receiver.url, created()).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert [(d.status_sent, d.fault) for d in receiver.deliveries] == [
        (500, "scripted"),
        (500, "scripted"),
        (200, None),
    ]
    assert not receiver.deliveries[0].accepted


def test_fail_next_with_a_status(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.fail_next(1, status=404)
    assert send(http, receiver.url, created()).status_code == 404
    assert send(http, receiver.url, created()).status_code == 200


def test_scripted_responses_with_retry_after(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.respond_with(
        ScriptedResponse(503, headers={"Retry-After": "7"}, body="busy"),
        ScriptedResponse(429, headers={"Retry-After": "1"}),
        ScriptedResponse(202, body=b"accepted"),
    )
    assert [s.status for s in receiver.script if isinstance(s, ScriptedResponse)] == [503, 429, 202]
    first = send(http, receiver.url, created())
    second = send(http, receiver.url, created())
    third = send(http, receiver.url, created())
    after = send(http, receiver.url, created())

    assert (first.status_code, first.headers["Retry-After"], first.text) == (503, "7", "busy")
    assert (second.status_code, second.headers["Retry-After"]) == (429, "1")
    assert (third.status_code, third.content) == (202, b"accepted")
    assert (after.status_code, after.json()) == (200, {"ok": True})
    assert receiver.script == ()
    assert [d.status_sent for d in receiver.deliveries] == [503, 429, 202, 200]


def test_script_appends_in_order(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.fail_next(1, status=502)
    receiver.respond_with(ScriptedResponse(418))
    receiver.fail_next(1)
    statuses = [send(http, receiver.url, created()).status_code for _ in range(4)]
    assert statuses == [502, 418, 500, 200]


def test_scripted_response_validation(receiver: WebhookReceiver) -> None:
    with pytest.raises(ValueError, match="HTTP status"):
        ScriptedResponse(1000)
    with pytest.raises(TypeError, match="ScriptedResponse or ResetConnection"):
        receiver.respond_with(500)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        receiver.fail_next(-1)
    assert receiver.script == ()


def test_delay_is_observed(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.delay(0.2)
    started = time.monotonic()
    response = send(http, receiver.url, created())
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed >= 0.2
    (d,) = receiver.deliveries
    assert d.delay == 0.2

    receiver.delay(0)
    send(http, receiver.url, created())
    assert receiver.deliveries[-1].delay == 0


def test_delay_is_bounded(receiver: WebhookReceiver) -> None:
    for bad in (-1, receiver_module.MAX_DELAY + 1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="delay must be between"):
            receiver.delay(bad)


def test_stop_cuts_a_delay_short(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = WebhookReceiver().start()
    url = receiver.url
    arrived = threading.Event()
    choose = receiver._choose_answer

    def spy(signature_valid: bool | None) -> Any:
        answer = choose(signature_valid)
        arrived.set()
        return answer

    monkeypatch.setattr(receiver, "_choose_answer", spy)
    receiver.delay(receiver_module.MAX_DELAY)
    outcome: list[BaseException | httpx.Response] = []

    def post() -> None:
        with httpx.Client(timeout=receiver_module.MAX_DELAY + 10) as client:
            try:
                outcome.append(send(client, url, created()))
            except httpx.TransportError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=post)
    thread.start()
    assert arrived.wait(10), "the request never reached the receiver"
    receiver.stop()
    thread.join(30)
    assert not thread.is_alive()
    (result,) = outcome
    assert isinstance(result, httpx.TransportError)  # no status at all
    (d,) = receiver.deliveries
    assert (d.status_sent, d.fault) == (None, "stopped")


def test_reset_next_drops_the_connection(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.reset_next()
    # A reset (RST), not a clean close: the sender reads ECONNRESET, never a status.
    with pytest.raises(httpx.ReadError, match="reset"):
        send(http, receiver.url, created(), event_id="e1")
    assert send(http, receiver.url, created(), event_id="e1").status_code == 200
    reset, ok = receiver.deliveries
    assert (reset.status_sent, reset.fault) == (None, "reset")
    assert reset.event_id == "e1"
    assert (ok.status_sent, ok.fault) == (200, None)


def test_reset_in_a_script(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.respond_with(ScriptedResponse(500), ResetConnection(), ScriptedResponse(201))
    assert send(http, receiver.url, created()).status_code == 500
    with pytest.raises(httpx.TransportError):
        send(http, receiver.url, created())
    assert send(http, receiver.url, created()).status_code == 201
    assert [d.status_sent for d in receiver.deliveries] == [500, None, 201]


def test_gone_answers_410_from_now_on(receiver: WebhookReceiver, http: httpx.Client) -> None:
    receiver.fail_next(3)
    receiver.gone()
    statuses = [send(http, receiver.url, created()).status_code for _ in range(2)]
    assert statuses == [410, 410]
    assert [d.fault for d in receiver.deliveries] == ["gone", "gone"]
    assert len(receiver.script) == 3  # gone comes first; the script is untouched


def test_clear_resets_deliveries_and_faults(receiver: WebhookReceiver, http: httpx.Client) -> None:
    send(http, receiver.url, created())
    receiver.fail_next(2)
    receiver.reset_next()
    receiver.delay(5)
    receiver.gone()
    receiver.clear()

    assert receiver.deliveries == []
    assert receiver.script == ()
    response = send(http, receiver.url, created())
    assert response.status_code == 200
    (d,) = receiver.deliveries
    assert (d.fault, d.delay) == (None, 0)


def test_default_status(http: httpx.Client) -> None:
    with WebhookReceiver(default_status=503) as receiver:
        response = send(http, receiver.url, created())
    assert (response.status_code, response.json()) == (503, {"ok": False})
    assert receiver.deliveries[0].status_sent == 503


# --------------------------------------------------------------------------- #
# Server and lifecycle
# --------------------------------------------------------------------------- #


def test_two_receivers_on_different_ports(http: httpx.Client) -> None:
    with WebhookReceiver() as one, WebhookReceiver() as two:
        assert one.port != two.port
        send(http, one.url, created("for-one"))
        send(http, two.url, created("for-two"))
        send(http, two.url, created("for-two-again"))
    assert [d.key for d in one.deliveries] == ["for-one"]
    assert [d.key for d in two.deliveries] == ["for-two", "for-two-again"]


def test_listens_on_the_given_port(http: httpx.Client, reserved_port: int) -> None:
    port = reserved_port
    with WebhookReceiver(port=port) as receiver:
        assert receiver.port == port
        assert receiver.url == f"http://127.0.0.1:{port}/webhook"
        assert send(http, receiver.url, created()).status_code == 200


def test_a_busy_port_raises_oserror(receiver: WebhookReceiver) -> None:
    other = WebhookReceiver(port=receiver.port)
    with pytest.raises(OSError, match=re.escape(f"cannot listen on 127.0.0.1:{receiver.port}")):
        other.start()
    assert not other.running


def test_restart_keeps_the_port_and_url(http: httpx.Client, reserved_port: int) -> None:
    # The port stays reserved while the receiver is stopped: nothing else takes it.
    receiver = WebhookReceiver(port=reserved_port).start()
    url = receiver.url
    receiver.stop()
    assert not receiver.running
    with pytest.raises(httpx.ConnectError):
        send(http, url, created())
    receiver.stop()  # a no-op when stopped
    with receiver:
        assert receiver.url == url
        assert send(http, url, created()).status_code == 200
    with pytest.raises(RuntimeError, match="already running"), receiver:
        receiver.start()


def test_accepted_sockets_set_tcp_nodelay(
    receiver: WebhookReceiver, http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    setup = http_server.Handler.setup

    def recording_setup(self: Any) -> None:
        setup(self)
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(http_server.Handler, "setup", recording_setup)
    send(http, receiver.url, created())
    send(http, receiver.url, created())
    assert len(seen) == 2
    assert all(seen)


def test_reprs(signed_receiver: WebhookReceiver, http: httpx.Client) -> None:
    send(http, signed_receiver.url, created("x", ["run1", "x"]), secret=SECRET, event_id="e9")
    signed_receiver.fail_next(2)
    signed_receiver.gone()
    (d,) = signed_receiver.deliveries

    text = repr(signed_receiver)
    assert signed_receiver.url in text
    assert "1 deliveries" in text and "gone (410)" in text and "script: 500, 500" in text
    html = signed_receiver._repr_html_()
    assert "<table>" in html and "run1/x" in html and "e9" in html
    assert "valid (standard-webhooks)" in html

    assert "event_type='container-child-created'" in repr(d)
    assert "'run1/x'" in repr(d) and "status_sent=200" in repr(d)
    assert "e9" in d._repr_html_() and "&quot;run1&quot;" in d._repr_html_()
    assert "x" in repr(d.headers)


def test_lazy_exports() -> None:
    assert hookbook.testing.__all__ == sorted(hookbook.testing.__all__)
    for name in hookbook.testing.__all__:
        assert getattr(hookbook.testing, name) is getattr(receiver_module, name)
    with pytest.raises(AttributeError):
        hookbook.testing.nope  # noqa: B018
