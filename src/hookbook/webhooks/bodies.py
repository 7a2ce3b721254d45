"""The request bodies of the webhook routes: the server validates what it receives
with them, the client what it sends (light: pydantic and :mod:`hookbook.events`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..events import EventName

#: Longest signing secret accepted.
MAX_SECRET_LENGTH = 512


def _events(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    if len(set(value)) != len(value):
        dupes = sorted({v for v in value if value.count(v) > 1})
        raise ValueError(f"events lists {', '.join(dupes)} more than once")
    return value or None  # [] means every event, as in Tiled


class WebhookRegistration(BaseModel):
    """``POST /api/v1/webhooks/target/{path}``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Where deliveries are POSTed.")
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_SECRET_LENGTH,
        description="HMAC signing secret (stored encrypted, never returned).",
    )
    events: list[EventName] | None = Field(
        None, description="Event types to receive; null or [] means all."
    )

    _check_events = field_validator("events")(classmethod(lambda cls, v: _events(v)))


class WebhookPatch(BaseModel):
    """``PATCH /api/v1/webhooks/{id}``: change what is given."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    events: list[EventName] | None = None
    # null removes the secret; "" is refused, as at registration.
    secret: str | None = Field(None, min_length=1, max_length=MAX_SECRET_LENGTH)
    active: bool | None = None

    _check_events = field_validator("events")(classmethod(lambda cls, v: _events(v)))

    @model_validator(mode="after")
    def _no_null_url_or_active(self) -> WebhookPatch:
        for name in ("url", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self
