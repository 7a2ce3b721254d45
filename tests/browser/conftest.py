"""Fixtures of the browser tests: a Chromium, a fresh context and page per test.

Without Chromium (or Playwright) the tests skip, saying why; under ``CI=true``
that is a failure instead, as for PostgreSQL. Every page fails its test if it
opens a dialog (``alert``, ``confirm``: the pages use none, and the XSS probe
would open one) or raises a JavaScript error. Screenshots go to
``build/screenshots/`` (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from conftest import unavailable as _unavailable

from .chromium import INSTALL_HINT, find_chromium, launch

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"


def unavailable(reason: str) -> NoReturn:
    _unavailable(reason, needed_by="the browser tests")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. Not per session: while Playwright's sync API is
    open, ``asyncio.run`` fails in this thread, and other modules' tests call it."""
    executable = find_chromium()
    if executable is None:
        unavailable(f"Chromium not found: {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: pip install 'hookbook[browser]'")
    with sync_playwright() as playwright:
        chromium = launch(playwright, executable)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A new browser context (its own cookies), 1280 x 800."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


class PageProblems:
    """Dialogs and script errors seen by a test's pages."""

    def __init__(self) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def watch(self, page: Any) -> Any:
        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page


@pytest.fixture
def problems(context: Any) -> Iterator[PageProblems]:
    """Every page of ``context`` is watched; any dialog or script error fails the test."""
    seen = PageProblems()
    context.on("page", seen.watch)
    yield seen
    assert seen.dialogs == [], f"a page opened a dialog: {seen.dialogs}"
    assert seen.errors == [], f"a page raised a script error: {seen.errors}"


@pytest.fixture
def page(context: Any, problems: PageProblems) -> Any:
    return context.new_page()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Any:
    """``screenshot(page, "name")`` saves build/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def expect(browser: Any) -> Any:
    """Playwright's ``expect`` (waiting assertions); needs the browser, so it skips with it."""
    from playwright.sync_api import expect

    expect.set_options(timeout=5_000)  # the bound for a live update
    return expect
