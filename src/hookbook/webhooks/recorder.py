"""Group commit of attempt outcomes.

Outcomes that finish close together are recorded in one transaction
(:meth:`hookbook.webhooks.outbox.Outbox.record`): what finished while the
previous batch was being written, plus what finishes within ``max_wait`` of
the first while attempts are still in flight, up to ``batch_size``. A batch
the database refuses for a reason worth retrying (:func:`hookbook.db.is_transient`)
is tried again a few times; any other error is a bug, logged with its
traceback. A batch that cannot be recorded is dropped: its leases run out
and the deliveries are tried again (at least once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..db import is_transient
from .outbox import EndpointDisabled, Outbox, Outcome, Recorded

logger = logging.getLogger(__name__)

#: Tries to record one batch while the database is unreachable.
TRIES = 5


class OutcomeRecorder:
    """Records the outcomes of one worker's attempts, in batches."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        auto_disable_after: int,
        batch_size: int,
        max_wait: float,
        attempts_in_flight: Callable[[], bool],
        on_recorded: Callable[[list[Outcome], Recorded | None], None],
    ) -> None:
        self.outbox = outbox
        self.auto_disable_after = auto_disable_after
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.attempts_in_flight = attempts_in_flight
        self.on_recorded = on_recorded
        self._outcomes: list[Outcome] = []
        self._disable: list[EndpointDisabled] = []
        self._recording = 0
        self._queued = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def unrecorded(self) -> int:
        """Outcomes not committed yet (queued or being written)."""
        return len(self._outcomes) + self._recording

    def add(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        self._queued.set()

    def disable(self, endpoint: EndpointDisabled) -> None:
        """Disable an endpoint's webhooks in the next batch's transaction."""
        self._disable.append(endpoint)
        self._queued.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hookbook-outcomes")

    async def stop(self) -> None:
        """Stop batching; record what is queued now."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

    async def _run(self) -> None:
        while True:
            await self._queued.wait()
            if self.attempts_in_flight() and len(self._outcomes) < self.batch_size:
                await asyncio.sleep(self.max_wait)
            self._queued.clear()
            await self.flush()

    async def flush(self) -> None:
        while self._outcomes or self._disable:
            batch = self._outcomes[: self.batch_size]
            del self._outcomes[: len(batch)]
            disable, self._disable = self._disable, []
            self._recording += len(batch)
            try:
                recorded = await self._record(batch, disable)
            finally:
                self._recording -= len(batch)
            self.on_recorded(batch, recorded)

    async def _record(
        self, batch: list[Outcome], disable: list[EndpointDisabled]
    ) -> Recorded | None:
        for tries in range(1, TRIES + 1):
            try:
                return await self.outbox.record(
                    batch, auto_disable_after=self.auto_disable_after, disable=disable
                )
            except Exception as exc:
                if not is_transient(exc):
                    logger.exception("could not record %d attempts", len(batch))
                    return None
                if tries == TRIES:
                    logger.warning("could not record %d attempts: %s", len(batch), exc)
                    return None
                await asyncio.sleep(0.2 * tries)
        return None
