"""The pure decision core of delivery retries: what an attempt's result means, what next.

No I/O and no clock: the worker feeds in the attempt's status code and
headers and how many attempts were made; the randomness of the jitter is
injected (``rand``), so every rule is a table test.

Schedule and backoff. ``schedule`` lists the waits between attempts, so a
delivery gets ``len(schedule) + 1`` attempts. After ``n`` attempts
(``1 <= n <= len(schedule)``) the wait before the next one is::

    wait(n) = schedule[n - 1] * (1 + JITTER * (2 * rand() - 1))      rand() in [0, 1)

that is ``schedule[n - 1]`` give or take ``JITTER`` (20 %) of itself. The
jitter is proportional to the wait, so a testing schedule ``[0.01, 0.01]``
stays in milliseconds. After ``len(schedule) + 1`` attempts there is no next
one. The default ``(1.0, 5.0)`` matches Tiled: 3 attempts, waits of about
1 s and 5 s.

Classification of one attempt (:func:`classify`):

===============================================  ==========  ============================
result                                           verdict     then
===============================================  ==========  ============================
2xx                                              delivered   success
410 Gone                                         gone        failed, webhook disabled
no response (refused, DNS, timeout, reset)       retry       pending, or failed when the
3xx (redirects are not followed), 4xx, 5xx                   schedule is exhausted
===============================================  ==========  ============================

On 429 and 503 a ``Retry-After`` header (delta-seconds or an HTTP-date) is
honoured up to ``retry_after_cap``: the wait is then
``max(wait(n), min(retry_after, retry_after_cap))``. It never adds attempts.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

# The standard library only (and hookbook.errors): the pytest plugin imports the
# schedules above without hookbook's dependencies, and the settings take their
# defaults from here.
from hookbook.errors import ConfigurationError

__all__ = [
    "DEFAULT_RETRY_AFTER_CAP",
    "DEFAULT_RETRY_SCHEDULE",
    "JITTER",
    "MAX_RETRIES",
    "TESTING_RETRY_SCHEDULE",
    "Decision",
    "Verdict",
    "check_schedule",
    "classify",
    "decide",
    "parse_retry_after",
    "retry_wait",
]

#: Waits (seconds) between attempts; attempts = len + 1. Tiled's: 3 attempts, ~1 s, ~5 s.
DEFAULT_RETRY_SCHEDULE: tuple[float, ...] = (1.0, 5.0)
#: The testing-mode schedule (the pytest plugin's): three attempts within milliseconds.
TESTING_RETRY_SCHEDULE: tuple[float, ...] = (0.01, 0.01)
#: The most retries a schedule may list.
MAX_RETRIES = 20
#: Each wait varies by up to this fraction of itself, either way.
JITTER = 0.2
#: The longest ``Retry-After`` honoured, in seconds.
DEFAULT_RETRY_AFTER_CAP = 60.0

_RETRY_AFTER_STATUSES = frozenset({429, 503})
_DELTA_SECONDS = re.compile(r"[0-9]+")


def check_schedule(
    schedule: Sequence[float], setting: str = "webhooks.retry_schedule"
) -> tuple[float, ...]:
    """Validate a retry schedule; return it as a tuple of floats.

    Every entry must be a finite number ``>= 0`` (not a bool), at most
    :data:`MAX_RETRIES` of them; an empty schedule means a single attempt.
    Raises ``ConfigurationError`` naming ``setting``.
    """
    if isinstance(schedule, str | bytes) or not isinstance(schedule, Sequence):
        raise ConfigurationError(
            f"{setting} must be a list of seconds, e.g. [1, 5]", setting=setting
        )
    if len(schedule) > MAX_RETRIES:
        raise ConfigurationError(
            f"{setting} allows at most {MAX_RETRIES} retries, not {len(schedule)}", setting=setting
        )
    waits = []
    for index, entry in enumerate(schedule):
        if (
            isinstance(entry, bool)
            or not isinstance(entry, int | float)
            or not math.isfinite(entry)
            or entry < 0
        ):
            raise ConfigurationError(
                f"{setting}[{index}] = {entry!r} is not a number of seconds >= 0",
                setting=setting,
            )
        waits.append(float(entry))
    return tuple(waits)


def retry_wait(
    schedule: Sequence[float],
    attempts_made: int,
    *,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` when there is none.

    ``schedule[attempts_made - 1] * (1 + JITTER * (2 * rand() - 1))`` for
    ``1 <= attempts_made <= len(schedule)``; ``None`` once ``attempts_made``
    reaches ``len(schedule) + 1``. ``rand`` returns a float in ``[0, 1)``.
    """
    if attempts_made < 1:
        raise ValueError(f"attempts_made must be >= 1, not {attempts_made}")
    if attempts_made > len(schedule):
        return None
    return schedule[attempts_made - 1] * (1 + JITTER * (2 * rand() - 1))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait, or ``None`` if absent or garbage.

    Delta-seconds (``"120"``: ASCII digits only) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``), counted from ``now`` (default: the
    current UTC time; a naive datetime is taken as UTC). A date in the past
    gives ``0.0``; more than 15 digits give ``math.inf`` (the caller caps).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return float(int(text)) if len(text) <= 15 else math.inf
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Verdict:
    """What one attempt's result means.

    ``kind``: ``"delivered"`` (2xx), ``"gone"`` (410: stop, disable the
    webhook) or ``"retry"``. ``retry_after``: the receiver's ``Retry-After``
    in seconds, already capped (only on 429 and 503). ``reason``: a short
    description for the delivery history (``"HTTP 500"``, the transport
    error), ``None`` when delivered.
    """

    kind: Literal["delivered", "gone", "retry"]
    status_code: int | None
    retry_after: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with the delivery after an attempt.

    ``outcome``: ``"success"``, ``"failed"`` (final) or ``"pending"`` (try
    again after ``wait`` seconds). ``disable_webhook``: the receiver said
    410 Gone. ``reason``: why it is not a success (``None`` on success).
    """

    outcome: Literal["success", "failed", "pending"]
    wait: float | None
    disable_webhook: bool
    reason: str | None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def classify(
    status_code: int | None,
    headers: Mapping[str, str] | None,
    *,
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP,
    error: str | None = None,
    now: datetime | None = None,
) -> Verdict:
    """Classify one attempt by its status code (``None``: no response at all).

    2xx -> delivered; 410 -> gone; anything else (no response, 1xx, 3xx,
    4xx, 5xx) -> retry. On 429 and 503, ``Retry-After`` (looked up
    case-insensitively) becomes ``min(parse_retry_after(...), retry_after_cap)``.
    ``error`` describes a transport error for the reason (default ``"no
    response"``); ``now`` is passed to :func:`parse_retry_after`.
    """
    if retry_after_cap < 0:
        raise ValueError("retry_after_cap must be >= 0 seconds")
    if status_code is None:
        return Verdict("retry", None, reason=error or "no response")
    if 200 <= status_code < 300:
        return Verdict("delivered", status_code)
    if status_code == 410:
        return Verdict("gone", 410, reason="HTTP 410 Gone")
    retry_after = None
    if status_code in _RETRY_AFTER_STATUSES:
        parsed = parse_retry_after(_header(headers, "Retry-After"), now=now)
        if parsed is not None:
            retry_after = min(parsed, retry_after_cap)
    reason = f"HTTP {status_code}"
    if 300 <= status_code < 400:
        reason += " (redirects are not followed)"
    return Verdict("retry", status_code, retry_after=retry_after, reason=reason)


def decide(
    verdict: Verdict,
    attempts_made: int,
    schedule: Sequence[float] = DEFAULT_RETRY_SCHEDULE,
    *,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """Turn a verdict into the delivery's next state, after ``attempts_made`` attempts.

    delivered -> success. gone -> failed, ``disable_webhook=True``. retry ->
    pending with ``wait = max(retry_wait(schedule, attempts_made, rand=rand),
    verdict.retry_after or 0)`` while the schedule allows, else failed with
    ``"gave up after N attempts: <verdict.reason>"``.
    """
    if verdict.kind == "delivered":
        return Decision("success", None, False, None)
    if verdict.kind == "gone":
        return Decision(
            "failed",
            None,
            True,
            "HTTP 410 Gone: the receiver asked for no more deliveries; webhook disabled",
        )
    wait = retry_wait(schedule, attempts_made, rand=rand)
    if wait is None:
        plural = "" if attempts_made == 1 else "s"
        return Decision(
            "failed",
            None,
            False,
            f"gave up after {attempts_made} attempt{plural}: {verdict.reason}",
        )
    return Decision("pending", max(wait, verdict.retry_after or 0.0), False, verdict.reason)
