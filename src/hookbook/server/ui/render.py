"""HTML rendering: the Jinja2 templates (autoescaped), shared filters, security headers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
from fastapi.responses import HTMLResponse

from ..._version import __version__
from .views import node_path_text, shown_url

#: Every dashboard page: scripts and styles only from this server (no inline code, so
#: an injected tag could not run even if escaping failed), no framing, and no referrer
#: sent to another site ("same-origin": "no-referrer" would make forms send "Origin: null").
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(value: datetime | float | None) -> str:
    """A UTC time to the millisecond, or "-"."""
    if value is None:
        return "-"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, tz=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hookbook.server.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["pretty_json"] = pretty_json
    env.filters["node_path"] = node_path_text
    env.filters["shown_url"] = shown_url
    env.globals["version"] = __version__
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A full page; ``session`` (or None) decides the header's sign-out form.

    The security headers are added to every dashboard answer by ``routes.UiRoute``."""
    context.setdefault("session", None)
    return HTMLResponse(render(template, **context), status_code=status_code)
