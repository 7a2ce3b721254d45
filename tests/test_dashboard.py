"""The dashboard at /ui/ over HTTP (no browser): sign-in, sessions, CSRF, scopes, escaping.

The browser tests (tests/browser/) drive the same pages in Chromium; these check the
security rules request by request, where each can be seen exactly.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.server.ui import sessions
from hookbook.testing import WebhookReceiver

READER = {"key": "reader_key_123", "scopes": ["read:webhooks"]}
METADATA_ONLY = {"key": "metadata_key_123", "scopes": ["read:metadata"]}
PROBE = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def server() -> Iterator[SimpleServer]:
    with SimpleServer(
        enable_webhooks=True,
        webhooks={"retry_schedule": [0.01, 0.01]},
        api_keys=[READER, METADATA_ONLY],
    ) as server:
        yield server


@pytest.fixture
def hook_id(server: SimpleServer, receiver: WebhookReceiver) -> int:
    """A webhook with one settled delivery (of the container ``run1``)."""
    with from_uri(server.uri) as client:
        hook = client.webhooks.register(receiver.url)
        client.create_container("run1", metadata={"sample": "Si"})
    server.drain()
    return hook.id


def browser(server: SimpleServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=10)


@contextlib.contextmanager
def sign_in(server: SimpleServer, key: str) -> Iterator[httpx.Client]:
    with browser(server) as client:
        response = client.post("/ui/signin", data={"api_key": key})
        assert response.status_code == 303, response.text
        yield client


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, page.text
    return match.group(1)


def cookie_name(server: SimpleServer) -> str:
    return f"hookbook_session_{server.port}"


# ---- sign-in and the cookie -------------------------------------------------------------


def test_sign_in_sets_a_strict_http_only_cookie_named_for_the_port(server, hook_id):
    with browser(server) as client:
        form = client.get("/ui/signin")
        assert form.status_code == 200
        assert 'type="password"' in form.text and 'action="/ui/signin"' in form.text
        response = client.post("/ui/signin", data={"api_key": server.api_key})
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/"
        assert server.api_key not in response.headers["location"]
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{cookie_name(server)}=")
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/ui/"} <= attributes
        assert "secure" not in attributes  # plain http here
        assert server.api_key not in cookie
        page = client.get("/ui/")
        assert page.status_code == 200
        assert "http://127.0.0.1:" in page.text and "/webhook" in page.text


def test_the_cookie_is_secure_behind_https(server):
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS-terminating proxy).
    with browser(server) as client:
        response = client.post(
            "/ui/signin",
            data={"api_key": server.api_key},
            headers={"X-Forwarded-Proto": "https"},
        )
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower().split("; ")


def test_a_wrong_key_is_refused_on_the_form(server):
    with browser(server) as client:
        response = client.post("/ui/signin", data={"api_key": "not_a_key_at_all"})
        assert response.status_code == 401
        assert "not one this server knows" in response.text
        assert "set-cookie" not in response.headers
        empty = client.post("/ui/signin", data={"api_key": ""})
        assert empty.status_code == 401 and "Enter an API key" in empty.text


def test_sign_in_returns_to_the_page_asked_for_and_nowhere_else(server, hook_id):
    with browser(server) as client:
        first = client.get(f"/ui/webhooks/{hook_id}")
        assert first.status_code == 303
        assert first.headers["location"] == f"/ui/signin?next=%2Fui%2Fwebhooks%2F{hook_id}"
        back = client.post(
            "/ui/signin", data={"api_key": server.api_key, "next": f"/ui/webhooks/{hook_id}"}
        )
        assert back.headers["location"] == f"/ui/webhooks/{hook_id}"
        for elsewhere in ("https://evil.example/", "//evil.example/ui/", "/api/v1/"):
            response = client.post(
                "/ui/signin", data={"api_key": server.api_key, "next": elsewhere}
            )
            assert response.headers["location"] == "/ui/"


def test_a_form_from_another_site_is_refused(server):
    with browser(server) as client:
        response = client.post(
            "/ui/signin",
            data={"api_key": server.api_key},
            headers={"Origin": "https://evil.example"},
        )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_a_form_that_is_not_url_encoded_is_refused(server):
    with browser(server) as client:
        response = client.post("/ui/signin", json={"api_key": server.api_key})
    assert response.status_code == 400
    assert "URL-encoded" in response.text


# ---- what is and is not accepted as authentication ------------------------------------


def test_the_dashboard_ignores_api_keys_in_headers_and_query(server, hook_id):
    with browser(server) as client:
        for kwargs in (
            {"headers": {"Authorization": f"Apikey {server.api_key}"}},
            {"headers": {"Authorization": f"Bearer {server.api_key}"}},
            {"params": {"api_key": server.api_key}},
        ):
            response = client.get("/ui/", **kwargs)
            assert response.status_code == 303, kwargs
            assert response.headers["location"].startswith("/ui/signin")
            live = client.get(f"/ui/live/webhooks/{hook_id}", **kwargs)
            assert live.status_code == 401, kwargs


def test_the_api_never_accepts_the_cookie(server, hook_id):
    with sign_in(server, server.api_key) as client:
        assert client.get("/ui/").status_code == 200
        cookie = client.cookies[cookie_name(server)]
        api = httpx.get(
            f"{server.base_url}/api/v1/webhooks/",
            cookies={cookie_name(server): cookie},
        )
    assert api.status_code == 401


def test_signed_out_visitors_see_no_data(server, hook_id):
    with from_uri(server.uri) as client:
        delivery_id = client.webhooks.history(hook_id)[0].id
    with browser(server) as client:
        for path in ("/ui/", f"/ui/webhooks/{hook_id}", f"/ui/deliveries/{delivery_id}"):
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/ui/signin?next=")
            assert "run1" not in response.text and "/webhook" not in response.text
        for path in (f"/ui/live/webhooks/{hook_id}", f"/ui/live/deliveries/{delivery_id}"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.json() == {"detail": "sign in first"}
        forged = httpx.get(
            f"{server.base_url}/ui/",
            cookies={cookie_name(server): "made-up-session-id"},
            follow_redirects=False,
        )
        assert forged.status_code == 303
        assert "notice=ended" in forged.headers["location"]


# ---- sessions end -----------------------------------------------------------------------


def test_sign_out_ends_the_session_on_the_server(server, hook_id):
    with sign_in(server, server.api_key) as client:
        page = client.get("/ui/")
        cookie = client.cookies[cookie_name(server)]
        refused = client.post("/ui/signout", data={"csrf": "0" * 64})
        assert refused.status_code == 403
        assert client.get("/ui/").status_code == 200  # still signed in
        out = client.post("/ui/signout", data={"csrf": csrf_of(page)})
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/signin?notice=signed-out"
    # Presenting the old cookie again does not work: the session is gone, not just the cookie.
    replay = httpx.get(
        f"{server.base_url}/ui/", cookies={cookie_name(server): cookie}, follow_redirects=False
    )
    assert replay.status_code == 303


def test_a_session_ends_when_its_key_is_no_longer_configured(tmp_path):
    extra = {"key": "temporary_key_1", "scopes": ["admin"]}
    with (
        SimpleServer(tmp_path, enable_webhooks=True, api_keys=[extra]) as first,
        sign_in(first, extra["key"]) as client,
    ):
        cookie = client.cookies[cookie_name(first)]
        assert client.get("/ui/").status_code == 200
    with SimpleServer(tmp_path, enable_webhooks=True) as second:  # same database, key gone
        response = httpx.get(
            f"{second.base_url}/ui/", cookies={cookie_name(second): cookie}, follow_redirects=False
        )
        assert response.status_code == 303
        assert "notice=ended" in response.headers["location"]
    with SimpleServer(tmp_path, enable_webhooks=True, api_keys=[extra]) as third:
        # The session was deleted when it was refused: the key's return does not revive it.
        response = httpx.get(
            f"{third.base_url}/ui/", cookies={cookie_name(third): cookie}, follow_redirects=False
        )
        assert response.status_code == 303


def test_only_hashes_are_stored(server):
    with sign_in(server, server.api_key) as client:
        cookie = client.cookies[cookie_name(server)]
    server.dashboard_url  # noqa: B018 - makes a token row

    async def rows():
        async with server.app.state.services.db.read() as conn:
            import sqlalchemy as sa

            from hookbook.db import ui_sessions, ui_signin_tokens

            return [
                *(await conn.execute(sa.select(ui_sessions))).all(),
                *(await conn.execute(sa.select(ui_signin_tokens))).all(),
            ]

    stored = " ".join(str(value) for row in server.run(rows()) for value in row)
    assert cookie not in stored and server.api_key not in stored
    assert sessions.digest(cookie) in stored and sessions.digest(server.api_key) in stored


# ---- the one-time sign-in link ----------------------------------------------------------


def test_dashboard_url_signs_in_once(server, hook_id):
    url = server.dashboard_url
    assert url.startswith(f"{server.base_url}/ui/?token=")
    assert server.api_key not in url
    assert server.dashboard_url != url  # a new token each time
    with httpx.Client(follow_redirects=False) as client:
        first = client.get(url)
        assert first.status_code == 200
        assert 'http-equiv="refresh"' in first.text
        assert cookie_name(server) in first.headers["set-cookie"]
        assert client.get(f"{server.base_url}/ui/").status_code == 200
    with httpx.Client(follow_redirects=False) as other:
        again = other.get(url)
        assert again.status_code == 400
        assert "has been used or has expired" in again.text
        assert "set-cookie" not in again.headers


def test_an_expired_sign_in_link_is_refused(server, monkeypatch):
    monkeypatch.setattr(sessions, "SIGNIN_TOKEN_LIFETIME", timedelta(seconds=-1))
    response = httpx.get(server.dashboard_url, follow_redirects=False)
    assert response.status_code == 400
    assert "set-cookie" not in response.headers


def test_dashboard_url_needs_webhooks():
    with SimpleServer() as plain:
        with pytest.raises(RuntimeError, match="enable_webhooks=True"):
            plain.dashboard_url  # noqa: B018
        assert httpx.get(f"{plain.base_url}/ui/").status_code == 404
        assert "Dashboard" not in plain._repr_html_()


def test_the_jupyter_repr_links_the_dashboard(server):
    html = server._repr_html_()
    assert f"href='{server.base_url}/ui/?token=" in html
    assert server.api_key not in html.split("Dashboard", 1)[1]


# ---- scopes and CSRF --------------------------------------------------------------------


def test_a_read_only_key_sees_but_cannot_act_and_is_told_why(server, hook_id):
    with sign_in(server, READER["key"]) as client:
        page = client.get(f"/ui/webhooks/{hook_id}")
        assert page.status_code == 200
        assert "not\n<code>write:webhooks</code>" in page.text
        assert f'action="/ui/webhooks/{hook_id}/ping"' not in page.text
        for action in ("ping", "disable"):
            response = client.post(f"/ui/webhooks/{hook_id}/{action}", data={"csrf": csrf_of(page)})
            assert response.status_code == 403
            assert "lacks the &#39;write:webhooks&#39; scope" in response.text
    with from_uri(server.uri) as admin:
        assert admin.webhooks.get(hook_id).active
        assert len(admin.webhooks.history(hook_id)) == 1  # no ping was queued


def test_a_key_without_read_metadata_sees_no_payload_or_path(server, receiver):
    """The API's rule on the pages too: a delivery's payload carries node metadata and
    the node's path, so a key with read:webhooks alone sees neither."""
    with from_uri(server.uri) as client:
        hook = client.webhooks.register(receiver.url)
        client.create_container("private_run", metadata={"token": "CONFIDENTIAL"})
    server.drain()
    with from_uri(server.uri) as client:
        (record,) = client.webhooks.history(hook.id)
    with sign_in(server, READER["key"]) as client:
        pages = [
            client.get(f"/ui/webhooks/{hook.id}").text,
            client.get(f"/ui/live/webhooks/{hook.id}").json()["html"],
            client.get(f"/ui/deliveries/{record.id}").text,
            client.get(f"/ui/live/deliveries/{record.id}").json()["html"],
        ]
    for text in pages:
        assert "CONFIDENTIAL" not in text and "private_run" not in text
        assert "withheld" in text
    assert "read:metadata" in pages[2]
    with sign_in(server, server.api_key) as client:
        assert "CONFIDENTIAL" in client.get(f"/ui/deliveries/{record.id}").text


def test_a_key_without_read_webhooks_is_told_plainly(server, hook_id):
    with sign_in(server, METADATA_ONLY["key"]) as client:
        for path in ("/ui/", f"/ui/webhooks/{hook_id}"):
            response = client.get(path)
            assert response.status_code == 403
            assert "lacks the &#39;read:webhooks&#39; scope" in response.text
            assert "/webhook" not in response.text.split("<main>", 1)[1]


def test_actions_need_the_csrf_token(server, hook_id):
    with sign_in(server, server.api_key) as client:
        page = client.get(f"/ui/webhooks/{hook_id}")
        for data in ({}, {"csrf": ""}, {"csrf": "f" * 64}):
            response = client.post(f"/ui/webhooks/{hook_id}/disable", data=data)
            assert response.status_code == 403
            assert "CSRF token" in response.text
        assert client.post(f"/ui/webhooks/{hook_id}/ping", data={}).status_code == 403
    with from_uri(server.uri) as admin:
        assert admin.webhooks.get(hook_id).active
        assert len(admin.webhooks.history(hook_id)) == 1
    # The token of one session does not work in another.
    with sign_in(server, server.api_key) as other:
        response = other.post(f"/ui/webhooks/{hook_id}/disable", data={"csrf": csrf_of(page)})
        assert response.status_code == 403


# ---- actions ----------------------------------------------------------------------------


def test_ping_disable_enable_and_redeliver_are_answered_on_the_page(server, hook_id, receiver):
    with sign_in(server, server.api_key) as client:
        csrf = csrf_of(client.get(f"/ui/webhooks/{hook_id}"))
        ping = client.post(f"/ui/webhooks/{hook_id}/ping", data={"csrf": csrf})
        assert ping.status_code == 303
        after = client.get(ping.headers["location"])
        assert "Ping queued as" in after.text
        receiver.wait_for(1, timeout=5, event_type="ping")

        disabled = client.get(
            client.post(f"/ui/webhooks/{hook_id}/disable", data={"csrf": csrf}).headers["location"]
        )
        assert "Webhook disabled" in disabled.text and "disabled by PATCH" in disabled.text
        refused = client.post(f"/ui/webhooks/{hook_id}/ping", data={"csrf": csrf})
        assert refused.status_code == 409
        assert "enable it with PATCH before pinging" in refused.text
        with from_uri(server.uri) as admin:
            first = admin.webhooks.history(hook_id)[-1]
        not_now = client.post(f"/ui/deliveries/{first.id}/redeliver", data={"csrf": csrf})
        assert not_now.status_code == 409
        assert "before redelivering" in not_now.text and first.event_id in not_now.text

        enabled = client.get(
            client.post(f"/ui/webhooks/{hook_id}/enable", data={"csrf": csrf}).headers["location"]
        )
        assert "Webhook enabled" in enabled.text

        redo = client.post(f"/ui/deliveries/{first.id}/redeliver", data={"csrf": csrf})
        assert redo.status_code == 303
        new_page = client.get(redo.headers["location"])
        assert "Redelivery queued" in new_page.text
        assert first.event_id in new_page.text
    server.drain()
    assert [d.event_id for d in receiver.deliveries].count(first.event_id) == 2


# ---- pages ------------------------------------------------------------------------------


def test_deliveries_are_paged_and_filtered(server, receiver):
    with from_uri(server.uri) as client:
        hook = client.webhooks.register(receiver.url)
        for i in range(27):
            client.create_container(f"c{i}")
        server.drain()
        receiver.gone()  # answers 410 from now on: the next delivery fails, the hook stops
        client.create_container("last")
    server.drain()
    with sign_in(server, server.api_key) as browser_:
        first = browser_.get(f"/ui/webhooks/{hook.id}")
        rows = re.findall(r'<tr>\s*<td><a href="/ui/deliveries/(\d+)">', first.text)
        assert len(rows) == 25 and rows == sorted(rows, key=int, reverse=True)
        older = re.search(r'<a href="\?([^"]+)" rel="next">', first.text)
        assert older
        second = browser_.get(f"/ui/webhooks/{hook.id}?{older.group(1).replace('&amp;', '&')}")
        rest = re.findall(r'<tr>\s*<td><a href="/ui/deliveries/(\d+)">', second.text)
        assert len(rest) == 3 and set(rest).isdisjoint(rows)
        assert "data-live-url" not in second.text  # only the newest page is live

        failed = browser_.get(f"/ui/webhooks/{hook.id}", params={"outcome": "failed"})
        assert len(re.findall(r'<span class="badge failed">failed</span>', failed.text)) == 1
        pings = browser_.get(f"/ui/webhooks/{hook.id}", params={"event_type": "ping"})
        assert "No deliveries match these filters." in pings.text
        bad = browser_.get(f"/ui/webhooks/{hook.id}", params={"outcome": "lost"})
        assert bad.status_code == 400 and "outcome must be one of" in bad.text
        home = browser_.get("/ui/")
        assert "disabled" in home.text and "gone" in home.text.lower()


def test_a_delivery_page_shows_payload_attempts_and_timeline(server, receiver):
    with from_uri(server.uri) as client:
        client.webhooks.register(receiver.url)
        receiver.fail_next(2, status=503)
        client.create_container("run1", metadata={"sample": "Si"})
    server.drain()
    with from_uri(server.uri) as client:
        (record,) = client.webhooks.history(client.webhooks.list_all()[0].id)
    with sign_in(server, server.api_key) as browser_:
        page = browser_.get(f"/ui/deliveries/{record.id}").text
        live = browser_.get(f"/ui/live/deliveries/{record.id}").json()
    assert record.event_id in page
    assert "&#34;sample&#34;: &#34;Si&#34;" in page  # the payload, formatted and escaped
    assert page.count("HTTP 503") >= 2 and "HTTP 200" in page
    assert page.count('class="step wait"') == 2  # two waits between three attempts
    assert live["settled"] is True and "HTTP 200" in live["html"]


def test_what_the_pages_show_is_escaped(server, receiver):
    with from_uri(server.uri) as client:
        node = client.create_container(PROBE, metadata={"note": PROBE})
        hook = client.webhooks.register(receiver.url, path=[PROBE])
        node.update_metadata(metadata={"note": PROBE, "again": True})
    server.drain()
    with from_uri(server.uri) as client:
        (record,) = client.webhooks.history(hook.id)
    with sign_in(server, server.api_key) as browser_:
        for path in ("/ui/", f"/ui/webhooks/{hook.id}", f"/ui/deliveries/{record.id}"):
            response = browser_.get(path)
            assert response.status_code == 200
            assert "<img" not in response.text, path
            assert "&lt;img src=x onerror=alert(1)&gt;" in response.text, path
        live = browser_.get(f"/ui/live/webhooks/{hook.id}").json()["html"]
        assert "<img" not in live and "&lt;img" in live


def test_pages_carry_security_headers(server):
    with browser(server) as client:
        for path in ("/ui/signin", "/ui/"):
            headers = client.get(path).headers
            assert "script-src 'self'" in headers["content-security-policy"]
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "same-origin"
        assert client.get("/ui/static/dashboard.js").status_code == 200


def test_an_unknown_webhook_or_delivery_is_a_404_page(server):
    with sign_in(server, server.api_key) as client:
        for path in ("/ui/webhooks/999", "/ui/deliveries/999"):
            response = client.get(path)
            assert response.status_code == 404
            assert "text/html" in response.headers["content-type"]
        assert client.get("/ui/webhooks/abc").status_code == 422
        assert client.get("/ui/live/webhooks/999").json()["detail"].startswith("no webhook")


# ---- several processes ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
def test_every_process_of_serve_knows_the_session(tmp_path, pg_url):
    from processes import ServeProcess, write_config

    config = write_config(
        tmp_path / "config.yml", database=pg_url, directory=tmp_path / "data", api_key="k" * 16
    )
    with ServeProcess(config, args=("--processes", "2")) as server:  # stopped on any error
        server.wait_ready(timeout=120)
        # Generous bounds: the second process may still be starting on a busy machine.
        signin = httpx.post(
            f"{server.base_url}/ui/signin",
            data={"api_key": "k" * 16},
            follow_redirects=False,
            timeout=30,
        )
        assert signin.status_code == 303
        name = f"hookbook_session_{server.port}"
        cookies = {name: signin.cookies[name]}
        for _ in range(30):  # a new connection each: the processes take turns accepting
            response = httpx.get(
                f"{server.base_url}/ui/",
                cookies=cookies,
                headers={"Connection": "close"},
                timeout=30,
            )
            assert response.status_code == 200
        assert server.stop() == 0
