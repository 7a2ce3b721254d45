"""Debian's chromium, driven by Playwright (never Playwright's own browser download).

The browser is found through ``HOOKBOOK_CHROMIUM``, else ``chromium`` on PATH
(``apt-get install -y --no-install-recommends chromium``), and launched by
that path. Playwright gives every launch a fresh, temporary user data directory,
and every test its own browser context (its own cookies).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

#: Headless, and nothing that reaches the network on its own.
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

INSTALL_HINT = (
    "install Debian's chromium (apt-get update && apt-get install -y "
    "--no-install-recommends chromium) or set HOOKBOOK_CHROMIUM to a Chromium executable"
)


def find_chromium() -> str | None:
    """The Chromium executable to drive, or None."""
    configured = os.environ.get("HOOKBOOK_CHROMIUM")
    if configured:
        return configured if os.path.exists(configured) else None
    return shutil.which("chromium")


def launch(playwright: Any, executable: str) -> Any:
    return playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS, headless=True)
