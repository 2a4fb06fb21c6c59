"""The delivery worker: sends due webhooks, signed, on the Standard Webhooks retry schedule.

2xx is delivered; 410 Gone disables the endpoint; anything else (other statuses, redirects,
timeouts, refused connections) is retried per ``RETRY_SCHEDULE`` with jitter, then failed.
The worker polls the database, so a restart loses nothing (see ``outbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.store import utc_now
from cloud_sync.store.engine import Database

from . import endpoints, outbox
from .endpoints import DISABLED_GONE, EndpointRow
from .outbox import RETRY_SCHEDULE, DeliveryRow, Outcome
from .signing import webhook_headers

log = structlog.get_logger(__name__)

# Receivers are asked to answer fast and queue their work; 15 s is what the spec's reference
# senders allow before counting the attempt as failed.
REQUEST_TIMEOUT_S = 15.0
# A receiver that does not accept a TCP connection in 5 s is down; do not wait the full 15.
CONNECT_TIMEOUT_S = 5.0
# A claimed delivery stays invisible to other workers this long: past the request timeout
# with room to record the outcome, short enough that a crashed worker's claims soon return.
LEASE = timedelta(seconds=4 * REQUEST_TIMEOUT_S)
# How often an idle worker looks for due deliveries; the first attempt is "immediate" to
# within this, or at once when the enqueuing process calls ``wake()``.
POLL_INTERVAL_S = 1.0
# Deliveries claimed (and sent concurrently) per round: bounds sockets and the lease window.
BATCH_SIZE = 32
# Up to 10% on top of each delay, so endpoints that failed together do not retry together.
MAX_JITTER_FRACTION = 0.1
USER_AGENT = "lockhub-webhooks/1"

Jitter = Callable[[float], float]
Sleep = Callable[[float], Awaitable[None]]


def random_jitter(delay: float) -> float:
    """Extra seconds for a retry ``delay`` seconds away."""
    return random.uniform(0, delay * MAX_JITTER_FRACTION)  # noqa: S311 - spreading load, not a secret


@dataclass(frozen=True, slots=True)
class Decision:
    """What follows an attempt."""

    status: str
    step: int
    next_attempt_at: datetime | None
    disable: bool = False


def decide(outcome: Outcome, step: int, now: datetime, jitter: Jitter) -> Decision:
    """Delivered, gone, retried later per the schedule, or failed for good."""
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        return Decision(outbox.DELIVERED, step, None)
    if code == 410:
        return Decision(outbox.FAILED, step, None, disable=True)
    following = step + 1
    if following >= len(RETRY_SCHEDULE):
        return Decision(outbox.FAILED, step, None)
    delay = RETRY_SCHEDULE[following]
    return Decision(outbox.PENDING, following, now + timedelta(seconds=delay + jitter(delay)))


class DeliveryWorker:
    """Claims due deliveries from the database and sends them."""

    def __init__(
        self,
        db: Database,
        *,
        session: aiohttp.ClientSession | None = None,
        now: Callable[[], datetime] = utc_now,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = random_jitter,
        batch: int = BATCH_SIZE,
    ) -> None:
        self._db = db
        self._session = session
        self._own_session = session is None
        self._now = now
        self._sleep = sleep
        self._jitter = jitter
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            try:
                sent = await self.run_once()
            except Exception:  # a database outage must not end the worker; it retries
                log.exception("webhook.worker_failed")
                sent = 0
            if sent == 0:
                await self._idle()

    async def _idle(self) -> None:
        waiters = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._sleep(POLL_INTERVAL_S)),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wake.clear()

    async def run_once(self) -> int:
        """Claim and send one batch of due deliveries; how many were sent."""
        now = self._now()
        claimed = await self._db.write(lambda conn: outbox.claim_due(conn, now, self._batch, LEASE))
        if claimed:
            await asyncio.gather(*(self._deliver(d, e) for d, e in claimed))
        return len(claimed)

    async def _deliver(self, delivery: DeliveryRow, endpoint: EndpointRow) -> None:
        now = self._now()
        outcome = await self._send(delivery, endpoint, now)
        decision = decide(outcome, delivery.step, now, self._jitter)

        async def work(conn: AsyncConnection) -> bool:
            stored = await outbox.record(
                conn, delivery, outcome, now, status=decision.status, step=decision.step,
                next_attempt_at=decision.next_attempt_at,
            )  # fmt: skip
            if stored and decision.disable:
                await endpoints.disable(conn, endpoint.endpoint_id, DISABLED_GONE, now)
            return stored

        await self._db.write(work)
        log.info(
            "webhook.attempted", delivery_id=delivery.delivery_id,
            endpoint_id=endpoint.endpoint_id, event_type=delivery.event_type,
            attempt=delivery.attempts + 1, status_code=outcome.status_code,
            error=outcome.error, result=decision.status, disabled=decision.disable,
        )  # fmt: skip

    async def _send(self, delivery: DeliveryRow, endpoint: EndpointRow, now: datetime) -> Outcome:
        body = delivery.payload.encode("utf-8")
        headers = webhook_headers(
            endpoint.signing_secrets(now), delivery.message_id, int(now.timestamp()), body
        )
        headers |= {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        started = time.monotonic()
        try:
            async with self._client().post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Outcome(None, type(exc).__name__, _elapsed_ms(started))
        return Outcome(status, None, _elapsed_ms(started))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session if the worker made it."""
        if self._own_session and self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
            self._session = None


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
