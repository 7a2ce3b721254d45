"""The delivery worker: the only thing that sends.

Rows come to it two ways: handed over in memory by the fan-out, leased at
insert when it has room (:class:`hookbook.webhooks.outbox.Taker`), or claimed
from the outbox when they come due (a retry, a row nobody had room for,
another process's expired lease). Each is sent in its own task
(:mod:`.sender`); the outcomes of attempts that finish close together are
recorded in one transaction (:mod:`.recorder`, group commit).

Idle, it does no database work: it knows when its next row comes due (the
claim reports it, recorded retries update it) and queries only when that time
comes, when a commit adds rows (in this process, or a ``NOTIFY`` from another),
when a slot frees while due rows were left waiting, or when a breaker's probe
is due. Without a ``NOTIFY`` source on PostgreSQL (the listener is down) it
polls every ``poll_interval``.

Limits keep it fair: at most ``max_in_flight`` attempts at once, and at most
``max_in_flight_per_host`` to one endpoint (host and port), so a slow endpoint
cannot hold up healthy ones. Each endpoint may also have as many rows again
queued in memory, leased, ready to go as soon as one of its attempts ends (and
the worker as many again as ``max_in_flight`` in all): it then claims once per
several deliveries, not once per delivery. An endpoint that keeps failing is
held back by its circuit breaker (:mod:`hookbook.webhooks.breaker`), and its
queued rows go back to the outbox.

Stopping has a deadline (``shutdown_grace``): unfinished attempts are
cancelled and their rows, like rows handed over but not yet sent, are given
back to the outbox, to be sent at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import timedelta
from typing import Any

import httpx

from ..config import WebhookSettings
from ..db import is_transient
from ..errors import SecretUnavailable
from ..url_safety import Resolver, UrlPolicy
from .breaker import CircuitBreaker, is_endpoint_failure
from .clock import Clock
from .outbox import AttemptResult, Claim, EndpointDisabled, Outbox, Outcome, Recorded
from .policy import Decision, classify, decide
from .recorder import OutcomeRecorder
from .secrets import SecretBox
from .sender import Sender, SenderOptions

logger = logging.getLogger(__name__)

_PRUNE_EVERY = 3600.0
#: Decrypted secrets kept (keyed by their ciphertext, so a changed secret is a new entry).
_SECRET_CACHE = 1024


class DeliveryWorker:
    """Sends the outbox of one server process."""

    def __init__(
        self,
        outbox: Outbox,
        secrets: SecretBox,
        settings: WebhookSettings,
        *,
        policy: UrlPolicy,
        resolver: Resolver,
        clock: Clock,
        transport: httpx.AsyncBaseTransport | None = None,
        polling: Callable[[], bool] = lambda: False,
    ) -> None:
        self.outbox = outbox
        self.secrets = secrets
        self.settings = settings
        self.clock = clock
        #: Whether to poll (no other way to hear of other processes' rows).
        self.polling = polling
        self.sender = Sender(
            SenderOptions(
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                max_response_bytes=settings.max_response_bytes,
                response_excerpt_bytes=settings.response_excerpt_bytes,
                connections_per_endpoint=settings.max_in_flight_per_host,
                connections=settings.max_in_flight,
                egress_proxy=settings.egress_proxy,
                ca_bundle=settings.ca_bundle,
            ),
            policy=policy,
            resolver=resolver,
            clock=clock,
            transport=transport,
        )
        self.breaker = CircuitBreaker(
            threshold=settings.breaker_failures,
            backoff=settings.breaker_backoff,
            max_backoff=settings.breaker_max_backoff,
            disable_after=settings.disable_endpoint_after,
        )
        self.recorder = OutcomeRecorder(
            outbox,
            auto_disable_after=settings.auto_disable_after,
            batch_size=settings.group_commit_size,
            max_wait=settings.group_commit_wait,
            attempts_in_flight=lambda: bool(self._sending),
            on_recorded=self._after_record,
        )
        self._wake = asyncio.Event()
        self._recorded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: dict[asyncio.Task[None], Claim] = {}
        #: Per endpoint: attempts in flight; rows held (reserved, queued or in flight).
        self._in_flight: dict[str, int] = defaultdict(int)
        self._held_for: dict[str, int] = defaultdict(int)
        self._queued: dict[str, deque[Claim]] = defaultdict(deque)
        self._queued_total = 0
        self._endpoint_webhooks: dict[str, set[int]] = defaultdict(set)
        #: Webhooks that answered 410 Gone, until that outcome is committed.
        self._gone: set[int] = set()
        self._reserved = 0
        self._secrets: dict[str, str] = {}
        self._dirty = True  # something may be due: look at the outbox
        self._left_behind = False  # due rows were left for lack of room
        self._next_due: float | None = None
        self._looked_at = float("-inf")  # when the worker last claimed
        self._stopping = False
        self._last_prune = -_PRUNE_EVERY  # prune at start (monotonic time may be < 1 h)
        self.state = "stopped"
        self.last_error: str | None = None
        #: Called with (attempt result or None, decision) after each recorded attempt.
        self.observer: Callable[[Any, Decision], None] | None = None

    # ---- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        if self.outbox.db.sqlite:
            released = await self.outbox.release_all_leases()
            if released:
                logger.info("took back %d deliveries a previous run left in flight", released)
        if self.wake not in self.outbox.db.wakeups:
            self.outbox.db.on_new_deliveries(self.wake)
        self.outbox.taker = self
        self._stopping = False
        self._dirty = True  # whatever is due now, and rows released at start
        self._task = asyncio.create_task(self._run(), name="hookbook-delivery-worker")
        self.recorder.start()
        self.state = "running"

    def wake(self) -> None:
        """Something may be due now (a commit added rows, another process notified)."""
        self._dirty = True
        self._wake.set()

    def _held(self) -> int:
        """Deliveries this worker holds: reserved, sending, or not yet recorded."""
        return self._reserved + self._queued_total + len(self._sending) + self.recorder.unrecorded

    @property
    def _hold_total(self) -> int:
        """Rows the worker may hold: attempts in flight, and as many queued."""
        return 2 * self.settings.max_in_flight

    @property
    def _hold_limit(self) -> int:
        """Rows one endpoint may hold: its attempts in flight, and as many queued."""
        return 2 * self.settings.max_in_flight_per_host

    def status(self) -> dict[str, Any]:
        """What the worker is doing, for the health endpoint."""
        return {
            "state": self.state,
            "in_flight": len(self._sending),
            "queued": self._queued_total,
            "endpoints_busy": {e: n for e, n in self._in_flight.items() if n},
            "endpoints_held_back": self.breaker.status(self.clock.time()),
            "last_error": self.last_error,
        }

    async def stop(self) -> None:
        """Stop within ``shutdown_grace``; unsent rows go back to the outbox."""
        self._stopping = True
        self.outbox.taker = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        unsent: list[Claim] = self._take_queued(list(self._queued))
        if self._sending:
            _done, pending = await asyncio.wait(
                list(self._sending), timeout=self.settings.shutdown_grace
            )
            unsent += [self._sending[task] for task in pending]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self.recorder.stop()  # records what finished before the deadline
            await self.outbox.release(unsent)
        except Exception as exc:  # the leases run out and the rows come back anyway
            logger.warning("could not record or release deliveries at shutdown: %s", exc)
        await self.sender.aclose()
        self.state = "stopped"

    # ---- hand-off at insert (outbox.Taker) -----------------------------------

    def reserve(self, endpoint: str) -> bool:
        if (
            self._stopping
            or self._held() >= self._hold_total
            or self._held_for[endpoint] >= self._hold_limit
            or self.breaker.is_open(endpoint)
        ):
            return False
        self._reserved += 1
        self._held_for[endpoint] += 1
        return True

    def unreserve(self, endpoints: Sequence[str]) -> None:
        for endpoint in endpoints:
            self._reserved -= 1
            self._held_for[endpoint] -= 1

    def take(self, claims: Sequence[Claim]) -> None:
        self._reserved -= len(claims)
        if self._stopping:
            for claim in claims:
                self._held_for[claim.endpoint] -= 1
            asyncio.get_running_loop().create_task(self._release_quietly(claims))
            return
        self._enqueue(claims)

    def forget(self, webhook_ids: Collection[int]) -> None:
        ids = set(webhook_ids)
        for endpoint, queue in list(self._queued.items()):
            kept = deque(claim for claim in queue if claim.webhook_id not in ids)
            dropped = len(queue) - len(kept)
            if dropped:
                self._queued[endpoint] = kept
                self._queued_total -= dropped
                self._held_for[endpoint] -= dropped

    async def _release_quietly(self, claims: Sequence[Claim]) -> None:
        try:
            await self.outbox.release(claims)
        except Exception as exc:  # the leases run out and the rows come back anyway
            logger.warning("could not release deliveries: %s", exc)

    # ---- the loop -----------------------------------------------------------

    def _held_back_webhooks(self, now: float) -> set[int]:
        """Webhooks whose endpoint has no room, or whose breaker holds it back."""
        endpoints = {e for e, n in self._held_for.items() if n >= self._hold_limit}
        endpoints |= self.breaker.held_back(now)
        held = set(self._gone)
        for endpoint in endpoints:
            held |= self._endpoint_webhooks[endpoint]
        return held

    def _room(self, endpoint: str) -> int:
        if not self.breaker.allows(endpoint, self.clock.time()):
            return 0
        if self.breaker.is_open(endpoint):
            return 1 - self._held_for[endpoint]  # the probe
        return self._hold_limit - self._held_for[endpoint]

    def _times(self) -> list[float]:
        """When something comes due that the last look at the outbox did not see:
        the next row (a retry, a lease running out), a breaker's probe."""
        times = (self._next_due, self.breaker.next_probe())
        return [t for t in times if t is not None and t > self._looked_at]

    def _due(self, now: float) -> bool:
        return self._dirty or any(t <= now for t in self._times())

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._maybe_prune()
                now = self.clock.time()
                free = self._hold_total - self._held()
                if free > 0 and self._due(now):
                    self._dirty = False
                    self._looked_at = now
                    held_back = self._held_back_webhooks(now)
                    claims, left_behind, self._next_due = await self.outbox.claim(
                        limit=free, exclude_webhooks=held_back, room=self._room
                    )
                    # Rows of endpoints that had no room were not even looked at.
                    self._left_behind = left_behind or bool(held_back)
                    for claim in claims:
                        self._held_for[claim.endpoint] += 1
                    self._enqueue(claims)
                self.state = "running"
                self.last_error = None
                await self._sleep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._dirty = True
                self.last_error = f"{type(exc).__name__}: {exc}"
                if is_transient(exc):  # the database went away: keep trying
                    self.state = "retrying"
                    logger.warning("delivery worker: %s; retrying", self.last_error)
                else:  # a bug: say so loudly, and do not spin on it
                    self.state = "error"
                    logger.exception("delivery worker: unexpected error; retrying")
                await self._wait_for_wake(min(self.settings.poll_interval, 1.0))

    async def _sleep(self) -> None:
        """Sleep until something may be due: see the module docstring. With no free
        room, only a freed slot (or a commit) wakes it."""
        now = self.clock.time()
        has_room = self._held() < self._hold_total
        if has_room and self._due(now):
            return
        times = self._times() if has_room else []
        if self.polling():
            times.append(now + self.settings.poll_interval)
        await self._wait_for_wake(max(0.0, min(times) - now) if times else None)

    async def _wait_for_wake(self, timeout: float | None) -> None:
        if timeout is None or timeout > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
        self._wake.clear()

    def _slot_freed(self) -> None:
        if self._left_behind or self._due(self.clock.time()):
            self.wake()

    # ---- queues per endpoint --------------------------------------------------

    def _enqueue(self, claims: Iterable[Claim]) -> None:
        """Queue held rows; start what their endpoints have room for."""
        endpoints = set()
        gone = [claim for claim in claims if claim.webhook_id in self._gone]
        if gone:  # the webhook is being disabled: give them back unsent
            for claim in gone:
                self._held_for[claim.endpoint] -= 1
            asyncio.get_running_loop().create_task(self._release_quietly(gone))
        for claim in claims:
            if claim.webhook_id in self._gone:
                continue
            self._endpoint_webhooks[claim.endpoint].add(claim.webhook_id)
            self._queued[claim.endpoint].append(claim)
            self._queued_total += 1
            endpoints.add(claim.endpoint)
        for endpoint in endpoints:
            self._pump(endpoint)

    def _pump(self, endpoint: str) -> None:
        """Start the endpoint's queued rows while it has room (and its breaker allows)."""
        queue = self._queued[endpoint]
        now = self.clock.time()
        while (
            queue
            and self._in_flight[endpoint] < self.settings.max_in_flight_per_host
            and len(self._sending) < self.settings.max_in_flight
            and self.breaker.allows(endpoint, now)
        ):
            claim = queue.popleft()
            self._queued_total -= 1
            self._in_flight[endpoint] += 1
            probe = self.breaker.start(endpoint)  # while open: this is the one probe
            task = asyncio.create_task(
                self._deliver(claim, probe), name=f"hookbook-delivery-{claim.delivery_id}"
            )
            self._sending[task] = claim
            task.add_done_callback(self._sent)

    def _take_queued(self, endpoints: Iterable[str]) -> list[Claim]:
        """Remove the queued rows of ``endpoints`` (to give them back to the outbox)."""
        taken: list[Claim] = []
        for endpoint in endpoints:
            queue = self._queued.pop(endpoint, deque())
            taken += queue
            self._queued_total -= len(queue)
            self._held_for[endpoint] -= len(queue)
        return taken

    def _sent(self, task: asyncio.Task[None]) -> None:
        was_full = len(self._sending) >= self.settings.max_in_flight
        claim = self._sending.pop(task)
        endpoint = claim.endpoint
        self._in_flight[endpoint] -= 1
        self._held_for[endpoint] -= 1
        if self.breaker.is_open(endpoint):
            # Held back: what is queued goes back to the outbox, unsent.
            unsent = self._take_queued([endpoint])
            if unsent and not self._stopping:
                asyncio.get_running_loop().create_task(self._release_quietly(unsent))
        else:
            self._pump(endpoint)
        if was_full:  # every attempt slot was taken: others may be waiting for this one
            for waiting in list(self._queued):
                self._pump(waiting)
        if self._held_for[endpoint] <= self.settings.max_in_flight_per_host:
            self._slot_freed()  # room for a claim's worth of rows

    def _secret(self, ciphertext: str) -> str:
        secret = self._secrets.get(ciphertext)
        if secret is None:
            secret = self.secrets.decrypt(ciphertext)
            if len(self._secrets) >= _SECRET_CACHE:
                self._secrets.clear()
            self._secrets[ciphertext] = secret
        return secret

    async def _deliver(self, claim: Claim, probe: bool) -> None:
        endpoint = claim.endpoint
        try:
            secret = self._secret(claim.secret_ciphertext) if claim.secret_ciphertext else None
            result = await self.sender.attempt(claim, secret)
        except SecretUnavailable as exc:
            reason = (
                f"not sent: the signing secret cannot be decrypted ({exc}); "
                "deliveries are never sent unsigned"
            )
            self._not_sent(claim, probe, reason)
            return
        except asyncio.CancelledError:
            if probe:
                self.breaker.abandoned(endpoint)
            raise
        except Exception as exc:  # a bug, not the network: settle it visibly, never retry it
            logger.exception("delivery %s: unexpected error while sending", claim.delivery_id)
            self._not_sent(claim, probe, f"not sent: internal error ({type(exc).__name__}: {exc})")
            return
        self._judge_endpoint(endpoint, result, probe)
        verdict = classify(
            result.status_code,
            result.headers,
            retry_after_cap=self.settings.retry_after_cap,
            error=result.error,
        )
        decision = decide(verdict, claim.attempts_made + 1, self.settings.retry_schedule)
        if decision.disable_webhook:  # 410 Gone: send nothing more to it
            self._gone.add(claim.webhook_id)
            self.forget([claim.webhook_id])
        self._queue(Outcome(claim, decision, result))

    def _not_sent(self, claim: Claim, probe: bool, reason: str) -> None:
        if probe:
            self.breaker.abandoned(claim.endpoint)
        self._queue(Outcome(claim, Decision("failed", None, False, reason), None))

    def _judge_endpoint(self, endpoint: str, result: AttemptResult, probe: bool) -> None:
        if not is_endpoint_failure(result.status_code):
            if self.breaker.is_open(endpoint):
                logger.info("endpoint %s answers again: its deliveries resume", endpoint)
                self.wake()
            self.breaker.succeeded(endpoint)
            return
        was_open = self.breaker.is_open(endpoint)
        if self.breaker.failed(endpoint, self.clock.time(), probe=probe):
            failing_for = timedelta(seconds=round(self.settings.disable_endpoint_after))
            reason = (
                f"disabled: its endpoint {endpoint} has failed continuously for "
                f"{failing_for} (last: {result.error})"
            )
            logger.warning("webhooks to %s %s", endpoint, reason)
            self.recorder.disable(EndpointDisabled(endpoint, reason))
        elif not was_open and self.breaker.is_open(endpoint):
            logger.warning(
                "endpoint %s failed %d attempts in a row: its deliveries are held back "
                "while one probe at a time tests it",
                endpoint,
                self.settings.breaker_failures,
            )

    # ---- recording outcomes (group commit) ----------------------------------

    def _queue(self, outcome: Outcome) -> None:
        self.recorder.add(outcome)

    def _after_record(self, batch: list[Outcome], recorded: Recorded | None) -> None:
        now = self.clock.time()
        if recorded is None:
            # Not recorded: the leases run out and the rows are tried again (at least once).
            self._note_due(now + self.outbox.lease_seconds)
        elif recorded.disabled_webhooks:
            self.forget(recorded.disabled_webhooks)
        for outcome in batch:
            self._gone.discard(outcome.claim.webhook_id)
            if recorded is None:
                continue
            if outcome.claim.delivery_id not in recorded.delivery_ids:
                logger.warning(
                    "delivery %s: not recorded: its lease ran out (another worker has it) "
                    "or it was settled or deleted meanwhile",
                    outcome.claim.delivery_id,
                )
                continue
            if outcome.decision.outcome == "pending":
                self._note_due(now + (outcome.decision.wait or 0.0))
            if self.observer is not None:
                self.observer(outcome.result, outcome.decision)
        self._recorded.set()
        self._slot_freed()

    def _note_due(self, when: float) -> None:
        if self._next_due is None or self._next_due <= self._looked_at or when < self._next_due:
            self._next_due = when
            self._wake.set()

    async def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < _PRUNE_EVERY:
            return
        self._last_prune = now
        cutoff = self.clock.now() - timedelta(days=self.settings.retention_days)
        removed = await self.outbox.prune(older_than=cutoff)
        if removed:
            logger.info("pruned %d settled deliveries older than %s", removed, cutoff)

    # ---- testing mode -------------------------------------------------------

    async def drain(self, timeout: float = 10.0) -> None:
        """Return when no delivery is pending and every outcome is committed; raise
        ``TimeoutError`` listing what is still pending."""
        pending = self.outbox.pending
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self._held():
                count, _ = await pending(limit=0)
                if count == 0:
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                count, rows = await pending(limit=10)
                lines = [
                    f"  delivery {d.id} ({d.event_type} to webhook {d.webhook_id}): "
                    f"{d.attempts} attempt(s), last error {d.error_detail or 'none'}"
                    for d in rows
                ]
                raise TimeoutError(
                    f"{count} deliveries still pending after {timeout} s:\n" + "\n".join(lines)
                )
            self._recorded.clear()
            try:
                await asyncio.wait_for(self._recorded.wait(), min(remaining, 0.05))
            except TimeoutError:
                pass
