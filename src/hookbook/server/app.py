"""``create_app(settings)``: a fresh FastAPI app per call, no import-time state."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from .._version import __version__
from ..config import Settings
from .errors import install_error_handlers
from .services import Seams, Services

logger = logging.getLogger(__name__)


def create_app(settings: Settings, *, seams: Seams | None = None) -> FastAPI:
    """Build the server for ``settings``.

    The database, the store and the delivery worker are created in the app's
    lifespan and hang off ``app.state.services``. If start-up fails, the error
    is kept in ``app.state.startup_error`` (the in-process harness re-raises it)
    and raised.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            app.state.services = await Services.start(settings, seams)
        except BaseException as exc:
            app.state.startup_error = exc
            raise
        try:
            yield
        finally:
            await app.state.services.stop()

    app = FastAPI(
        title="hookbook",
        version=__version__,
        description="A data catalog that delivers its events as signed webhooks "
        "(Tiled-compatible HTTP API).",
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.startup_error = None
    install_error_handlers(app)

    from .routes import catalog, operations, unsupported

    app.include_router(catalog.router)
    app.include_router(operations.router)
    if settings.webhooks is not None:
        from ..webhooks.service import check_settings
        from .routes import webhooks

        check_settings(settings.webhooks)  # a bad setting stops here, before start-up
        app.include_router(webhooks.router)
        from .ui import mount_dashboard

        mount_dashboard(app)  # the dashboard at /ui/ goes with the webhook routes
    app.include_router(unsupported.router)
    app.openapi = lambda: _openapi_with_bodies(app)  # type: ignore[method-assign]  # FastAPI's way
    return app


def _openapi_with_bodies(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the models of the bodies routes read themselves
    (:mod:`.bodies`), so the ``$ref`` of each such request body resolves."""
    if app.openapi_schema is None:
        from .bodies import DOCUMENTED_BODIES

        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in DOCUMENTED_BODIES.items():
            if f'"#/components/schemas/{name}"' in json.dumps(schema["paths"]):
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body.pop("$defs", {}))
                components[name] = body
        app.openapi_schema = schema
    return app.openapi_schema


#: The environment variable ``app_from_environment`` reads (set by ``hookbook serve``).
CONFIG_ENV = "HOOKBOOK_CONFIG"


def app_from_environment() -> FastAPI:
    """An app factory for uvicorn's worker processes: the config file named in
    ``$HOOKBOOK_CONFIG`` (``hookbook serve --processes N`` sets it)."""
    import os

    from ..config import load_config

    if not logging.getLogger().handlers:  # a spawned worker process: log somewhere
        logging.basicConfig(
            level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    return create_app(load_config(os.environ[CONFIG_ENV]))
