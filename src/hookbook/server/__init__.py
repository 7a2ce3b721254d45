"""The hookbook server: ``create_app(settings)`` and the in-process ``SimpleServer``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SimpleServer", "create_app"]

if TYPE_CHECKING:
    from ..harness import SimpleServer
    from .app import create_app


def __getattr__(name: str) -> Any:
    if name == "SimpleServer":
        from ..harness import SimpleServer

        return SimpleServer
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
