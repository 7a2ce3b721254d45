"""The server's dashboard at ``/ui/``, mounted with the webhook routes.

Pages (server-rendered with Jinja2, their CSS and JS shipped in ``static/``):

- ``/ui/``: the webhooks; ``/ui/?token=T`` signs in once with a token from
  ``SimpleServer.dashboard_url``;
- ``/ui/signin`` (a form taking an API key) and ``/ui/signout``;
- ``/ui/webhooks/{id}``: a webhook and its deliveries (filtered, paged, live);
- ``/ui/deliveries/{id}``: a delivery, its payload and every attempt;
- ``/ui/live/...``: the fragments those pages poll for updates.

Sign-in, sessions and CSRF: :mod:`.auth` and :mod:`.sessions`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount_dashboard(app: FastAPI) -> None:
    from .routes import router

    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
