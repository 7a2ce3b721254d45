"""Who is signed in: the session cookie, its name, the CSRF and Origin checks.

The dashboard takes only its cookie: an ``Authorization`` header or
``?api_key=`` is ignored here, and the API never reads the cookie (its path
is ``/ui/``, and :mod:`hookbook.server.deps` reads only the header and the
query). The cookie's name includes the server's port, because browsers do not
scope cookies by port: two servers on 127.0.0.1 keep separate sessions.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request, Response

from ...errors import ClientInputError, PayloadTooLargeError, PermissionDeniedError
from ..deps import ServicesDep
from ..services import Services
from .sessions import SESSION_LIFETIME, Session, SessionStore

COOKIE_PATH = "/ui/"
#: The largest form body the dashboard reads (a sign-in form with a long key fits).
MAX_FORM_BYTES = 16 * 1024


class SignInRequired(Exception):
    """No live session: pages redirect to the sign-in form, live updates answer 401."""

    def __init__(self, *, ended: bool) -> None:
        super().__init__("sign in first")
        #: A cookie was presented, but its session is over (signed out, expired, key removed).
        self.ended = ended


def cookie_name(request: Request) -> str:
    """``hookbook_session_PORT``, PORT being the port this server listens on."""
    server = request.scope.get("server")
    port = server[1] if server and server[1] else request.url.port
    return f"hookbook_session_{port or 'default'}"


def session_store(services: Services) -> SessionStore:
    return SessionStore(services.db, services.settings.api_keys)


async def find_session(request: Request, services: Services) -> Session:
    """The request's session, or ``SignInRequired``."""
    session_id = request.cookies.get(cookie_name(request))
    session = await session_store(services).find(session_id) if session_id else None
    if session is None:
        raise SignInRequired(ended=session_id is not None)
    return session


async def current_session(request: Request, services: ServicesDep) -> Session:
    return await find_session(request, services)


SessionDep = Annotated[Session, Depends(current_session)]


def set_session_cookie(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(
        cookie_name(request),
        session_id,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        cookie_name(request),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def check_origin(request: Request) -> None:
    """Refuse a form posted from another site (when the browser says where it came from)."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise PermissionDeniedError(
            "This form was sent from another web site, so it was refused. "
            "Use the dashboard's own pages."
        )


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the only kind the dashboard's forms send)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PayloadTooLargeError(f"The form is larger than {MAX_FORM_BYTES} bytes.")
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise ClientInputError("The dashboard's forms are sent URL-encoded; this one was not.")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=20))
    except (UnicodeDecodeError, ValueError):
        raise ClientInputError("The form could not be read (not URL-encoded UTF-8).") from None


def check_csrf(session: Session, fields: dict[str, str]) -> None:
    if not hmac.compare_digest(fields.get("csrf", "").encode(), session.csrf_token.encode()):
        raise PermissionDeniedError(
            "This form did not come from your current dashboard session (its CSRF token "
            "is missing or out of date), so nothing was changed. Reload the page and try again."
        )
