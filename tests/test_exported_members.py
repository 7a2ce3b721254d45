"""The public API, pinned: each public module's ``__all__``, exactly.

A change to one of these lists is a change to what users may rely on: make it
here on purpose, with the docs (``docs/reference/python-api.md``).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

PUBLIC = {
    "hookbook": ["__version__"],
    "hookbook.client": [
        "ArrayNode",
        "Attempt",
        "Container",
        "DeliveryRecord",
        "Node",
        "TableNode",
        "Webhook",
        "Webhooks",
        "from_uri",
    ],
    "hookbook.errors": [
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
    ],
    "hookbook.events": [
        "CATALOG_EVENT_TYPES",
        "ContainerChildCreated",
        "ContainerChildDeleted",
        "ContainerChildMetadataUpdated",
        "Event",
        "EventName",
        "EventType",
        "Ping",
        "StreamClosed",
        "json_schema",
        "now",
        "parse_event",
        "serialize",
    ],
    "hookbook.server": ["SimpleServer", "create_app"],
    "hookbook.signing": [
        "DEFAULT_TOLERANCE",
        "SCHEME_STANDARD_WEBHOOKS",
        "SCHEME_TILED",
        "sign_headers",
        "standard_webhooks_secret",
        "verify",
    ],
    "hookbook.testing": ["Delivery", "ResetConnection", "ScriptedResponse", "WebhookReceiver"],
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_all_is_pinned_and_sorted(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == PUBLIC[name]
    assert module.__all__ == sorted(module.__all__)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    missing = [member for member in module.__all__ if not hasattr(module, member)]
    assert missing == []


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_class_and_function_a_module_defines_is_exported(name: str) -> None:
    """A new public class or function is either exported (and pinned above) or
    named with a leading underscore: never public by accident."""
    module = importlib.import_module(name)
    defined = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == name
    }
    assert sorted(defined - set(module.__all__)) == []
