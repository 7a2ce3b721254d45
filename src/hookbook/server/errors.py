"""The one place where errors become HTTP responses.

Routes and the store raise :mod:`hookbook.errors` classes; each carries its
status code, and this handler writes ``{"detail": ..., "error": ClassName}``,
the shape Tiled's client reads (``detail``) plus the class name hookbook's
client uses to raise the same exception again.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..errors import HookbookError

logger = logging.getLogger(__name__)


async def _hookbook_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HookbookError)
    headers = {"WWW-Authenticate": "Apikey"} if exc.status_code == 401 else None
    return JSONResponse(exc.to_json(), status_code=exc.status_code, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        problems.append(
            {
                "loc": list(err.get("loc", ())),
                "msg": str(err.get("msg", "")),
                "type": err.get("type"),
            }
        )
    return JSONResponse({"detail": problems, "error": "RequestValidationError"}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": exc.detail, "error": "HTTPException"},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Not the caller's mistake and not a bug: the database refused or dropped the
    # connection (too many clients, a restart). 503 says "try again"; nothing was
    # written, since the transaction did not commit. A constraint violation that
    # reaches here is a bug, not an outage.
    if isinstance(exc, IntegrityError):
        return await _unexpected(request, exc)
    logger.warning("database error on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {
            "detail": "the database is unavailable right now; nothing was written, "
            "try again shortly",
            "error": "HookbookError",
        },
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    # The client hung up before its body arrived: nobody will read an answer, and it
    # is not the server's fault. Nothing was written (the body was never complete).
    logger.debug("client disconnected during %s %s", request.method, request.url.path)
    return JSONResponse(
        {"detail": "the client disconnected before the body arrived", "error": "ClientInputError"},
        status_code=400,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        {
            "detail": "internal server error; the server log has the traceback",
            "error": "HookbookError",
        },
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HookbookError, _hookbook_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
