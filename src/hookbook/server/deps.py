"""Dependencies, declared once: the services, the store, and API-key scopes.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in
a thread pool, a thread hop per dependency per request for work that takes
microseconds.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Request

from ..catalog.store import CatalogStore
from ..config import ApiKey
from ..errors import AuthenticationError, NotFoundError, PermissionDeniedError
from .services import Services

if TYPE_CHECKING:
    from ..webhooks.service import WebhookService


async def get_services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_store(services: ServicesDep) -> CatalogStore:
    return services.store


StoreDep = Annotated[CatalogStore, Depends(get_store)]


def presented_key(request: Request) -> str | None:
    """The API key of a request: ``Authorization: Apikey KEY`` or ``?api_key=KEY``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() in {"apikey", "bearer"} and value.strip():
            return value.strip()
    return request.query_params.get("api_key")


async def optional_key(request: Request, services: ServicesDep) -> ApiKey | None:
    """The request's key; ``None`` when it sends none (a wrong key is still a 401)."""
    key = presented_key(request)
    if not key:
        return None
    for candidate in services.settings.api_keys:
        if hmac.compare_digest(candidate.key.encode(), key.encode()):
            return candidate
    raise AuthenticationError("the API key is not valid")


async def authenticate(key: Annotated[ApiKey | None, Depends(optional_key)]) -> ApiKey:
    if key is None:
        raise AuthenticationError(
            "an API key is required: send 'Authorization: Apikey KEY' or '?api_key=KEY'"
        )
    return key


def require(*scopes: str) -> Callable[[ApiKey], Coroutine[Any, Any, ApiKey]]:
    """A dependency that admits keys holding every one of ``scopes`` (``admin`` holds all)."""

    async def check(key: Annotated[ApiKey, Depends(authenticate)]) -> ApiKey:
        for scope in scopes:
            if not key.grants(scope):
                raise PermissionDeniedError(f"this API key lacks the {scope!r} scope", scope=scope)
        return key

    return check


ReadMetadata = Annotated[ApiKey, Depends(require("read:metadata"))]
WriteMetadata = Annotated[ApiKey, Depends(require("write:metadata"))]
ReadWebhooks = Annotated[ApiKey, Depends(require("read:webhooks"))]
WriteWebhooks = Annotated[ApiKey, Depends(require("write:webhooks"))]
ReadOperations = Annotated[ApiKey, Depends(require("read:operations"))]
OptionalKey = Annotated[ApiKey | None, Depends(optional_key)]


async def get_webhook_service(services: ServicesDep) -> WebhookService:
    if services.webhooks is None:  # routes are not mounted then; belt and braces
        raise NotFoundError("webhooks are not enabled on this server")
    return services.webhooks
