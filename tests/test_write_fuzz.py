"""Random JSON through every write route, lone surrogates and deep nesting included.

Whatever a key sends, the answer is never a 5xx, and afterwards the listing, the
node, the webhook history and the delivered events all still read. Examples are
derandomized (the same every run) and bounded to a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver
from readers import check_readers

# Text of every kind: mostly valid, sometimes any code point at all (lone surrogates
# and control characters included), sometimes a known troublemaker.
text = st.one_of(
    *[st.text(max_size=12)] * 8,
    st.text(st.characters(exclude_categories=()), max_size=6),
    st.sampled_from(
        ["\ud800", "\udfff", "a\udc00b", "\ud83d\ude00", "", ".", "..", "a/b", "\x00", "_x"]
    ),
)
# Keys: mostly usable ones, so that writes succeed and are then read back.
keys = st.one_of(*[st.text("abcxyz0123-_", min_size=1, max_size=8)] * 3, text)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([float("nan"), float("inf")])
    | text
)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


shallow = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
# Deep nesting now and then: around the metadata limit (100), and far past it.
json_values = st.one_of(shallow, shallow, shallow, st.integers(90, 450).map(nested))
metadata = st.one_of(*[st.dictionaries(text, json_values, max_size=4)] * 3, json_values)
specs = st.lists(text | st.fixed_dictionaries({"name": text}), max_size=3) | json_values
pointers = st.lists(text | st.sampled_from(["a", "0", "-", "token"]), max_size=3).map(
    lambda parts: "".join("/" + p for p in parts)
)
patch_ops = st.lists(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]) | text,
            "path": pointers,
        },
        optional={"value": json_values, "from": pointers},
    ),
    max_size=5,
)
urls = text.map(lambda t: f"http://127.0.0.1:9/{t}") | text


def structure(family: str) -> st.SearchStrategy[Any]:
    if family == "array":
        valid = st.fixed_dictionaries(
            {
                "data_type": st.just({"endianness": "little", "kind": "f", "itemsize": 8}),
                "chunks": st.just([[2]]),
                "shape": st.just([2]),
            },
            optional={"dims": st.lists(text, min_size=1, max_size=1) | json_values},
        )
    else:
        valid = st.fixed_dictionaries(
            {
                "arrow_schema": st.just("data:application/vnd.apache.arrow.file;base64,"),
                "columns": st.lists(text, max_size=3) | json_values,
            }
        )
    return valid | st.dictionaries(text, json_values, max_size=4) | json_values


@st.composite
def requests(draw: st.DrawFn, hook_id: int) -> tuple[str, str, Any]:
    """(method, route, JSON body) for one of the write routes."""
    kind = draw(
        st.sampled_from(
            [
                "create",
                "create-data",
                "put",
                "json-patch",
                "merge-patch",
                "register",
                "change",
                "any",
            ]
        )
    )
    if kind == "create":
        body = {"id": draw(keys), "structure_family": "container", "metadata": draw(metadata)}
        body["specs"] = draw(specs)
        return "POST", draw(st.sampled_from(["/api/v1/metadata/", "/api/v1/metadata/c"])), body
    if kind == "create-data":
        family = draw(st.sampled_from(["array", "table"]))
        source = {"structure_family": family, "structure": draw(structure(family))}
        body = {"id": draw(keys), "structure_family": family, "data_sources": [source]}
        return "POST", "/api/v1/metadata/c", body
    if kind == "put":
        return "PUT", "/api/v1/metadata/c", {"metadata": draw(metadata), "specs": draw(specs)}
    if kind == "json-patch":
        body = {"content-type": "application/json-patch+json", "metadata": draw(patch_ops)}
        return "PATCH", "/api/v1/metadata/c", body
    if kind == "merge-patch":
        body = {"content-type": "application/merge-patch+json", "metadata": draw(metadata)}
        return "PATCH", "/api/v1/metadata/c", body
    fields = st.fixed_dictionaries(
        {}, optional={"url": urls, "secret": text, "events": json_values, "active": json_values}
    )
    if kind == "register":
        return "POST", "/api/v1/webhooks/target/c", {"url": draw(urls), **draw(fields)}
    if kind == "change":
        return "PATCH", f"/api/v1/webhooks/{hook_id}", draw(fields)
    route = draw(
        st.sampled_from(
            ["/api/v1/metadata/c", "/api/v1/webhooks/target/", f"/api/v1/webhooks/{hook_id}"]
        )
    )
    return draw(st.sampled_from(["POST", "PUT", "PATCH"])), route, draw(json_values)


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[SimpleServer, WebhookReceiver, int, httpx.Client]]:
    with (
        WebhookReceiver() as receiver,
        SimpleServer(webhooks={"retry_schedule": [0.01]}) as server,
        from_uri(server.uri) as client,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Apikey {server.api_key}"}
        ) as api,
    ):
        hook = client.webhooks.register(receiver.url)
        client.create_container("c", metadata={"token": "t"}).write_array(np.arange(2), key="a")
        yield server, receiver, hook.id, api


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_json_through_every_write_route(target, data):
    _, receiver, hook_id, api = target
    method, route, body = data.draw(requests(hook_id))
    response = api.request(method, route, content=json.dumps(body))
    assert response.status_code < 500, (method, route, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    # The readers the probe broke: the listing, the node, the history, the events.
    for read in ("/api/v1/search/", "/api/v1/search/c", "/api/v1/metadata/c"):
        assert api.get(read).status_code == 200, read
    if response.is_success and method == "POST" and "/metadata/" in route:
        parent = route.removeprefix("/api/v1/metadata/")
        key = response.json()["id"]
        node = api.get(f"/api/v1/metadata/{parent}/{quote(key, safe='')}")
        assert node.status_code == 200, node.text
    history = api.get(f"/api/v1/webhooks/history/{hook_id}", params={"limit": 1})
    assert history.status_code == 200, history.text
    for record in history.json():
        assert api.get(f"/api/v1/webhooks/deliveries/{record['id']}").status_code == 200
    for delivery in receiver.deliveries:
        json.loads(delivery.body)


def test_everything_still_reads_after_the_random_writes(target):
    server, receiver, _, _ = target
    server.drain()
    assert check_readers(server, receiver) >= 2
