"""What the pages show, computed from the service's records (pure functions)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from ...webhooks.records import AttemptRecord, DeliveryRecord


def node_path_text(path: str | Sequence[str] | None) -> str:
    """``"a/b"`` or ``["a", "b"]`` as ``a/b``; the root as ``(root)``."""
    if path is None:
        return "-"
    text = path if isinstance(path, str) else "/".join(str(p) for p in path)
    return text or "(root)"


def shown_url(url: str) -> str:
    """A webhook URL without any ``user:password@`` (registration refuses them; belt and braces)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def attempt_result(attempt: AttemptRecord) -> str:
    if attempt.status_code is not None:
        return f"HTTP {attempt.status_code}"
    return f"no response: {attempt.error or 'transport error'}"


@dataclass(frozen=True)
class Step:
    """One step of a delivery's timeline: an attempt, a wait, or the next attempt to come."""

    kind: str  # "attempt", "wait" or "next"
    text: str
    ok: bool | None = None
    at: datetime | None = None


def timeline(delivery: DeliveryRecord, now: float | None = None) -> list[Step]:
    """Attempts and the waits between them, then when the next attempt is due (if pending)."""
    steps: list[Step] = []
    previous_end: float | None = None
    for attempt in delivery.attempt_log or ():
        start = attempt.started_at.timestamp()
        if previous_end is not None:
            steps.append(Step("wait", f"waited {_seconds(max(0.0, start - previous_end))}"))
        ok = attempt.status_code is not None and 200 <= attempt.status_code < 300
        steps.append(
            Step(
                "attempt",
                f"#{attempt.number} {attempt_result(attempt)} in {attempt.duration_ms:.0f} ms",
                ok=ok,
                at=attempt.started_at,
            )
        )
        previous_end = start + attempt.duration_ms / 1000
    if delivery.outcome == "pending" and delivery.next_attempt_at is not None:
        left = delivery.next_attempt_at - (time.time() if now is None else now)
        steps.append(Step("next", f"next attempt in {_seconds(left)}" if left > 0 else "due now"))
    return steps


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
