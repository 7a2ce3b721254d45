"""Regenerate the screenshots the docs and the README show: ``nox -s screenshots``.

Runs a small scene (a server and a receiver on loopback, a retried delivery, a
ping) and saves, at 1280 x 800, ``docs/_static/screenshots/dashboard.png`` (a
webhook's deliveries) and ``inspector.png`` (the receiver's inspector, one
delivery open). Run it as ``python -m browser.screenshots`` with ``tests`` on
``sys.path`` (the nox session does).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from hookbook.client import from_uri
from hookbook.server import SimpleServer
from hookbook.testing import WebhookReceiver

from .chromium import INSTALL_HINT, find_chromium, launch

OUT = Path(__file__).resolve().parents[2] / "docs" / "_static" / "screenshots"
SECRET = "correct-horse-battery-staple"


def main() -> int:
    executable = find_chromium()
    if executable is None:
        print(f"Chromium not found: {INSTALL_HINT}", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        WebhookReceiver(secret=SECRET) as receiver,
        SimpleServer(enable_webhooks=True, webhooks={"retry_schedule": [0.2, 0.5]}) as server,
        from_uri(server.uri) as client,
        sync_playwright() as playwright,
    ):
        hook = client.webhooks.register(receiver.url, secret=SECRET)
        client.webhooks.register(receiver.url_for("/runs-closed"), events=["stream-closed"])
        receiver.fail_next(2, status=503)
        run = client.create_container("run1", metadata={"sample": "silicon"})
        temperature = run.write_array(np.array([20.5, 21.0, 21.7]), key="temperature")
        temperature.append([22.4])
        temperature.close_stream()
        run.update_metadata(metadata={"sample": "silicon", "status": "done"})
        server.drain()
        client.webhooks.ping(hook.id)
        server.drain()

        browser = launch(playwright, executable)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.dashboard_url)
        page.wait_for_url(f"{server.base_url}/ui/")
        page.goto(f"{server.base_url}/ui/webhooks/{hook.id}")
        page.locator("#deliveries tbody tr").nth(4).wait_for()
        page.screenshot(path=str(OUT / "dashboard.png"))

        page.goto(receiver.inspector_url)
        articles = page.locator("article.delivery")
        articles.nth(len(receiver.deliveries) - 1).wait_for()
        articles.nth(1).locator("summary").click()
        page.screenshot(path=str(OUT / "inspector.png"))
        browser.close()
    for name in ("dashboard.png", "inspector.png"):
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
