"""The dashboard's pages, their live fragments, and its actions.

Pages under ``/ui/`` answer HTML; ``/ui/live/...`` answers JSON holding an
HTML fragment that the page's script swaps in (polled, so no request stays
open and ``close()`` never waits for one). Data comes from the webhook
service's public methods, as the API routes call them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from ...errors import ClientInputError, ConflictError, HookbookError
from ...events import EventType
from ...webhooks.records import DeliveryRecord
from ..deps import ServicesDep, get_webhook_service
from ..routes.webhooks import DeliveryId, WebhookId
from .auth import (
    SessionDep,
    SignInRequired,
    check_csrf,
    check_origin,
    clear_session_cookie,
    find_session,
    form_fields,
    session_store,
    set_session_cookie,
)
from .queries import last_deliveries
from .render import SECURITY_HEADERS, page, render
from .sessions import Session
from .views import timeline

#: Deliveries per page of a webhook's history.
PAGE_SIZE = 25
OUTCOMES = ("pending", "success", "failed")
EVENT_TYPES = tuple(event_type.value for event_type in EventType)
LIVE_PREFIX = "/ui/live/"

Service = Annotated[Any, Depends(get_webhook_service)]


class UiRoute(APIRoute):
    """A dashboard route: a missing session redirects to the sign-in form, errors
    become pages (JSON for live fragments), and every answer gets the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            live = request.url.path.startswith(LIVE_PREFIX)
            try:
                if request.method == "POST":
                    check_origin(request)
                response = await handler(request)
            except SignInRequired as exc:
                response = _sign_in_required(request, exc, live)
            except HookbookError as exc:
                response = _error(exc.status_code, exc.detail, live)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{err['loc'][-1]}: {err['msg']}" for err in exc.errors() if err.get("loc")
                )
                response = _error(422, f"This address is not valid ({problems}).", live)
            response.headers.update(SECURITY_HEADERS)
            return response

        return handle


router = APIRouter(prefix="/ui", route_class=UiRoute, include_in_schema=False)


def _sign_in_required(request: Request, exc: SignInRequired, live: bool) -> Response:
    if live:
        response: Response = JSONResponse({"detail": "sign in first"}, status_code=401)
    else:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target, **({"notice": "ended"} if exc.ended else {})}
        response = RedirectResponse(f"/ui/signin?{urlencode(query)}", status_code=303)
    if exc.ended:
        clear_session_cookie(request, response)
    return response


def _error(status: int, message: str, live: bool) -> Response:
    if live:
        return JSONResponse({"detail": message}, status_code=status)
    return page("error.html", status_code=status, message=message)


def _see_other(path: str, **query: Any) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode(query)}" if query else path, status_code=303)


def _safe_next(target: str) -> str:
    """Where to go after signing in: a dashboard path on this server, nothing else."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _filters(outcome: str, event_type: str) -> dict[str, str]:
    """The history filters of a request ("" means any), checked against what exists."""
    for name, value, allowed in (
        ("outcome", outcome, OUTCOMES),
        ("event_type", event_type, EVENT_TYPES),
    ):
        if value and value not in allowed:
            raise ClientInputError(f"{name} must be one of {', '.join(allowed)}, not {value!r}.")
    return {k: v for k, v in (("outcome", outcome), ("event_type", event_type)) if v}


# ---- signing in and out ------------------------------------------------------------------


@router.get("/signin")
async def signin_form(request: Request, next: str = "/ui/", notice: str = "") -> Response:
    return page("signin.html", next=_safe_next(next), notice=notice, message=None)


@router.post("/signin")
async def signin(request: Request, services: ServicesDep) -> Response:
    fields = await form_fields(request)
    target = _safe_next(fields.get("next", "/ui/"))
    store = session_store(services)
    presented = fields.get("api_key", "").strip()
    key = store.key_for(presented) if presented else None
    if key is None:
        message = (
            "That API key is not one this server knows. Check it and try again."
            if presented
            else "Enter an API key."
        )
        return page("signin.html", status_code=401, next=target, notice="", message=message)
    response = _see_other(target)
    set_session_cookie(request, response, await store.start(key))
    return response


async def _redeem(request: Request, services: ServicesDep, token: str) -> Response:
    store = session_store(services)
    key = await store.redeem(token)
    if key is None:
        return page(
            "signin.html",
            status_code=400,
            next="/ui/",
            notice="",
            message="This sign-in link has been used or has expired: a link signs in once, "
            "within a minute of being made. Show server.dashboard_url again for a new "
            "one, or sign in with an API key.",
        )
    response = page("signed_in.html")
    set_session_cookie(request, response, await store.start(key))
    return response


@router.post("/signout")
async def signout(request: Request, services: ServicesDep, session: SessionDep) -> Response:
    check_csrf(session, await form_fields(request))
    await session_store(services).end(session.id_hash)
    response = _see_other("/ui/signin", notice="signed-out")
    clear_session_cookie(request, response)
    return response


# ---- webhooks ----------------------------------------------------------------------------


@router.get("/")
async def home(
    request: Request, services: ServicesDep, service: Service, token: str | None = None
) -> Response:
    """The webhooks; with ``?token=``, a one-time sign-in first."""
    if token is not None:
        return await _redeem(request, services, token)
    session = await find_session(request, services)
    session.require("read:webhooks", "seeing webhooks")
    return page(
        "webhooks.html",
        session=session,
        hooks=await service.list_all(),
        last=await last_deliveries(services.db),
    )


async def _webhook_page(
    service: Any,
    session: Session,
    webhook_id: int,
    *,
    filters: dict[str, str],
    before: int | None = None,
    notice: str = "",
    notice_id: int | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    session.require("read:webhooks", "seeing webhooks")
    hook = await service.get(webhook_id)
    records = _seen_by(
        session, await service.history(webhook_id, limit=PAGE_SIZE + 1, before=before, **filters)
    )
    older = records[PAGE_SIZE - 1].id if len(records) > PAGE_SIZE else None
    live_url = None if before else f"/ui/live/webhooks/{webhook_id}?{urlencode(filters)}"
    return page(
        "webhook.html",
        status_code=status_code,
        session=session,
        hook=hook,
        records=records[:PAGE_SIZE],
        filters=filters,
        outcomes=OUTCOMES,
        event_types=EVENT_TYPES,
        before=before,
        older_query=urlencode({**filters, "before": older}) if older else None,
        newest_query=urlencode(filters),
        live_url=live_url,
        notice=notice,
        notice_id=notice_id,
        error=error,
    )


@router.get("/webhooks/{webhook_id}")
async def webhook(
    service: Service,
    session: SessionDep,
    webhook_id: WebhookId,
    outcome: str = "",
    event_type: str = "",
    before: Annotated[int | None, Query(ge=1)] = None,
    notice: str = "",
    id: int | None = None,
) -> Response:
    return await _webhook_page(
        service,
        session,
        webhook_id,
        filters=_filters(outcome, event_type),
        before=before,
        notice=notice,
        notice_id=id,
    )


@router.get("/live/webhooks/{webhook_id}")
async def webhook_rows(
    service: Service,
    session: SessionDep,
    webhook_id: WebhookId,
    outcome: str = "",
    event_type: str = "",
) -> Response:
    """The newest page of deliveries, as table rows."""
    session.require("read:webhooks", "seeing webhooks")
    filters = _filters(outcome, event_type)
    records = _seen_by(session, await service.history(webhook_id, limit=PAGE_SIZE, **filters))
    return JSONResponse({"html": render("_delivery_rows.html", records=records, filters=filters)})


@router.post("/webhooks/{webhook_id}/{action}")
async def webhook_action(
    request: Request,
    service: Service,
    session: SessionDep,
    webhook_id: WebhookId,
    action: Literal["ping", "disable", "enable"],
) -> Response:
    check_csrf(session, await form_fields(request))
    session.require("write:webhooks", f"{action.rstrip('e')}ing a webhook")
    try:
        if action == "ping":
            delivery = await service.ping(webhook_id)
            return _see_other(f"/ui/webhooks/{webhook_id}", notice="pinged", id=delivery.id)
        await service.update(webhook_id, active=action == "enable")
    except ConflictError as exc:
        return await _webhook_page(
            service, session, webhook_id, filters={}, error=exc.detail, status_code=409
        )
    return _see_other(f"/ui/webhooks/{webhook_id}", notice=f"{action}d")


# ---- deliveries --------------------------------------------------------------------------


def _seen_by(session: Session, records: list[DeliveryRecord]) -> list[DeliveryRecord]:
    """Records as the session's key may see them (payloads need ``read:metadata``)."""
    reads_metadata = session.can("read:metadata")
    return [record.seen_by(reads_metadata=reads_metadata) for record in records]


async def _delivery_context(service: Any, session: Session, delivery_id: int) -> dict[str, Any]:
    [delivery] = _seen_by(session, [await service.delivery(delivery_id)])
    return {"delivery": delivery, "steps": timeline(delivery)}


async def _delivery_page(
    service: Any,
    session: Session,
    delivery_id: int,
    *,
    notice: str = "",
    notice_id: int | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    session.require("read:webhooks", "seeing deliveries")
    context = await _delivery_context(service, session, delivery_id)
    return page(
        "delivery.html",
        status_code=status_code,
        session=session,
        hook=await service.get(context["delivery"].webhook_id),
        notice=notice,
        notice_id=notice_id,
        error=error,
        **context,
    )


@router.get("/deliveries/{delivery_id}")
async def delivery(
    service: Service,
    session: SessionDep,
    delivery_id: DeliveryId,
    notice: str = "",
    id: int | None = None,
) -> Response:
    return await _delivery_page(service, session, delivery_id, notice=notice, notice_id=id)


@router.get("/live/deliveries/{delivery_id}")
async def delivery_detail(
    service: Service, session: SessionDep, delivery_id: DeliveryId
) -> Response:
    """A delivery's facts, timeline and attempts; ``settled`` once it is no longer pending."""
    session.require("read:webhooks", "seeing deliveries")
    context = await _delivery_context(service, session, delivery_id)
    return JSONResponse(
        {
            "html": render("_delivery_detail.html", **context),
            "settled": context["delivery"].outcome != "pending",
        }
    )


@router.post("/deliveries/{delivery_id}/redeliver")
async def redeliver(
    request: Request, service: Service, session: SessionDep, delivery_id: DeliveryId
) -> Response:
    check_csrf(session, await form_fields(request))
    session.require("write:webhooks", "redelivering")
    try:
        new = await service.redeliver(delivery_id)
    except ConflictError as exc:
        return await _delivery_page(
            service, session, delivery_id, error=exc.detail, status_code=409
        )
    return _see_other(f"/ui/deliveries/{new.id}", notice="redelivered", id=delivery_id)
