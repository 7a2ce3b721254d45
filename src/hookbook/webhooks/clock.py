"""The clock the delivery engine reads: an injectable seam, like the resolver and transport.

``time()`` is wall-clock epoch seconds (what ``next_attempt_at`` and leases are
stored in, comparable across processes); ``now()`` the same instant as an
aware UTC datetime (what the history shows). A test can pass a clock it moves
by hand to drive back-offs and the circuit breaker without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)


system_clock: Clock = SystemClock()
