"""A circuit breaker per endpoint (``host:port``): no clock of its own, no I/O.

After ``threshold`` failed attempts in a row to one endpoint (no response, or
408, 429, 5xx: what says the endpoint itself is unwell) the breaker *opens*:
the endpoint's other deliveries are held back without spending their
attempts, and one attempt at a time probes it, first ``backoff`` seconds
later, then doubling up to ``max_backoff``. A successful attempt closes it.
An endpoint that has failed without a single success for ``disable_after``
seconds is reported once, so that its webhooks are disabled with the reason.
At most one probe per back-off goes out, so a dead endpoint costs at most
``60 / backoff`` attempts a minute, fewer as the back-off grows.

The state lives in the worker's memory: a restarted process starts closed.
"""

from __future__ import annotations

from dataclasses import dataclass


def is_endpoint_failure(status_code: int | None) -> bool:
    """Whether an attempt's result says the endpoint is unwell (not the one webhook)."""
    return status_code is None or status_code >= 500 or status_code in (408, 429)


@dataclass
class _Endpoint:
    failures: int = 0
    failing_since: float | None = None
    probe_at: float | None = None  # set while open: when the next probe may start
    backoff: float = 0.0
    probing: bool = False


class CircuitBreaker:
    """The breakers of one worker's endpoints."""

    def __init__(
        self, *, threshold: int, backoff: float, max_backoff: float, disable_after: float
    ) -> None:
        self.threshold = threshold
        self.base_backoff = backoff
        self.max_backoff = max(backoff, max_backoff)
        self.disable_after = disable_after
        self._endpoints: dict[str, _Endpoint] = {}

    def is_open(self, endpoint: str) -> bool:
        state = self._endpoints.get(endpoint)
        return state is not None and state.probe_at is not None

    def allows(self, endpoint: str, now: float) -> bool:
        """May an attempt to ``endpoint`` start now? (Closed, or open and a probe is due.)"""
        state = self._endpoints.get(endpoint)
        if state is None or state.probe_at is None:
            return True
        return not state.probing and now >= state.probe_at

    def start(self, endpoint: str) -> bool:
        """An attempt starts (after :meth:`allows`); returns whether it is the probe."""
        state = self._endpoints.get(endpoint)
        if state is None or state.probe_at is None:
            return False
        state.probing = True
        return True

    def succeeded(self, endpoint: str) -> None:
        self._endpoints.pop(endpoint, None)

    def failed(self, endpoint: str, now: float, *, probe: bool) -> bool:
        """Count a failed attempt; True once the endpoint has failed for ``disable_after``
        seconds (the caller disables its webhooks; the count starts again)."""
        state = self._endpoints.setdefault(endpoint, _Endpoint())
        state.failures += 1
        if state.failing_since is None:
            state.failing_since = now
        if probe:
            state.probing = False
            state.backoff = min(state.backoff * 2, self.max_backoff)
            state.probe_at = now + state.backoff
        elif state.probe_at is None and state.failures >= self.threshold:
            state.backoff = self.base_backoff
            state.probe_at = now + state.backoff
        if self.disable_after and now - state.failing_since >= self.disable_after:
            del self._endpoints[endpoint]
            return True
        return False

    def abandoned(self, endpoint: str) -> None:
        """A probe ended without a result (cancelled at shutdown): another may go."""
        state = self._endpoints.get(endpoint)
        if state is not None:
            state.probing = False

    def held_back(self, now: float) -> set[str]:
        """Endpoints whose deliveries must wait now."""
        return {e for e in self._endpoints if not self.allows(e, now)}

    def next_probe(self) -> float | None:
        """When the earliest waiting probe may start, if any endpoint is open."""
        times = [
            s.probe_at for s in self._endpoints.values() if s.probe_at is not None and not s.probing
        ]
        return min(times, default=None)

    def status(self, now: float) -> dict[str, dict[str, float | int | None]]:
        """The open breakers, for the health endpoint."""
        return {
            endpoint: {
                "failures": state.failures,
                "failing_for": now - state.failing_since if state.failing_since else None,
                "next_probe_in": max(0.0, state.probe_at - now) if state.probe_at else None,
            }
            for endpoint, state in self._endpoints.items()
            if state.probe_at is not None
        }
