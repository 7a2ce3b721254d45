"""Every public hookbook exception, in one place.

Each exception carries the HTTP status it maps to (``status_code``) so the
server turns it into a JSON error response in one handler
(``hookbook.server.errors``), and the client turns the response back into
the same class (:func:`error_from_response`).

The tree::

    HookbookError                      (500)
    +-- ClientInputError               (400)  bad input (also a ValueError)
    |   +-- InvalidRequestError        (422)  a body or parameter that fails validation
    |   +-- InvalidKeyError            (422)  a key that is empty, has '/', is '.'/'..', too long
    |   +-- InvalidPathError           (422)  a path with '..' or empty segments
    |   +-- InvalidDataError           (422)  bytes that do not match the dtype and shape
    |   +-- InvalidTextError           (422)  text that is not valid Unicode (a lone surrogate)
    |   +-- InvalidURLError            (422)  a webhook URL malformed, too long or not https
    |   +-- UnsafeURLError             (400)  a webhook target that is blocked or does not resolve
    |   +-- SecretsNotConfiguredError  (400)  a webhook secret but no secret_keys configured
    |   +-- UnsupportedError           (400)  a part of Tiled's protocol hookbook does not serve
    |       +-- NotAcceptableError     (406)  an export format other than the native one
    +-- PayloadTooLargeError           (413)  metadata or a body over its documented cap
    +-- AuthenticationError            (401)  missing or unknown API key
    +-- PermissionDeniedError          (403)  the key lacks the scope the route needs
    +-- NotFoundError                  (404)  an unknown node, webhook or delivery
    +-- ConflictError                  (409)
    |   +-- AlreadyExistsError         (409)  a key already taken in its container
    |   +-- StreamClosedError          (409)  appending to / closing a closed stream
    |   +-- NotAStreamError            (409)  appending to / closing a container
    |   +-- DuplicateWebhookError      (409)  the same URL registered twice on one node
    +-- ConfigurationError             (---)  a bad setting, raised at start-up; names the setting
    +-- DirectoryInUseError            (---)  a second server on a directory already in use
    +-- ServerStartupError             (---)  SimpleServer could not start (the cause attached)
    +-- SecretUnavailable              (500)  a stored webhook secret no configured key decrypts
    +-- SignatureError                 (401)  a delivery that does not verify
        +-- MissingSignatureError      (401)  no signature header (or timestamp, or id)
        +-- BadSignatureError          (401)  a signature that does not match the body
        +-- StaleTimestampError        (401)  a webhook-timestamp outside the tolerance

``ClientInputError`` and its subclasses are also :class:`ValueError`: the
protocol's parsers raise them, and a pydantic validator that raises one
turns it into a validation error as it does any ``ValueError``.
:func:`validation_message` writes pydantic's (and FastAPI's) validation
errors as one line, everywhere they are reported.

``TimeoutError`` (the builtin) is used for bounded waits (``drain``,
``wait_for``), so ordinary ``except TimeoutError`` works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "BadSignatureError",
    "ClientInputError",
    "ConfigurationError",
    "ConflictError",
    "DirectoryInUseError",
    "DuplicateWebhookError",
    "HookbookError",
    "InvalidDataError",
    "InvalidKeyError",
    "InvalidPathError",
    "InvalidRequestError",
    "InvalidTextError",
    "InvalidURLError",
    "MissingSignatureError",
    "NotAStreamError",
    "NotAcceptableError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "SecretUnavailable",
    "SecretsNotConfiguredError",
    "ServerStartupError",
    "SignatureError",
    "StaleTimestampError",
    "StreamClosedError",
    "UnsafeURLError",
    "UnsupportedError",
    "error_from_response",
    "validation_message",
]


class HookbookError(Exception):
    """Base class of every hookbook error.

    ``detail`` is the human-readable message (the ``detail`` field of the JSON
    error body); ``context`` holds structured facts (ids, paths, limits).
    """

    status_code: int = 500

    def __init__(self, detail: str = "", **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail, "error": type(self).__name__}
        if self.context:
            body["context"] = self.context
        return body


class ClientInputError(HookbookError, ValueError):
    """Bad input. A :class:`ValueError` too, so pydantic validators wrap it."""

    status_code = 400


class InvalidRequestError(ClientInputError):
    """A request body, or a parameter, that fails validation: 422, as Tiled answers."""

    status_code = 422


class InvalidKeyError(ClientInputError):
    status_code = 422


class InvalidPathError(ClientInputError):
    status_code = 422


class InvalidDataError(ClientInputError):
    status_code = 422


class InvalidTextError(ClientInputError):
    """Text that cannot be stored and served again: a lone surrogate (``"\\ud800"``)
    decodes from JSON, but no UTF-8 response can carry it."""

    status_code = 422


class InvalidURLError(ClientInputError):
    status_code = 422


class UnsafeURLError(ClientInputError):
    status_code = 400


class SecretsNotConfiguredError(ClientInputError):
    status_code = 400


class UnsupportedError(ClientInputError):
    status_code = 400


class NotAcceptableError(UnsupportedError):
    """A ``format=`` hookbook does not export (it serves the native media type only)."""

    status_code = 406


class PayloadTooLargeError(HookbookError):
    status_code = 413


class AuthenticationError(HookbookError):
    status_code = 401


class PermissionDeniedError(HookbookError):
    status_code = 403


class NotFoundError(HookbookError):
    status_code = 404


class ConflictError(HookbookError):
    status_code = 409


class AlreadyExistsError(ConflictError):
    pass


class StreamClosedError(ConflictError):
    pass


class NotAStreamError(ConflictError):
    pass


class DuplicateWebhookError(ConflictError):
    pass


class ConfigurationError(HookbookError):
    """A setting is invalid; the message names the setting."""


class DirectoryInUseError(HookbookError):
    """Another server already uses this directory."""


class ServerStartupError(HookbookError):
    """The in-process server failed to start; ``__cause__`` is its own error."""


class SecretUnavailable(HookbookError):
    """A stored webhook secret that none of ``webhooks.secret_keys`` decrypts (a key
    dropped before rotation re-encrypted what it protects): the server's problem,
    never the caller's. Its deliveries fail closed, never sent unsigned."""


class SignatureError(HookbookError):
    status_code = 401


class MissingSignatureError(SignatureError):
    pass


class BadSignatureError(SignatureError):
    pass


class StaleTimestampError(SignatureError):
    pass


_BY_NAME: dict[str, type[HookbookError]] = {
    name: obj
    for name, obj in globals().items()
    if isinstance(obj, type) and issubclass(obj, HookbookError)
}

_BY_STATUS: dict[int, type[HookbookError]] = {
    400: ClientInputError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    406: NotAcceptableError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ClientInputError,
}


def error_from_response(status_code: int, body: Any) -> HookbookError:
    """Rebuild the exception a server raised from its JSON error response.

    ``body`` is the decoded JSON (or ``None`` when the response was not JSON).
    The class is chosen by the ``error`` field when hookbook sent it, else by
    status code; the message is the server's ``detail``.
    """
    detail: Any = None
    cls: type[HookbookError] | None = None
    context: dict[str, Any] = {}
    if isinstance(body, dict):
        detail = body.get("detail")
        cls = _BY_NAME.get(str(body.get("error")))
        if isinstance(body.get("context"), dict):
            context = body["context"]
    if cls is None:
        cls = _BY_STATUS.get(status_code, HookbookError)
    if isinstance(detail, list):  # FastAPI validation errors
        detail = validation_message(detail)
    if detail is None:
        detail = f"HTTP {status_code}"
    err = cls(str(detail), **context)
    err.status_code = status_code
    return err


def validation_message(errors: Any, *, root: str = "") -> str:
    """Validation errors as one line: ``"metadata: Input should be ...; id: ..."``.

    ``errors`` is a pydantic ``ValidationError`` or its ``errors()`` list (the
    ``detail`` of a FastAPI 422 has the same items). Each item is written as
    its location, dotted, and its message; ``root`` names the whole value
    when an error has no location (``"body"``, ``"config"``).
    """
    items: Iterable[Any] = errors.errors() if hasattr(errors, "errors") else errors
    parts = []
    for item in items:
        if not isinstance(item, Mapping):
            parts.append(str(item))
            continue
        where = ".".join(str(p) for p in item.get("loc", ())) or root
        message = str(item.get("msg", ""))
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
