"""Bad input to the webhook routes: each a 4xx JSON error naming the problem, never a
500, and nothing written.

One server serves the module: every request here is refused, and each test
checks that the registry is exactly as it was.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hookbook.server import SimpleServer

RECEIVER = "http://127.0.0.1:9/hook"  # never called: nothing here is accepted


class Api:
    def __init__(self, server: SimpleServer, hook: dict[str, Any]) -> None:
        self.server = server
        self.hook = hook
        self.http = httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Apikey {server.api_key}"},
            trust_env=False,
            timeout=10,
        )

    def raw(self, method: str, target: str, body: bytes | None = None) -> tuple[int, Any]:
        """Send ``target`` exactly as written (httpx would normalise ``..`` away)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            headers = {"Authorization": f"Apikey {self.server.api_key}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def registry(self) -> list[dict[str, Any]]:
        return self.http.get("/api/v1/webhooks/").json()


@pytest.fixture(scope="module")
def api() -> Iterator[Api]:
    with SimpleServer(enable_webhooks=True) as server:
        with httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Apikey {server.api_key}"}
        ) as setup:
            setup.post("/api/v1/metadata/", json=_container("a")).raise_for_status()
            hook = setup.post("/api/v1/webhooks/target/a", json={"url": RECEIVER})
            hook.raise_for_status()
        client = Api(server, hook.json())
        try:
            yield client
        finally:
            client.http.close()


def _container(key: str) -> dict[str, Any]:
    return {
        "id": key,
        "structure_family": "container",
        "metadata": {},
        "specs": [],
        "data_sources": [],
    }


@pytest.fixture(autouse=True)
def nothing_written(request):
    """After each test, the registry holds only the webhook the module set up."""
    yield
    if "api" in request.fixturenames:
        api = request.getfixturevalue("api")
        assert [w["id"] for w in api.registry()] == [api.hook["id"]]
        assert api.registry()[0] == api.http.get(f"/api/v1/webhooks/{api.hook['id']}").json()


def assert_error(response: httpx.Response | tuple[int, Any], status: int, *words: str) -> dict:
    if isinstance(response, tuple):
        code, body = response
    else:
        code = response.status_code
        assert response.headers["content-type"].startswith("application/json"), response.text
        body = response.json()
    assert code == status, body
    assert isinstance(body, dict) and "detail" in body and "error" in body, body
    text = json.dumps(body["detail"])
    for word in words:
        assert word in text, (word, text)
    return body


# --------------------------------------------------------------------------- #
# The registration body
# --------------------------------------------------------------------------- #


def test_missing_url(api):
    body = assert_error(api.http.post("/api/v1/webhooks/target/", json={}), 422, "url")
    assert body["error"] == "RequestValidationError"
    assert body["detail"][0]["loc"] == ["body", "url"]


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "http://",
        "http:///path",
        "https://exa mple.com/",
        "//no-scheme.example.com/",
        "hooks.example.com/path",
        "http://host:0/",
        "http://host:99999/",
        "http://bad_host!.example.com/",
        "http://\x00.example.com/",
        "",
    ],
)
def test_malformed_url(api, url):
    body = assert_error(api.http.post("/api/v1/webhooks/target/", json={"url": url}), 422, "URL")
    assert body["error"] == "InvalidURLError"


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "javascript:alert(1)", "gopher://h/", "ws://h/"],
)
def test_scheme_other_than_http(api, url):
    body = assert_error(api.http.post("/api/v1/webhooks/target/", json={"url": url}), 422, "scheme")
    assert body["error"] == "InvalidURLError"


@pytest.mark.parametrize("length", [2049, 8000])
def test_url_over_the_length_cap(api, length):
    url = "http://127.0.0.1:9/" + "a" * (length - len("http://127.0.0.1:9/"))
    assert len(url) == length
    response = api.http.post("/api/v1/webhooks/target/", json={"url": url})
    body = assert_error(response, 422, "2048")
    assert len(response.text) < 1000  # the URL is not echoed back
    assert body["error"] == "InvalidURLError"


def test_a_body_over_the_webhook_body_cap_is_413(api):
    url = "http://127.0.0.1:9/" + "a" * 100_000
    for response in (
        api.http.post("/api/v1/webhooks/target/", json={"url": url}),
        api.http.patch(f"/api/v1/webhooks/{api.hook['id']}", json={"url": url}),
    ):
        body = assert_error(response, 413, "the limit is 8192")
        assert body["error"] == "PayloadTooLargeError"
        assert len(response.text) < 1000


@pytest.mark.parametrize("url", [123, None, ["http://h/"], {"u": 1}])
def test_url_of_the_wrong_type(api, url):
    assert_error(api.http.post("/api/v1/webhooks/target/", json={"url": url}), 422, "url")


def test_unknown_event_name(api):
    response = api.http.post(
        "/api/v1/webhooks/target/", json={"url": RECEIVER, "events": ["container-child-eaten"]}
    )
    assert_error(response, 422, "events", "container-child-created")


def test_ping_is_not_an_event_to_subscribe_to(api):
    response = api.http.post("/api/v1/webhooks/target/", json={"url": RECEIVER, "events": ["ping"]})
    assert_error(response, 422, "events")


def test_duplicate_event_names(api):
    response = api.http.post(
        "/api/v1/webhooks/target/",
        json={"url": RECEIVER, "events": ["stream-closed", "stream-closed"]},
    )
    assert_error(response, 422, "stream-closed more than once")


@pytest.mark.parametrize("events", ["stream-closed", 1, {"stream-closed": True}])
def test_events_of_the_wrong_type(api, events):
    response = api.http.post("/api/v1/webhooks/target/", json={"url": RECEIVER, "events": events})
    assert_error(response, 422, "events")


@pytest.mark.parametrize(("secret", "word"), [("", "secret"), ("s" * 513, "512"), (42, "secret")])
def test_bad_secret(api, secret, word):
    response = api.http.post("/api/v1/webhooks/target/", json={"url": RECEIVER, "secret": secret})
    assert_error(response, 422, word)


def test_unknown_fields(api):
    response = api.http.post(
        "/api/v1/webhooks/target/", json={"url": RECEIVER, "secrets": "typo", "active": False}
    )
    body = assert_error(response, 422, "secrets", "active")
    assert {tuple(p["loc"]) for p in body["detail"]} == {("body", "secrets"), ("body", "active")}


@pytest.mark.parametrize(
    "content", [b"{not json", b'{"url": "http://h/"', b"", b"[]", b'"http://h/"', b"null"]
)
def test_malformed_json(api, content):
    response = api.http.post(
        "/api/v1/webhooks/target/", content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422)


def test_body_that_is_not_utf8(api):
    response = api.http.post(
        "/api/v1/webhooks/target/",
        content=b"\xff\xfe",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"]


# --------------------------------------------------------------------------- #
# Node paths
# --------------------------------------------------------------------------- #


def test_node_that_does_not_exist(api):
    response = api.http.post("/api/v1/webhooks/target/no/such/node", json={"url": RECEIVER})
    body = assert_error(response, 404, "no/such/node")
    assert body["error"] == "NotFoundError"
    assert_error(api.http.get("/api/v1/webhooks/target/nope"), 404, "nope")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/webhooks/target/a/../a",
        "/api/v1/webhooks/target/..",
        "/api/v1/webhooks/target/../a",
        "/api/v1/webhooks/target/a/..",
        "/api/v1/webhooks/target/%2e%2e/a",
        "/api/v1/webhooks/target/a/%2E%2E",
        "/api/v1/webhooks/target/a/./a",
    ],
)
def test_path_with_dot_segments_sent_literally(api, path):
    body = json.dumps({"url": RECEIVER + "/dots"}).encode()
    status, answer = api.raw("POST", path, body)
    assert_error((status, answer), 422)
    assert answer["error"] == "InvalidPathError"
    assert ".." in answer["detail"] or "'.'" in answer["detail"]
    status, answer = api.raw("GET", path)
    assert_error((status, answer), 422)


# --------------------------------------------------------------------------- #
# Ids and query parameters
# --------------------------------------------------------------------------- #

ID_ROUTES = [
    ("GET", "/api/v1/webhooks/{}"),
    ("PATCH", "/api/v1/webhooks/{}"),
    ("DELETE", "/api/v1/webhooks/{}"),
    ("GET", "/api/v1/webhooks/history/{}"),
    ("POST", "/api/v1/webhooks/{}/ping"),
    ("GET", "/api/v1/webhooks/deliveries/{}"),
    ("POST", "/api/v1/webhooks/deliveries/{}/redeliver"),
]


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
@pytest.mark.parametrize("bad", ["abc", "1.5", "1e3", "0x10", "99999999999999999999", "0", "-1"])
def test_non_integer_or_impossible_ids(api, method, route, bad):
    response = api.http.request(method, route.format(bad), json={"active": True})
    assert_error(response, 422)


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
def test_unknown_ids(api, method, route):
    response = api.http.request(method, route.format(424242), json={"active": True})
    body = assert_error(response, 404, "424242")
    assert body["error"] == "NotFoundError"


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "1.5", "99999999999999999999"])
def test_history_limit_outside_1_to_500(api, limit):
    response = api.http.get(f"/api/v1/webhooks/history/{api.hook['id']}", params={"limit": limit})
    assert_error(response, 422, "limit")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("before", "0"),
        ("before", "x"),
        ("before", "99999999999999999999"),
        ("outcome", "lost"),
        ("event_type", "container-child-eaten"),
    ],
)
def test_history_bad_filters(api, name, value):
    response = api.http.get(f"/api/v1/webhooks/history/{api.hook['id']}", params={name: value})
    assert_error(response, 422, name)


def test_history_limit_bounds_are_accepted(api):
    for limit in ("1", "500"):
        response = api.http.get(
            f"/api/v1/webhooks/history/{api.hook['id']}", params={"limit": limit}
        )
        assert response.status_code == 200
        assert response.json() == []


# --------------------------------------------------------------------------- #
# PATCH
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"url": None}, "url"),
        ({"active": None}, "active"),
        ({"active": "sometimes"}, "active"),
        ({"url": "ftp://x/"}, "scheme"),
        ({"url": "http://u:pw@127.0.0.1:9/"}, "password"),
        ({"events": ["nope"]}, "events"),
        ({"events": ["stream-closed", "stream-closed"]}, "more than once"),
        ({"colour": "blue"}, "colour"),
        ({"secret": ""}, "secret"),
        ({"secret": "s" * 513}, "512"),
        ({"url": "http://127.0.0.1:9/" + "a" * 3000}, "2048"),
    ],
)
def test_bad_patch(api, body, word):
    response = api.http.patch(f"/api/v1/webhooks/{api.hook['id']}", json=body)
    assert_error(response, 422, word)


def test_patch_malformed_json(api):
    response = api.http.patch(
        f"/api/v1/webhooks/{api.hook['id']}",
        content=b"{",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 422)
