"""Helpers for the hardening tests: what the server holds, and every reader of it.

``snapshot`` takes the rows of every table and the data files; ``check_readers``
reads everything a user can read (each listing page, each node and its data,
each webhook, its history and each delivery, what the receiver got) and fails
on any answer but 200 (and on a delivery the receiver cannot parse).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import sqlalchemy as sa

from hookbook.db import deliveries, event_log, nodes, webhooks
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver

SERVER_FILES = {"hookbook.db", "hookbook.db-wal", "hookbook.db-shm", "hookbook-harness.json"}


def snapshot(server: SimpleServer) -> dict[str, Any]:
    """The rows of the catalog and webhook tables, and the data files."""

    async def fetch() -> dict[str, Any]:
        async with server.app.state.services.db.read() as conn:
            return {
                table.name: [tuple(r) for r in (await conn.execute(sa.select(table))).all()]
                for table in (nodes, event_log, webhooks, deliveries)
            }

    rows = server.run(fetch())
    rows["files"] = sorted(
        str(p.relative_to(server.directory))
        for p in server.directory.rglob("*")
        if p.is_file() and p.name not in SERVER_FILES and not p.name.startswith(".")
    )
    return rows


def _get(api: httpx.Client, url: str, **params: Any) -> httpx.Response:
    response = api.get(url, params=params)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return response


def check_readers(server: SimpleServer, receiver: WebhookReceiver | None = None) -> int:
    """Read everything; returns how many nodes were read."""
    seen = 0
    with httpx.Client(
        base_url=f"{server.base_url}/api/v1",
        headers={"Authorization": f"Apikey {server.api_key}"},
        timeout=30,
    ) as api:
        containers = [""]
        while containers:
            path = containers.pop()
            url: str | None = f"/search/{path}"
            while url:
                page = _get(api, url).json()
                for item in page["data"]:
                    child = "/".join([*item["attributes"]["ancestors"], item["id"]])
                    seen += 1
                    family = item["attributes"]["structure_family"]
                    node = _get(api, f"/metadata/{_quote(child)}").json()["data"]
                    assert node["attributes"]["metadata"] == item["attributes"]["metadata"]
                    if family == "container":
                        containers.append(_quote(child))
                    elif item["attributes"]["structure"] is not None:
                        _read_data(api, family, _quote(child))
                url = page["links"]["next"]
        if server.settings.webhooks is not None:
            for hook in _get(api, "/webhooks/").json():
                _get(api, f"/webhooks/{hook['id']}")
                _get(api, f"/webhooks/target/{_quote(hook['path'])}")
                for record in _get(api, f"/webhooks/history/{hook['id']}", limit=500).json():
                    _get(api, f"/webhooks/deliveries/{record['id']}")
        for route in ("/healthz", "/metrics"):
            response = httpx.get(server.base_url + route, params={"api_key": server.api_key})
            assert response.status_code == 200, (route, response.text)
    for delivery in receiver.deliveries if receiver is not None else ():
        json.loads(delivery.body)
    return seen


def _read_data(api: httpx.Client, family: str, path: str) -> None:
    response = api.get(f"/{'array' if family == 'array' else 'table'}/full/{path}")
    if response.status_code == 409:  # declared, never written: nothing to read yet
        assert "no data has been written" in response.json()["detail"], response.text
    else:
        assert response.status_code == 200, (path, response.status_code, response.text[:500])


def _quote(path: str | list[str]) -> str:
    from urllib.parse import quote

    segments = path.split("/") if isinstance(path, str) else path
    return "/".join(quote(s, safe="") for s in segments if s)
