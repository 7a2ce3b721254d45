"""The built docs site in Chromium: the index and a tutorial, wide and narrow.

Needs the site (``nox -s docs`` builds it into docs/_build/html; ``nox -s browser``
runs after it). Nothing may overflow sideways: ``scrollWidth <= innerWidth``.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator

import pytest

from .conftest import ROOT, unavailable

SITE = ROOT / "docs" / "_build" / "html"
TUTORIAL = "Webhooks in ten minutes"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    if not (SITE / "index.html").exists():
        unavailable(f"the docs site is not built ({SITE}): run `nox -s docs` first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def overflow(page) -> dict:
    return page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})"
    )


@pytest.mark.parametrize("width", [1280, 390])
def test_index_and_a_tutorial_fit_and_navigate(browser, site, width, expect, screenshot):
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{site}/index.html")
        expect(page.get_by_role("heading", name="hookbook", exact=False).first).to_be_visible()
        sizes = overflow(page)
        assert sizes["scroll"] <= sizes["inner"], f"the index overflows at {width} px: {sizes}"
        screenshot(page, f"index-{width}")

        if width < 960:  # narrow: the site navigation is behind its toggle
            page.get_by_role("button", name="Site navigation").click()
        # The site's navigation (the header, or the panel the toggle opened), not the page.
        page.locator("header a:visible, dialog a:visible", has_text=TUTORIAL).first.click()
        page.wait_for_url("**/tutorials/01-webhooks-in-ten-minutes.html")
        expect(page.get_by_role("heading", level=1, name=TUTORIAL)).to_be_visible()
        sizes = overflow(page)
        assert sizes["scroll"] <= sizes["inner"], f"the tutorial overflows at {width} px: {sizes}"
        expect(page.locator("button.copybtn").first).to_be_attached()  # copy buttons
        screenshot(page, f"tutorial-{width}")
    finally:
        context.close()


def test_the_site_shows_both_screenshots(site, browser, expect):
    page = browser.new_page()
    try:
        page.goto(f"{site}/web-pages.html")
        for name in ("dashboard", "inspector"):
            image = page.locator(f"img[src*='{name}.png']")
            expect(image).to_be_visible()
            assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) > 0
    finally:
        page.close()
