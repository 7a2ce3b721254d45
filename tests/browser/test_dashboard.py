"""The server's dashboard in Chromium: sign-in, live deliveries, attempts, actions, scopes."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver

READER = {"key": "reader_key_123", "scopes": ["read:metadata", "read:webhooks"]}
METADATA_ONLY = {"key": "metadata_key_123", "scopes": ["read:metadata"]}
PROBE = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret="s3cret") as receiver:
        yield receiver


def make_server() -> SimpleServer:
    return SimpleServer(
        enable_webhooks=True,
        webhooks={"retry_schedule": [0.05, 0.05]},
        api_keys=[READER, METADATA_ONLY],
    )


@pytest.fixture
def server() -> Iterator[SimpleServer]:
    with make_server() as server:
        yield server


@pytest.fixture
def client(server: SimpleServer) -> Iterator[Any]:
    with from_uri(server.uri) as client:
        yield client


def sign_in(page: Any, server: SimpleServer, key: str) -> None:
    page.goto(f"{server.base_url}/ui/")
    assert "/ui/signin" in page.url
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.base_url}/ui/")


def test_sign_in_and_a_new_delivery_appears_without_a_reload(
    page, server, client, receiver, expect, screenshot
):
    hook = client.webhooks.register(receiver.url, secret="s3cret")
    sign_in(page, server, server.api_key)
    expect(page.locator("#webhooks")).to_contain_text(receiver.url)
    page.get_by_role("link", name=receiver.url).click()
    expect(page.get_by_role("heading", name=f"Webhook {hook.id}")).to_be_visible()
    expect(page.locator("#deliveries tbody")).to_contain_text("No deliveries yet")
    page.evaluate("window.stillTheSamePage = true")

    client.write_array(np.array([1.0, 2.0, 3.0]), key="temperature")

    row = page.locator("#deliveries tbody tr", has_text="temperature")
    expect(row).to_contain_text("container-child-created")
    expect(row).to_contain_text("success")
    assert page.evaluate("window.stillTheSamePage") is True  # no reload
    screenshot(page, "live")


def test_attempts_after_two_failures_then_redeliver(
    page, server, client, receiver, expect, screenshot
):
    hook = client.webhooks.register(receiver.url, secret="s3cret")
    receiver.fail_next(2, status=503)
    client.create_container("run1", metadata={"sample": "Si"})
    server.drain()
    sign_in(page, server, server.api_key)
    page.goto(f"{server.base_url}/ui/webhooks/{hook.id}")
    page.locator("#deliveries tbody tr", has_text="run1").get_by_role("link").click()

    attempts = page.locator("#attempts tbody tr")
    expect(attempts).to_have_count(3)
    expect(attempts.nth(0)).to_contain_text("HTTP 503")
    expect(attempts.nth(1)).to_contain_text("HTTP 503")
    expect(attempts.nth(2)).to_contain_text("HTTP 200")
    expect(page.locator("ol.timeline .wait")).to_have_count(2)
    expect(page.locator("pre.json")).to_contain_text('"sample": "Si"')
    event_id = page.locator("code.event-id").inner_text()
    screenshot(page, "attempts")

    page.get_by_role("button", name="Redeliver").click()
    expect(page.get_by_role("status")).to_contain_text("Redelivery queued")
    expect(page.locator("code.event-id")).to_have_text(event_id)  # the same event id
    expect(page.locator("#attempts tbody tr.attempt")).to_have_count(1)  # appears live
    expect(page.locator("#attempts tbody tr.attempt")).to_contain_text("HTTP 200")
    expect(page.locator("#outcome")).to_have_text("success")
    screenshot(page, "redelivered")
    assert [d.event_id for d in receiver.deliveries].count(event_id) == 4


def test_a_read_only_key_sees_but_cannot_act_and_is_told_why(
    page, server, client, receiver, expect
):
    hook = client.webhooks.register(receiver.url)
    client.create_container("run1")
    server.drain()
    sign_in(page, server, READER["key"])
    page.goto(f"{server.base_url}/ui/webhooks/{hook.id}")
    denied = page.locator(".denied")
    expect(denied).to_contain_text("not write:webhooks")
    expect(denied).to_contain_text("can see this page but not ping, disable or enable it")
    expect(page.get_by_role("button", name="Send a ping")).to_have_count(0)
    expect(page.get_by_role("button", name="Disable")).to_have_count(0)
    page.locator("#deliveries tbody tr").first.get_by_role("link").click()
    expect(page.locator(".denied")).to_contain_text("not redeliver it")
    expect(page.get_by_role("button", name="Redeliver")).to_have_count(0)


def test_a_key_without_read_webhooks_is_told_plainly(page, server, client, receiver, expect):
    client.webhooks.register(receiver.url)
    sign_in_page = page
    sign_in_page.goto(f"{server.base_url}/ui/signin")
    page.get_by_label("API key").fill(METADATA_ONLY["key"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("lacks the 'read:webhooks' scope")
    expect(page.locator("main")).not_to_contain_text(receiver.url)


def test_signed_out_visitors_are_sent_to_sign_in_and_see_nothing(
    context, page, server, client, receiver, expect
):
    hook = client.webhooks.register(receiver.url)
    client.create_container("run1")
    server.drain()
    for path in ("/ui/", f"/ui/webhooks/{hook.id}", "/ui/deliveries/1"):
        page.goto(server.base_url + path)
        assert re.search(r"/ui/signin\?next=", page.url), page.url
        expect(page.locator("main")).not_to_contain_text("run1")
        expect(page.locator("main")).not_to_contain_text(receiver.url)
    for path in (f"/ui/live/webhooks/{hook.id}", "/ui/live/deliveries/1"):
        response = context.request.get(server.base_url + path)
        assert response.status == 401 and response.json() == {"detail": "sign in first"}

    # Signed in, then out in another tab: the open page's updates stop, saying why.
    sign_in(page, server, server.api_key)
    page.goto(f"{server.base_url}/ui/webhooks/{hook.id}")
    other = context.new_page()
    other.goto(f"{server.base_url}/ui/")
    other.get_by_role("button", name="Sign out").click()
    expect(other.get_by_role("status")).to_contain_text("You are signed out")
    expect(page.locator("[data-live-status]")).to_contain_text("Your session has ended")
    client.create_container("run2")
    server.drain()
    page.wait_for_timeout(1500)  # three polling periods: nothing more may arrive
    expect(page.locator("#deliveries tbody")).not_to_contain_text("run2")


def test_two_servers_in_one_browser_keep_separate_sessions(context, page, expect):
    with make_server() as first, make_server() as second:
        sign_in(page, first, first.api_key)
        sign_in(page, second, second.api_key)
        names = {cookie["name"] for cookie in context.cookies()}
        assert names == {f"hookbook_session_{first.port}", f"hookbook_session_{second.port}"}
        page.goto(f"{first.base_url}/ui/")
        expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        page.goto(f"{second.base_url}/ui/")
        expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()  # still in
        page.goto(f"{first.base_url}/ui/")
        assert "/ui/signin" in page.url


def test_the_one_time_link_signs_in_once(context, page, server, expect):
    url = server.dashboard_url
    page.goto(url)
    page.wait_for_url(f"{server.base_url}/ui/")
    expect(page.get_by_role("heading", name="Webhooks")).to_be_visible()
    fresh = context.browser.new_context()
    try:
        again = fresh.new_page()
        again.goto(url)
        expect(again.get_by_role("alert")).to_contain_text("has been used or has expired")
    finally:
        fresh.close()


def test_the_xss_probe_shows_as_text(page, server, client, receiver, problems, expect, screenshot):
    node = client.create_container(PROBE, metadata={"note": PROBE})
    hook = client.webhooks.register(receiver.url, path=[PROBE])
    node.create_container("child", metadata={"note": PROBE})
    server.drain()
    sign_in(page, server, server.api_key)
    expect(page.locator("#webhooks td.path")).to_have_text(PROBE)
    page.goto(f"{server.base_url}/ui/webhooks/{hook.id}")
    expect(page.locator("dl.facts dd.path")).to_have_text(PROBE)
    node.update_metadata(metadata={"note": PROBE, "again": True})  # rendered by a live update
    expect(page.locator("#deliveries tbody tr")).to_have_count(2)
    expect(page.locator("#deliveries td.path").first).to_have_text(PROBE)
    page.locator("#deliveries tbody tr").first.get_by_role("link").click()
    expect(page.locator("pre.json")).to_contain_text(PROBE.replace('"', '\\"'))
    assert page.locator("img").count() == 0
    screenshot(page, "probe")
    assert problems.dialogs == []


def test_close_is_not_held_up_by_an_open_page(page, receiver, expect):
    server = make_server()
    try:
        with from_uri(server.uri) as client:
            hook = client.webhooks.register(receiver.url)
        sign_in(page, server, server.api_key)
        page.goto(f"{server.base_url}/ui/webhooks/{hook.id}")
        expect(page.locator("[data-live-status]")).to_contain_text("Live")
    finally:
        closing = threading.Thread(target=server.close)
        closing.start()
        closing.join(10)
    assert not closing.is_alive(), "close() waited for the page's updates"
    expect(page.locator("[data-live-status]")).to_contain_text("does not answer")
