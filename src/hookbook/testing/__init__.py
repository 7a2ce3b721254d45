"""Test and notebook helpers: :class:`WebhookReceiver` and the pytest plugin.

Importing this package is cheap (pytest imports it, through
``hookbook.testing.plugin``, in every session): the receiver and its
dependencies (werkzeug, pytest-httpserver) are imported on first use of a
name below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .receiver import Delivery, ResetConnection, ScriptedResponse, WebhookReceiver

__all__ = ["Delivery", "ResetConnection", "ScriptedResponse", "WebhookReceiver"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module(".receiver", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
