"""A webhook receiver whose answers wait until the test releases them.

Tests that need a delivery *in flight* hold the receiver instead of counting
on a delay: the request has arrived (``wait_arrived``) and stays unanswered
until :meth:`HeldReceiver.release`, however slow the machine is.
"""

from __future__ import annotations

import threading
from typing import Any

from hookbook.testing import WebhookReceiver
from hookbook.testing.inspector import is_inspector_path

#: The longest a request is held, so a forgotten release cannot hang a test run.
HOLD_LIMIT = 60.0


class HeldReceiver(WebhookReceiver):
    """A :class:`WebhookReceiver` with :meth:`hold`, :meth:`allow` and :meth:`release`.

    Every request is counted as it arrives (:attr:`arrived`), and the most
    requests it had at once, held or being answered, are kept
    (:attr:`most_at_once`). While held, a
    request waits until :meth:`allow` lets it through or
    :meth:`release` opens the gate; it is then answered as the receiver would
    have answered it, and recorded. :meth:`stop` releases what is held.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate = threading.Condition()
        self._permits: int | None = None  # None: open
        self.arrived = 0
        self._inside = 0
        self.most_at_once = 0

    def hold(self) -> None:
        """Hold every request from now on, until allowed or released."""
        with self._gate:
            self._permits = 0

    def allow(self, n: int = 1) -> None:
        """Let ``n`` more held requests through (the gate stays closed after them)."""
        with self._gate:
            self._permits = (self._permits or 0) + n
            self._gate.notify_all()

    def release(self) -> None:
        """Answer the held requests, and the next ones at once."""
        with self._gate:
            self._permits = None
            self._gate.notify_all()

    def wait_arrived(self, n: int, timeout: float) -> None:
        """Wait until ``n`` requests have arrived (held or answered)."""
        with self._gate:
            if not self._gate.wait_for(lambda: self.arrived >= n, timeout):
                raise AssertionError(f"{self.arrived} requests arrived within {timeout} s, not {n}")

    def stop(self) -> None:
        self.release()
        super().stop()

    def _respond(self, request: Any) -> Any:
        if is_inspector_path(request.path):
            return super()._respond(request)
        with self._gate:
            self.arrived += 1
            self._inside += 1
            self.most_at_once = max(self.most_at_once, self._inside)
            self._gate.notify_all()
            self._gate.wait_for(lambda: self._permits != 0, HOLD_LIMIT)
            if self._permits:
                self._permits -= 1
        try:
            return super()._respond(request)
        finally:  # before the answer is written: the sender cannot be quicker
            with self._gate:
                self._inside -= 1
