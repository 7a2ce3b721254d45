"""The receiver's inspector in Chromium: deliveries live, and its controls drive the faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret="s3cret") as receiver:
        yield receiver


def test_a_delivery_shows_live_and_fail_next_makes_the_server_retry(
    page, receiver, expect, screenshot
):
    with (
        SimpleServer(enable_webhooks=True, webhooks={"retry_schedule": [0.05, 0.05]}) as server,
        from_uri(server.uri) as client,
    ):
        hook = client.webhooks.register(receiver.url, secret="s3cret")
        page.goto(receiver.inspector_url)
        expect(page.locator("#live")).to_contain_text("Waiting for deliveries")

        fail = page.locator("form[data-action=fail_next]")
        fail.get_by_label("Fail the next").fill("2")
        fail.get_by_label("with HTTP").fill("503")
        fail.get_by_role("button", name="Fail next").click()
        expect(page.locator("#control-result")).to_contain_text(
            "the next 2 request(s) get HTTP 503"
        )
        expect(page.locator("#faults")).to_have_text("script: 503, 503")

        client.create_container("run1", metadata={"sample": "Si"})

        articles = page.locator("article.delivery")
        expect(articles).to_have_count(3)  # live: two refused, then the retry that succeeds
        expect(articles.nth(0)).to_contain_text("→ 200")
        expect(articles.nth(1)).to_contain_text("→ 503 [scripted]")
        expect(articles.nth(2)).to_contain_text("→ 503 [scripted]")
        newest = articles.nth(0)
        expect(newest).to_contain_text("container-child-created")
        expect(newest).to_contain_text("key run1")
        expect(newest).to_contain_text("signature valid")
        newest.locator("summary").click()
        expect(newest.locator("pre.body")).to_contain_text('"sample": "Si"')
        expect(newest.locator("table.headers")).to_contain_text("X-Tiled-Event-Id")
        expect(page.locator("#faults")).to_contain_text("none")
        screenshot(page, "inspector")

        server.drain()
        (record,) = client.webhooks.history(hook.id)
        assert record.attempts == 3 and record.outcome == "success"
    # The page itself was never recorded (nor its favicon): only the three attempts.
    assert len(receiver.deliveries) == 3


def test_without_the_token_the_controls_refuse(context, page, receiver, expect):
    base = f"http://127.0.0.1:{receiver.port}/_hookbook"
    refused = page.goto(f"{base}/")
    assert refused is not None and refused.status == 403
    expect(page.locator("body")).to_contain_text("needs this receiver's token")
    for token in ({}, {"X-Hookbook-Token": "guessed"}):
        response = context.request.post(
            f"{base}/api/faults", data={"action": "gone"}, headers=token
        )
        assert response.status == 403
    # A page of the receiver's own origin, without the token, cannot drive them either.
    status = page.evaluate(
        """() => fetch("/_hookbook/api/faults", {method: "POST",
             headers: {"Content-Type": "application/json"},
             body: JSON.stringify({action: "gone"})}).then(r => r.status)"""
    )
    assert status == 403
    assert receiver.script == () and not receiver._gone
    assert receiver.deliveries == []
