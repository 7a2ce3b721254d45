"""The body of ``hookbook receive``: run_receiver prints what arrives, until stopped."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from rich.console import Console

from hookbook.signing import sign_headers
from hookbook.testing import WebhookReceiver
from hookbook.testing.console import run_receiver

SECRET = "console-secret"
PAYLOAD = {
    "type": "container-child-created",
    "timestamp": "2024-01-01T00:00:00+00:00",
    "key": "det",
    "path": ["run1", "det"],
    "structure_family": "array",
    "specs": [],
    "metadata": {"color": "blue"},
}


class _Output(io.StringIO):
    """A console file that signals its first write (the banner: the receiver listens)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        self.written.set()
        return count


@dataclass
class Running:
    url: str
    console: Console
    stop: threading.Event
    thread: threading.Thread
    errors: list[BaseException]

    def finish(self) -> str:
        """Stop the command, wait for it to return, and give its output as plain text."""
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "run_receiver did not return after stop_event"
        assert self.errors == []
        return self.console.export_text()


@pytest.fixture
def start() -> Iterator[Any]:
    runs: list[Running] = []

    def _start(**kwargs: Any) -> Running:
        output = _Output()
        console = Console(file=output, record=True, width=400, color_system=None)
        stop = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                run_receiver(0, console=console, stop_event=stop, **kwargs)
            except BaseException as exc:  # reported by Running.finish
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        assert output.written.wait(10), "run_receiver printed nothing"
        match = re.search(r"http://127\.0\.0\.1:\d+/", output.getvalue())
        assert match, output.getvalue()
        run = Running(match.group(0), console, stop, thread, errors)
        runs.append(run)
        return run

    yield _start
    for run in runs:  # never leave a thread behind, even when a test fails
        run.stop.set()
        run.thread.join(10)


def post(url: str, *, secret: str | None = None, event_id: str = "evt-1") -> httpx.Response:
    body = json.dumps(PAYLOAD).encode()
    headers = {"Content-Type": "application/json", "X-Tiled-Event-ID": event_id}
    if secret:
        headers.update(sign_headers(body, secret, event_id))
    return httpx.post(url + "hook", content=body, headers=headers, timeout=10)


def test_prints_each_delivery(start: Any) -> None:
    run = start(secret=SECRET)
    assert post(run.url, secret=SECRET, event_id="evt-1").status_code == 200
    assert post(run.url, secret=SECRET, event_id="evt-2").status_code == 200
    text = run.finish()

    assert "Listening on http://127.0.0.1:" in text
    assert "verified with the given secret" in text
    lines = [line for line in text.splitlines() if "container-child-created" in line]
    assert len(lines) == 2, text
    first = lines[0]
    assert first.startswith("#1 ")
    assert "POST /hook" in first
    assert "path=run1/det" in first
    assert "key=det" in first
    assert "event_id=evt-1" in first
    assert "signature: valid (standard-webhooks)" in first
    assert first.rstrip().endswith("-> 200")
    assert "event_id=evt-2" in lines[1]
    assert "Stopped after 2 deliveries." in text
    assert '"color"' not in text  # no JSON body unless asked


def test_reports_bad_signatures(start: Any) -> None:
    run = start(secret=SECRET)
    assert post(run.url, secret="not-the-secret").status_code == 200
    assert post(run.url).status_code == 200
    text = run.finish()
    assert text.count("signature: INVALID: BadSignatureError") == 1, text
    assert text.count("signature: INVALID: MissingSignatureError") == 1, text


def test_without_a_secret_signatures_are_not_checked(start: Any) -> None:
    run = start(secret=None)
    post(run.url, secret=SECRET)
    text = run.finish()
    assert "signatures not checked (no secret)" in text
    assert "signature: not checked" in text


def test_answers_with_the_chosen_status(start: Any) -> None:
    run = start(secret=None, status=503)
    responses = [post(run.url) for _ in range(3)]
    text = run.finish()
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert "answering 503" in text
    assert text.count("-> 503") == 3, text


def test_show_json_prints_the_body(start: Any) -> None:
    run = start(secret=None, show_json=True)
    post(run.url)
    httpx.post(run.url, content=b"plain text body", timeout=10)
    text = run.finish()
    assert '"color": "blue"' in text
    assert '"structure_family": "array"' in text
    assert "plain text body" in text
    assert "(no event type)" in text


def test_keyboard_interrupt_returns_cleanly(
    monkeypatch: pytest.MonkeyPatch, reserved_port: int
) -> None:
    def interrupted(self: WebhookReceiver, count: int, timeout: float) -> list[Any]:
        interrupted.port = self.port  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(WebhookReceiver, "_wait_new", interrupted)
    console = Console(file=io.StringIO(), record=True, width=400, color_system=None)
    run_receiver(reserved_port, secret=None, console=console)  # returns instead of raising

    assert "Stopped after 0 deliveries." in console.export_text()
    # The receiver was stopped: its port can be listened on again.
    assert interrupted.port == reserved_port  # type: ignore[attr-defined]
    with WebhookReceiver(port=reserved_port) as again:
        assert again.running


def test_a_busy_port_raises(start: Any) -> None:
    run = start(secret=None)
    port = int(run.url.rsplit(":", 1)[1].strip("/"))
    console = Console(file=io.StringIO(), record=True)
    with pytest.raises(OSError, match="cannot listen"):
        run_receiver(port, secret=None, console=console, stop_event=threading.Event())
    run.finish()
