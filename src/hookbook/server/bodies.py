"""Request bodies: read only after the key is checked, capped by route, parsed once.

Every route that takes a body reads it here, and only after its scope
dependency has authenticated the request: a request without a valid key is
refused (401) before a byte of its body is read, whatever its size. Each
route passes its own cap from :class:`~hookbook.config.Limits`; a body that
declares or turns out to be larger is a 413 before anything is parsed.

A JSON body is checked once, as a whole, for what no later step could
handle: nesting deeper than a bound (recursive code further on would
overflow) and text that is not valid Unicode (a lone surrogate such as
``"\\ud800"`` decodes from JSON, but no UTF-8 response could ever carry it
again). Either is a 4xx naming where in the body it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from ..config import ApiKey
from ..errors import ClientInputError, InvalidRequestError, InvalidTextError, PayloadTooLargeError
from .deps import ServicesDep, require

Model = TypeVar("Model", bound=BaseModel)

#: JSON bodies of the webhook routes are flat: an object with a list in it.
WEBHOOK_BODY_DEPTH = 8


async def read_body(request: Request, limit: int, *, what: str = "the body") -> bytes:
    """The request's body, refused (413) as soon as it is known to exceed ``limit``:
    by its ``Content-Length`` before reading, or by counting while reading."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(
            f"{what} is {declared} bytes; the limit is {limit}", size=int(declared), limit=limit
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"{what} exceeds the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(raw: bytes, *, max_depth: int) -> Any:
    """Parse a JSON body, then :func:`check_json` it."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ClientInputError("body is not usable JSON: it is nested too deeply") from None
    except ValueError as exc:
        raise InvalidRequestError(f"body is not valid JSON: {exc}") from None
    check_json(value, max_depth=max_depth, where="body", escaped=_may_hold_surrogates(raw))
    return value


#: A lone surrogate can reach a decoded string only through a ``\\uD800``-``\\uDFFF``
#: escape (raw surrogate bytes are not valid UTF-8, so they fail to decode).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _may_hold_surrogates(raw: bytes) -> bool:
    return _SURROGATE_ESCAPE.search(raw) is not None


def check_json(value: Any, *, max_depth: int, where: str, escaped: bool = True) -> None:
    """Refuse JSON nested more than ``max_depth`` levels (400) or holding a string,
    or an object key, that is not valid Unicode (422, naming where it is).

    Iterative, so it cannot overflow itself. ``escaped=False`` (the raw text had no
    surrogate escape) skips the text check.
    """
    # Each entry: (value, depth, location); a location is (parent location, key),
    # so naming a place costs nothing until there is something to name.
    stack: list[tuple[Any, int, Any]] = [(value, 1, None)]
    while stack:
        item, depth, location = stack.pop()
        if isinstance(item, str):
            if escaped and _SURROGATE.search(item):
                raise _invalid_text(where, location)
            continue
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        if depth > max_depth:
            raise ClientInputError(
                f"{_name(where, location)} is nested more than {max_depth} levels deep",
                limit=max_depth,
            )
        for key, child in children:
            if escaped and isinstance(key, str) and _SURROGATE.search(key):
                raise _invalid_text(where, (location, key), key=True)
            stack.append((child, depth + 1, (location, key)))


def _name(where: str, location: Any) -> str:
    """``body.metadata.a[2]`` for the location ``(((None, "metadata"), "a"), 2)``."""
    parts = []
    while location is not None:
        location, key = location
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:  # the key itself may be the bad text: show it escaped
            parts.append("." + key.encode("utf-8", "backslashreplace").decode("utf-8"))
    return where + "".join(reversed(parts))


def _invalid_text(where: str, location: Any, *, key: bool = False) -> InvalidTextError:
    field = _name(where, location)
    what = "the key" if key else "the text"
    return InvalidTextError(
        f"{field}: {what} is not valid Unicode (a lone surrogate such as \\ud800); "
        "send UTF-8 text, with surrogates only in valid pairs",
        field=field,
    )


# ---- typed bodies of the webhook routes ------------------------------------------


def webhook_body(model: type[Model], *scopes: str) -> Callable[..., Any]:
    """A dependency that checks the key (``scopes``), then reads a webhook route's body
    (capped at ``max_webhook_body_bytes``) and validates it as ``model``. Problems are
    a 422 shaped as FastAPI's own (``loc`` starting with ``"body"``), as when FastAPI
    parsed these bodies itself, before the key was checked."""

    gate = require(*scopes)

    async def parse(request: Request, services: ServicesDep, _: ApiKey = Depends(gate)) -> Model:
        raw = await read_body(request, services.settings.limits.max_webhook_body_bytes)
        try:
            data = decode_json(raw, max_depth=WEBHOOK_BODY_DEPTH)
        except InvalidTextError:
            raise
        except ClientInputError as exc:
            raise RequestValidationError(
                [{"type": "json_invalid", "loc": ("body",), "msg": exc.detail}]
            ) from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
            ) from None

    parse.__name__ = f"{model.__name__}_body"
    return parse


#: Models of the bodies :func:`webhook_body` reads, for the OpenAPI schema's components.
DOCUMENTED_BODIES: dict[str, type[BaseModel]] = {}


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body that :func:`webhook_body` reads (FastAPI documents
    only the bodies it reads itself, and it would read them before the key is checked)."""
    DOCUMENTED_BODIES[model.__name__] = model
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }
