"""The delivery worker: the only thing that sends.

It claims due rows from the outbox, sends each in its own task, records the
attempt and the decision of :mod:`hookbook.webhooks.policy`, and sleeps until
the next row is due or a commit wakes it. Limits keep it fair: at most
``max_in_flight`` attempts at once, and at most ``max_in_flight_per_host`` to
one endpoint (host and port), so a slow or dead endpoint cannot hold up
deliveries to healthy ones: rows of a saturated endpoint are left in the
outbox until it has room.

Stopping has a deadline (``shutdown_grace``): unfinished attempts are
cancelled and their rows given back to the outbox, to be sent at the next
start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx

from .. import events as ev
from ..config import WebhookSettings
from ..db import Database
from . import outbox
from .outbox import Claim
from .policy import Decision, classify, decide
from .secrets import SecretUnavailable
from .sender import SenderOptions, attempt
from .service import WebhookService

logger = logging.getLogger(__name__)

_PRUNE_EVERY = 3600.0


endpoint_of = outbox.endpoint_of  # host:port, what the per-endpoint limit counts


class DeliveryWorker:
    """Sends the outbox of one server process."""

    def __init__(
        self,
        db: Database,
        service: WebhookService,
        settings: WebhookSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.service = service
        self.settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: dict[asyncio.Task[None], Claim] = {}
        self._per_endpoint: dict[str, int] = defaultdict(int)
        self._endpoint_webhooks: dict[str, set[int]] = defaultdict(set)
        self._stopping = False
        self._last_prune = -_PRUNE_EVERY  # prune at start (monotonic time may be < 1 h)
        self.state = "stopped"
        self.last_error: str | None = None
        #: Called with (attempt result or None, decision) after each recorded attempt.
        self.observer: Callable[[Any, Decision], None] | None = None
        self.options = SenderOptions(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_response_bytes=settings.max_response_bytes,
            response_excerpt_bytes=settings.response_excerpt_bytes,
            egress_proxy=settings.egress_proxy,
        )

    # ---- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            transport=self._transport
            or httpx.AsyncHTTPTransport(
                retries=0,
                verify=self.settings.ca_bundle or True,
                proxy=self.settings.egress_proxy,
                limits=httpx.Limits(
                    max_connections=self.settings.max_in_flight,
                    max_keepalive_connections=self.settings.max_in_flight,
                ),
            ),
            trust_env=False,
            follow_redirects=False,
        )
        if self.db.sqlite:
            released = await outbox.release_all_leases(self.db)
            if released:
                logger.info("took back %d deliveries a previous run left in flight", released)
        self.db.on_new_deliveries(self.wake)
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="hookbook-delivery-worker")
        self.state = "running"

    def wake(self) -> None:
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """What the worker is doing, for the health endpoint."""
        return {
            "state": self.state,
            "in_flight": len(self._inflight),
            "endpoints_busy": dict(self._per_endpoint),
            "last_error": self.last_error,
        }

    async def stop(self) -> None:
        """Stop within ``shutdown_grace``; unfinished rows go back to the outbox."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._inflight:
            _done, pending = await asyncio.wait(
                list(self._inflight), timeout=self.settings.shutdown_grace
            )
            unfinished = [self._inflight[t] for t in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            try:
                await outbox.release(self.db, unfinished)
            except Exception:  # the next start takes them back after the lease anyway
                logger.warning("could not release unfinished deliveries", exc_info=True)
        if self._client is not None:
            await self._client.aclose()
        self.state = "stopped"

    # ---- the loop -----------------------------------------------------------

    def _saturated_webhooks(self) -> set[int]:
        limit = self.settings.max_in_flight_per_host
        saturated: set[int] = set()
        for endpoint, count in self._per_endpoint.items():
            if count >= limit:
                saturated |= self._endpoint_webhooks[endpoint]
        return saturated

    def _endpoint_room(self, endpoint: str) -> int:
        return self.settings.max_in_flight_per_host - self._per_endpoint.get(endpoint, 0)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._maybe_prune()
                free = self.settings.max_in_flight - len(self._inflight)
                claims: list[Claim] = []
                if free > 0:
                    claims = await outbox.claim(
                        self.db,
                        limit=free,
                        lease_seconds=self.settings.lease_seconds,
                        exclude_webhooks=self._saturated_webhooks(),
                        room=self._endpoint_room,
                    )
                for c in claims:
                    self._launch(c)
                if claims and len(claims) == free:
                    continue  # there may be more due; come back once a slot frees
                self.state = "running"
                self.last_error = None
                await self._sleep(held_back=bool(self._per_endpoint))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: keep trying
                self.state = "retrying"
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("delivery worker: %s; retrying", self.last_error)
                await self._wait_for_wake(min(self.settings.poll_interval, 1.0))

    async def _sleep(self, *, held_back: bool) -> None:
        """Sleep until the next row is due, a commit adds rows, or a slot frees.

        Rows that are due but were held back (their endpoint is saturated, or
        every slot is taken) wait for a slot to free, not for the clock."""
        timeout = self.settings.poll_interval
        if len(self._inflight) < self.settings.max_in_flight:
            due = await outbox.next_due(self.db)
            if due is not None:
                wait = due - time.time()
                if wait > 0 or not held_back:
                    timeout = min(timeout, max(0.0, wait))
        if timeout > 0:
            await self._wait_for_wake(timeout)

    async def _wait_for_wake(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            pass
        self._wake.clear()

    def _launch(self, c: Claim) -> None:
        endpoint = endpoint_of(c.url)
        self._per_endpoint[endpoint] += 1
        self._endpoint_webhooks[endpoint].add(c.webhook_id)
        task = asyncio.create_task(self._deliver(c), name=f"hookbook-delivery-{c.delivery_id}")
        self._inflight[task] = c

        def done(t: asyncio.Task[None]) -> None:
            self._inflight.pop(t, None)
            self._per_endpoint[endpoint] -= 1
            if self._per_endpoint[endpoint] <= 0:
                del self._per_endpoint[endpoint]
            self._settled.set()
            self._wake.set()

        task.add_done_callback(done)

    async def _deliver(self, c: Claim) -> None:
        try:
            secret = (
                self.service.secrets.decrypt(c.secret_ciphertext) if c.secret_ciphertext else None
            )
        except SecretUnavailable as exc:
            decision = Decision(
                outcome="failed",
                wait=None,
                disable_webhook=False,
                reason=f"not sent: the signing secret cannot be decrypted ({exc}); "
                "deliveries are never sent unsigned",
            )
            await self._record(c, decision, None)
            return
        try:
            result = await attempt(
                self._client,  # type: ignore[arg-type]
                c,
                secret,
                policy=self.service.policy,
                resolver=self.service.resolver,
                options=self.options,
            )
        except Exception as exc:  # a bug, not the network: settle it visibly, never retry it
            logger.exception("delivery %s: unexpected error while sending", c.delivery_id)
            reason = f"not sent: internal error ({type(exc).__name__}: {exc})"
            await self._record(c, Decision("failed", None, False, reason), None)
            return
        verdict = classify(
            result.status_code,
            result.headers,
            retry_after_cap=self.settings.retry_after_cap,
            error=result.error,
        )
        decision = decide(verdict, c.attempts_made + 1, self.settings.retry_schedule)
        await self._record(c, decision, result)

    async def _record(self, c: Claim, decision: Decision, result: Any) -> None:
        for attempt_no in range(5):
            try:
                kept = await outbox.record(
                    self.db,
                    c,
                    decision,
                    result,
                    auto_disable_after=self.settings.auto_disable_after,
                )
                if self.observer is not None:
                    self.observer(result, decision)
                if not kept:
                    logger.warning(
                        "delivery %s: not recorded: its lease ran out (another worker has "
                        "it) or it was settled or deleted meanwhile",
                        c.delivery_id,
                    )
                return
            except Exception:
                if attempt_no == 4:
                    # The lease runs out and the delivery is tried again: at least once.
                    logger.exception("delivery %s: could not record the attempt", c.delivery_id)
                    return
                await asyncio.sleep(0.2 * (attempt_no + 1))

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < _PRUNE_EVERY:
            return
        self._last_prune = now
        cutoff = ev.now() - timedelta(days=self.settings.retention_days)
        removed = await outbox.prune(self.db, older_than=cutoff)
        if removed:
            logger.info("pruned %d settled deliveries older than %s", removed, cutoff)

    # ---- testing mode -------------------------------------------------------

    async def drain(self, timeout: float = 10.0) -> None:
        """Return when no delivery is pending; raise ``TimeoutError`` listing what is."""
        deadline = time.monotonic() + timeout
        while True:
            count, _ = await self.service.pending(limit=0)
            if count == 0:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                count, pending = await self.service.pending(limit=10)
                lines = [
                    f"  delivery {d.id} ({d.event_type} to webhook {d.webhook_id}): "
                    f"{d.attempts} attempt(s), last error {d.error_detail or 'none'}"
                    for d in pending
                ]
                raise TimeoutError(
                    f"{count} deliveries still pending after {timeout} s:\n" + "\n".join(lines)
                )
            self._settled.clear()
            try:
                await asyncio.wait_for(self._settled.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass
