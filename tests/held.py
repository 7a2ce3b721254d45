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
    """A :class:`WebhookReceiver` with :meth:`hold` and :meth:`release`.

    While held, each request is counted as it arrives (:attr:`arrived`) and
    answered only once released (as the receiver would have answered it: the
    delivery is recorded then). :meth:`stop` releases what is held.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._open = threading.Event()
        self._open.set()
        self._arrivals = threading.Condition()
        self.arrived = 0

    def hold(self) -> None:
        """Hold every request from now on until :meth:`release`."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests, and the next ones at once."""
        self._open.set()

    def wait_arrived(self, n: int, timeout: float) -> None:
        """Wait until ``n`` requests have arrived (held or answered)."""
        with self._arrivals:
            if not self._arrivals.wait_for(lambda: self.arrived >= n, timeout):
                raise AssertionError(f"{self.arrived} requests arrived within {timeout} s, not {n}")

    def stop(self) -> None:
        self.release()
        super().stop()

    def _respond(self, request: Any) -> Any:
        if not is_inspector_path(request.path):
            with self._arrivals:
                self.arrived += 1
                self._arrivals.notify_all()
            self._open.wait(HOLD_LIMIT)
        return super()._respond(request)
