"""``client.webhooks``: register, inspect and manage webhooks from Python.

Every call is one request to the webhook routes; the answers come back as
typed objects with a readable ``repr`` and an HTML table in Jupyter.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from ..paths import quote_path, split_path
from ..protocol import parse_body
from ..webhooks.bodies import WebhookPatch, WebhookRegistration
from .transport import Transport


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _html_table(rows: Sequence[Any], columns: Sequence[str], caption: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(getattr(r, c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


@dataclass(frozen=True)
class Webhook:
    """A registered webhook (its secret is never returned)."""

    id: int
    url: str
    events: list[str] | None
    active: bool
    time_created: datetime
    path: list[str]
    disabled_reason: str | None
    has_secret: bool
    consecutive_failures: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Webhook:
        return cls(
            id=data["id"],
            url=data["url"],
            events=data.get("events"),
            active=data["active"],
            time_created=_when(data["time_created"]),  # type: ignore[arg-type]  # never null
            path=data.get("path", []),
            disabled_reason=data.get("disabled_reason"),
            has_secret=data.get("has_secret", False),
            consecutive_failures=data.get("consecutive_failures", 0),
        )

    def __repr__(self) -> str:
        state = "active" if self.active else f"disabled ({self.disabled_reason})"
        where = "/".join(self.path) or "/"
        events = ", ".join(self.events) if self.events else "all events"
        return f"<Webhook {self.id} {self.url} on {where!r}: {events}, {state}>"

    def _repr_html_(self) -> str:
        return _html_table([self], [f.name for f in fields(self)], f"Webhook {self.id}")


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt of a delivery."""

    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    response_excerpt: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        return cls(
            number=data["number"],
            started_at=_when(data["started_at"]),  # type: ignore[arg-type]  # never null
            duration_ms=data["duration_ms"],
            status_code=data.get("status_code"),
            error=data.get("error"),
            response_excerpt=data.get("response_excerpt"),
        )


_DELIVERY_COLUMNS = (
    "id",
    "event_type",
    "outcome",
    "attempts",
    "status_code",
    "error_detail",
    "event_id",
    "time_created",
)


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery of an event to a webhook, as in the history (what the
    server sent; the receiving side's object is :class:`hookbook.testing.Delivery`)."""

    id: int
    webhook_id: int
    event_type: str
    event_id: str
    #: None when withheld: the key lacks ``read:metadata`` (``payload_withheld`` says so).
    payload: dict[str, Any] | None
    outcome: str
    attempts: int
    status_code: int | None
    error_detail: str | None
    time_created: datetime
    delivered_at: datetime | None
    redelivery_of: int | None
    attempt_log: tuple[Attempt, ...] | None = None
    payload_withheld: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryRecord:
        log = data.get("attempt_log")
        return cls(
            id=data["id"],
            webhook_id=data["webhook_id"],
            event_type=data["event_type"],
            event_id=data.get("event_id", ""),
            payload=data["payload"],
            outcome=data["outcome"],
            attempts=data["attempts"],
            status_code=data.get("status_code"),
            error_detail=data.get("error_detail"),
            time_created=_when(data["time_created"]),  # type: ignore[arg-type]  # never null
            delivered_at=_when(data.get("delivered_at")),
            redelivery_of=data.get("redelivery_of"),
            attempt_log=None if log is None else tuple(Attempt.from_json(a) for a in log),
            payload_withheld=data.get("payload_withheld"),
        )

    def __repr__(self) -> str:
        status = self.status_code if self.status_code is not None else "-"
        return (
            f"<DeliveryRecord {self.id} {self.event_type} {self.outcome} "
            f"attempts={self.attempts} status={status}>"
        )

    def _repr_html_(self) -> str:
        table = _html_table([self], _DELIVERY_COLUMNS, f"Delivery {self.id}")
        if self.attempt_log:
            table += _html_table(
                self.attempt_log,
                ("number", "started_at", "duration_ms", "status_code", "error"),
                "Attempts",
            )
        return table


class DeliveryList(list[DeliveryRecord]):
    """A list of deliveries that shows as a table in Jupyter."""

    def _repr_html_(self) -> str:
        return _html_table(self, _DELIVERY_COLUMNS, f"{len(self)} deliveries (newest first)")


class WebhookList(list[Webhook]):
    """A list of webhooks that shows as a table in Jupyter."""

    def _repr_html_(self) -> str:
        return _html_table(
            self, ("id", "url", "path", "events", "active", "disabled_reason"), "Webhooks"
        )


def _body(model: type[WebhookRegistration | WebhookPatch], given: dict[str, Any]) -> Any:
    """``given`` checked by the model the server reads them with (an
    :class:`~hookbook.errors.InvalidRequestError` before anything is sent), as JSON."""
    return parse_body(model, given).model_dump(mode="json", exclude_unset=True)


def _path(path: str | Sequence[str]) -> str:
    return quote_path(split_path(path))


class Webhooks:
    """The webhook routes of one server."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def register(
        self,
        url: str,
        *,
        path: str | Sequence[str] = "",
        secret: str | None = None,
        events: Sequence[str] | None = None,
    ) -> Webhook:
        """Register ``url`` for the events of the node at ``path`` (from the root) and below."""
        given: dict[str, Any] = {"url": url}
        if secret is not None:
            given["secret"] = secret
        if events is not None:
            given["events"] = list(events)
        body = _body(WebhookRegistration, given)
        return Webhook.from_json(self._t.json("POST", f"webhooks/target/{_path(path)}", json=body))

    def list(self, path: str | Sequence[str] = "") -> WebhookList:
        """The webhooks registered on one node."""
        data = self._t.json("GET", f"webhooks/target/{_path(path)}")
        return WebhookList(Webhook.from_json(w) for w in data)

    def list_all(self) -> WebhookList:
        return WebhookList(Webhook.from_json(w) for w in self._t.json("GET", "webhooks/"))

    def get(self, webhook_id: int) -> Webhook:
        return Webhook.from_json(self._t.json("GET", f"webhooks/{int(webhook_id)}"))

    def update(self, webhook_id: int, **changes: Any) -> Webhook:
        """Change ``url``, ``events``, ``secret`` or ``active`` (``active=True`` re-enables)."""
        allowed = {"url", "events", "secret", "active"}
        unknown = set(changes) - allowed
        if unknown:
            raise TypeError(f"update() got unexpected fields {sorted(unknown)}; allowed: {allowed}")
        body = _body(WebhookPatch, changes)
        return Webhook.from_json(self._t.json("PATCH", f"webhooks/{int(webhook_id)}", json=body))

    def delete(self, webhook_id: int) -> None:
        self._t.json("DELETE", f"webhooks/{int(webhook_id)}")

    def history(
        self,
        webhook_id: int,
        *,
        limit: int = 50,
        before: int | None = None,
        outcome: str | None = None,
        event_type: str | None = None,
    ) -> DeliveryList:
        """Deliveries of one webhook, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        if outcome is not None:
            params["outcome"] = outcome
        if event_type is not None:
            params["event_type"] = event_type
        data = self._t.json("GET", f"webhooks/history/{int(webhook_id)}", params=params)
        return DeliveryList(DeliveryRecord.from_json(d) for d in data)

    def delivery(self, delivery_id: int) -> DeliveryRecord:
        """One delivery with its per-attempt log."""
        return DeliveryRecord.from_json(
            self._t.json("GET", f"webhooks/deliveries/{int(delivery_id)}")
        )

    def redeliver(self, delivery_id: int) -> DeliveryRecord:
        """Send a delivery's event again: a new record with the same event id."""
        return DeliveryRecord.from_json(
            self._t.json("POST", f"webhooks/deliveries/{int(delivery_id)}/redeliver")
        )

    def ping(self, webhook_id: int) -> DeliveryRecord:
        """Send a ``ping`` event to the webhook (recorded in its history)."""
        return DeliveryRecord.from_json(self._t.json("POST", f"webhooks/{int(webhook_id)}/ping"))
