"""Catalog events: their type names, payload models and the JSON body that is signed.

The payload fields match Tiled's webhook payloads field for field; hookbook adds
``container-child-deleted`` (asked for on Tiled's own roadmap) and ``ping``
(sent only when asked for). ``path`` is the list of segments from the root to
the node the event is about, its own key included. ``timestamp`` is ISO 8601
in UTC.

The models are public; :func:`json_schema` publishes them as JSON Schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter

from .protocol.structures import StructureFamily

__all__ = [
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
]


class EventType(StrEnum):
    container_child_created = "container-child-created"
    container_child_metadata_updated = "container-child-metadata-updated"
    stream_closed = "stream-closed"
    container_child_deleted = "container-child-deleted"
    ping = "ping"


#: The event types a webhook may subscribe to (``ping`` is always sent when asked for),
#: as a type for request bodies.
EventName = Literal[
    "container-child-created",
    "container-child-metadata-updated",
    "stream-closed",
    "container-child-deleted",
]
#: The same, as a tuple: :class:`EventType` without ``ping``.
CATALOG_EVENT_TYPES: tuple[str, ...] = get_args(EventName)


def now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class _EventBase(BaseModel):
    timestamp: AwareDatetime = Field(description="When the change committed, ISO 8601, UTC.")
    key: str = Field(description="The key of the node the event is about.")
    path: list[str] = Field(description="Segments from the root to the node, its key included.")


class ContainerChildCreated(_EventBase):
    """A node was created in a container (for arrays and tables: once its data is readable)."""

    type: Literal["container-child-created"] = "container-child-created"
    structure_family: StructureFamily
    specs: list[dict[str, Any]]
    metadata: dict[str, Any]


class ContainerChildMetadataUpdated(_EventBase):
    """A node's metadata or specs were replaced."""

    type: Literal["container-child-metadata-updated"] = "container-child-metadata-updated"
    specs: list[dict[str, Any]]
    metadata: dict[str, Any]


class StreamClosed(_EventBase):
    """An array or table was closed: it takes no more appends."""

    type: Literal["stream-closed"] = "stream-closed"


class ContainerChildDeleted(_EventBase):
    """A node (and everything below it) was deleted."""

    type: Literal["container-child-deleted"] = "container-child-deleted"


class Ping(BaseModel):
    """Sent by ``POST /api/v1/webhooks/{id}/ping`` to test a webhook's endpoint."""

    type: Literal["ping"] = "ping"
    timestamp: AwareDatetime
    webhook_id: int
    url: str


Event = Annotated[
    ContainerChildCreated
    | ContainerChildMetadataUpdated
    | StreamClosed
    | ContainerChildDeleted
    | Ping,
    Field(discriminator="type"),
]

_EVENT_ADAPTER: TypeAdapter[BaseModel] = TypeAdapter(Event)


def serialize(event: BaseModel) -> str:
    """The exact JSON body of a delivery (what is signed): compact, field order kept."""
    return json.dumps(event.model_dump(mode="json"), separators=(", ", ": "))


def parse_event(body: str | bytes | dict[str, Any]) -> BaseModel:
    """Parse a delivery body (bytes, text or decoded JSON) into its event model."""
    if isinstance(body, dict):
        return _EVENT_ADAPTER.validate_python(body)
    return _EVENT_ADAPTER.validate_json(body)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of every payload hookbook sends."""
    return _EVENT_ADAPTER.json_schema()
