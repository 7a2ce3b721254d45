"""Verify and deduplicate a hookbook delivery in a plain function.

Works with any web framework (or none): give it the raw request body, the
request headers and the webhook's secret.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableSet

from pydantic import BaseModel

from hookbook.events import parse_event
from hookbook.signing import verify


def receive(
    body: bytes, headers: Mapping[str, str], secret: str, seen: MutableSet[str]
) -> BaseModel | None:
    """Check one delivery and return its event, or ``None`` if it was handled before.

    Raises ``hookbook.errors.SignatureError`` (answer 401) when the delivery is
    not signed with ``secret``, was altered, or is a stale replay.
    """
    # 1. Authentic and fresh: verify the raw bytes, before parsing anything.
    verify(body, headers, secret)

    # 2. At-least-once delivery: a retry or redelivery carries the same event id.
    event_id = {name.lower(): value for name, value in headers.items()}["x-tiled-event-id"]
    if event_id in seen:
        return None

    # 3. The typed payload (ContainerChildCreated, StreamClosed, ...).
    event = parse_event(body)
    seen.add(event_id)  # in production: a unique key in your database
    return event
