"""The code shown in docs/how-to/verify-deliveries.md works (docs/examples/*.py).

The examples are run against deliveries from a real ``SimpleServer``: the
FastAPI receiver is served by uvicorn and registered as a webhook; the plain
function and the ``standardwebhooks`` variant are given deliveries captured
by a ``WebhookReceiver``, then forged, altered and replayed ones.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import numpy as np
import pytest

from hookbook.client import from_uri
from hookbook.errors import BadSignatureError, MissingSignatureError, StaleTimestampError
from hookbook.events import ContainerChildCreated, StreamClosed
from hookbook.server import SimpleServer
from hookbook.signing import sign_headers
from hookbook.testing import WebhookReceiver

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
SECRET = "docs-example-secret"
TESTING = {"retry_schedule": [0.01, 0.01]}


def load_example(name: str) -> ModuleType:
    """Import ``docs/examples/{name}.py`` as a module of its own."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested() -> None:
    tested = {"fastapi_receiver", "verify_function", "verify_standardwebhooks"}
    assert {p.stem for p in EXAMPLES.glob("*.py")} == tested


# --------------------------------------------------------------------------- captured deliveries


@pytest.fixture(scope="module")
def captured() -> list:
    """Three real, signed deliveries: two arrays created, one stream closed."""
    with (
        WebhookReceiver(secret=SECRET) as receiver,
        SimpleServer(webhooks=TESTING) as server,
        from_uri(server.uri) as client,
    ):
        client.webhooks.register(receiver.url, secret=SECRET)
        client.write_array(np.array([1.0, 2.0, 3.0]), key="temperature")
        client.write_array(np.array([10, 20, 30]), key="counts")
        client["counts"].close_stream()
        deliveries = receiver.wait_for(3, timeout=10)
        server.drain()
    assert all(d.signature_valid for d in deliveries)
    return deliveries


def test_plain_function_accepts_each_delivery_once(captured: list) -> None:
    receive = load_example("verify_function").receive
    seen: set[str] = set()
    events = [receive(d.body, dict(d.headers), SECRET, seen) for d in captured]
    assert {e.type for e in events} == {"container-child-created", "stream-closed"}
    created = [e for e in events if isinstance(e, ContainerChildCreated)]
    assert sorted(e.path for e in created) == [["counts"], ["temperature"]]
    assert [e.key for e in events if isinstance(e, StreamClosed)] == ["counts"]
    assert seen == {d.event_id for d in captured}
    # A retry or redelivery (same event id) is recognised and not handled twice.
    assert receive(captured[0].body, dict(captured[0].headers), SECRET, seen) is None


def test_plain_function_matches_header_names_in_any_case(captured: list) -> None:
    receive = load_example("verify_function").receive
    delivery = captured[0]
    upper = {name.upper(): value for name, value in delivery.headers.items()}
    assert receive(delivery.body, upper, SECRET, set()) is not None


def test_plain_function_refuses_forged_altered_and_replayed_deliveries(captured: list) -> None:
    receive = load_example("verify_function").receive
    delivery = captured[0]
    headers = dict(delivery.headers)
    seen: set[str] = set()

    with pytest.raises(BadSignatureError, match="webhook-signature"):
        receive(delivery.body, headers, "not-the-secret", seen)
    with pytest.raises(BadSignatureError):
        receive(delivery.body.replace(b'"key": "', b'"key": "x'), headers, SECRET, seen)
    with pytest.raises(MissingSignatureError):
        receive(delivery.body, {"X-Tiled-Event-ID": delivery.event_id}, SECRET, seen)

    # Correctly signed, but an hour ago: a replay of a captured delivery.
    old = sign_headers(delivery.body, SECRET, delivery.event_id, timestamp=int(time.time()) - 3600)
    with pytest.raises(StaleTimestampError, match=r"webhook-timestamp is 36\d\d(\.\d)? s old"):
        receive(delivery.body, {**old, "X-Tiled-Event-ID": delivery.event_id}, SECRET, seen)
    assert seen == set(), "a refused delivery must not be remembered as handled"


def test_standardwebhooks_verifies_a_hookbook_delivery(captured: list) -> None:
    from standardwebhooks import WebhookVerificationError

    verify_with_standardwebhooks = load_example(
        "verify_standardwebhooks"
    ).verify_with_standardwebhooks
    delivery = captured[0]
    payload = verify_with_standardwebhooks(delivery.body, dict(delivery.headers), SECRET)
    assert payload == delivery.json
    with pytest.raises(WebhookVerificationError):
        verify_with_standardwebhooks(delivery.body, dict(delivery.headers), "not-the-secret")


# --------------------------------------------------------------------------- FastAPI receiver


@pytest.fixture
def fastapi_receiver() -> Iterator[tuple[str, object]]:
    """The example app, served by uvicorn on a free port: ``(url, app)``."""
    import uvicorn

    app = load_example("fastapi_receiver").create_receiver(SECRET)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/webhook", app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_fastapi_receiver_handles_real_deliveries(fastapi_receiver: tuple[str, object]) -> None:
    url, app = fastapi_receiver
    with SimpleServer(webhooks=TESTING) as server, from_uri(server.uri) as client:
        hook = client.webhooks.register(url, secret=SECRET)
        client.write_array(np.array([1.0, 2.0, 3.0]), key="temperature")
        client.write_array(np.array([10, 20, 30]), key="counts")
        server.drain()
        history = client.webhooks.history(hook.id)
        assert [(r.outcome, r.status_code, r.attempts) for r in history] == [
            ("success", 204, 1),
            ("success", 204, 1),
        ]
        assert sorted(e.path for e in app.state.events) == [["counts"], ["temperature"]]

        # A redelivery carries the same event id: accepted (2xx), not handled twice.
        client.webhooks.redeliver(history[0].id)
        server.drain()
        assert client.webhooks.history(hook.id)[0].outcome == "success"
        assert len(app.state.events) == 2


def test_fastapi_receiver_refuses_a_forged_delivery(
    fastapi_receiver: tuple[str, object], captured: list
) -> None:
    url, app = fastapi_receiver
    delivery = captured[0]
    headers = {k: v for k, v in delivery.headers.items() if k.lower() != "content-length"}
    forged = httpx.post(
        url, content=delivery.body.replace(b'"key": "', b'"key": "x'), headers=headers
    )
    assert forged.status_code == 401
    assert "webhook-signature" in forged.json()["detail"]
    unsigned = httpx.post(url, content=delivery.body, headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert "not signed" in unsigned.json()["detail"]
    assert app.state.events == []


# --------------------------------------------------------------------------- page snippets

#: Pages whose ``python`` blocks run as they are (other pages show test files or fragments).
PAGES = [
    "index.md",
    "install.md",
    "how-to/verify-deliveries.md",
    "reference/errors.md",
    "reference/events.md",
    "reference/configuration.md",
    "reference/http-api.md",
]
DOCS = EXAMPLES.parent
_FENCE = re.compile(r"^(`{3,})python\s*$")
DOCS_SKIP = "<!-- docs-test: skip"


def page_snippets() -> list[tuple[str, int, str]]:
    """``(page, line, code)`` of every ``python`` block of :data:`PAGES` not marked to skip."""
    found = []
    for page in PAGES:
        lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = _FENCE.match(line)
            if not match or (i and lines[i - 1].startswith(DOCS_SKIP)):
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == match.group(1))
            found.append((page, i + 1, "\n".join(lines[i + 1 : end]) + "\n"))
    return found


SNIPPETS = page_snippets()


def test_the_pages_show_runnable_snippets() -> None:
    assert {page for page, _, _ in SNIPPETS} >= {"index.md", "reference/events.md"}


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"{page}:{line}" for page, line, _ in SNIPPETS])
def test_page_snippet_runs(snippet: tuple[str, int, str], tmp_path: Path) -> None:
    page, line, code = snippet
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, (
        f"docs/{page} block at line {line} failed (exit {result.returncode}):\n"
        f"--- code ---\n{code}--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
    )
