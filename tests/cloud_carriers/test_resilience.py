"""Retries only on transient errors, Retry-After honoured, the breaker's whole cycle, the
time limit, the audit: a real aiohttp carrier behind ``ResilientConnector``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import aiohttp
import pytest

from cloud_sync.carriers.breaker import CircuitBreaker
from cloud_sync.carriers.connector import (
    Address,
    CarrierJobRef,
    JobRequest,
    Parcel,
    QuoteRequest,
)
from cloud_sync.carriers.errors import (
    BreakerOpenError,
    CarrierAuthError,
    CarrierError,
    CarrierRejectedError,
    CarrierTimeoutError,
    RateLimitedError,
    TransientCarrierError,
)
from cloud_sync.carriers.resilience import (
    MAX_HONOURED_RETRY_AFTER_S,
    Policy,
    ResilientConnector,
    carrier_idempotency_key,
)
from cloud_sync.store.carriers import CallbackRow
from tests.cloud.conftest import SettableClock

from .carrier_server import Answer, CarrierServer, HttpTestConnector
from .conftest import START, start_server

HERE = Address("Ada", "+331", "1 Rue", "Paris", "75001", "FR")
REQUEST = QuoteRequest("task-1", "acme", HERE, HERE, (Parcel(1000, 10, 10, 10),), START)


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
async def server(clock: SettableClock) -> AsyncIterator[CarrierServer]:
    made = CarrierServer(clock)
    runner = await start_server(made)
    try:
        yield made
    finally:
        made.release.set()
        await runner.cleanup()


class Rig:
    def __init__(self, server: CarrierServer, session: aiohttp.ClientSession, **policy: Any):
        self.server = server
        self.ticks = Ticks()
        self.breaker = CircuitBreaker("p1", 3, 60.0, 30.0, self.ticks)
        self.audit: list[CallbackRow] = []
        self.slept: list[float] = []
        inner = HttpTestConnector(session, server.url, "key")
        self.connector = ResilientConnector(
            inner, self.breaker, audit=self.record, tenant="acme", partner_id="p1",
            policy=Policy(**({"attempts": 3, "quote_timeout_s": 2.0} | policy)),
        )  # fmt: skip

    async def record(self, row: CallbackRow) -> None:
        self.audit.append(row)

    def quotes_seen(self) -> int:
        return sum(1 for seen in self.server.seen if seen[1].endswith("delivery_quotes"))


@pytest.fixture
def rig(server: CarrierServer, session: aiohttp.ClientSession) -> Rig:
    return Rig(server, session)


async def test_a_400_is_not_retried(rig: Rig) -> None:
    rig.server.queue.append(Answer(400, {"code": "invalid_params", "message": "bad address"}))
    with pytest.raises(CarrierRejectedError, match="bad address") as caught:
        await rig.connector.quote(REQUEST)
    assert caught.value.status == 400
    assert rig.quotes_seen() == 1
    assert [(a.kind, a.status_code, a.attempt) for a in rig.audit] == [("rejected", 400, 1)]
    assert rig.breaker.state == "closed"  # the carrier answered: it is up


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_not_retried_but_count(rig: Rig, status: int) -> None:
    rig.server.queue.append(Answer(status))
    with pytest.raises(CarrierAuthError):
        await rig.connector.quote(REQUEST)
    assert rig.quotes_seen() == 1
    assert rig.breaker.snapshot().failures == 1


async def test_5xx_is_retried_then_succeeds(rig: Rig) -> None:
    rig.server.queue += [Answer(500), Answer(503)]
    quotes = await rig.connector.quote(REQUEST)
    assert [q.amount_minor for q in quotes] == [1250]
    assert rig.quotes_seen() == 3
    assert [a.attempt for a in rig.audit] == [1, 2]
    assert rig.breaker.snapshot().failures == 0  # the success closed the count


async def test_5xx_gives_up_after_the_attempts(rig: Rig) -> None:
    rig.server.always = Answer(502)
    with pytest.raises(TransientCarrierError) as caught:
        await rig.connector.quote(REQUEST)
    assert caught.value.status == 502
    assert rig.quotes_seen() == 3


async def test_429_waits_as_long_as_retry_after_says(rig: Rig) -> None:
    rig.server.queue.append(Answer(429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    quotes = await rig.connector.quote(REQUEST)
    elapsed = time.monotonic() - started
    assert len(quotes) == 1
    assert 1.0 <= elapsed < 1.8
    assert rig.quotes_seen() == 2
    assert rig.audit[0].kind == "rate_limited"


async def test_a_retry_after_too_long_is_not_waited(rig: Rig) -> None:
    wait = str(int(MAX_HONOURED_RETRY_AFTER_S) + 1)
    rig.server.queue.append(Answer(429, headers={"Retry-After": wait}))
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        await rig.connector.quote(REQUEST)
    assert time.monotonic() - started < 0.5
    assert caught.value.retry_after == MAX_HONOURED_RETRY_AFTER_S + 1
    assert rig.quotes_seen() == 1


async def test_the_time_limit_covers_the_whole_call(
    server: CarrierServer, session: aiohttp.ClientSession
) -> None:
    rig = Rig(server, session, quote_timeout_s=0.3)
    rig.server.always = Answer(200, delay_s=5)
    started = time.monotonic()
    with pytest.raises(CarrierTimeoutError, match=r"within 0\.3 s"):
        await rig.connector.quote(REQUEST)
    assert time.monotonic() - started < 1.0
    assert [a.kind for a in rig.audit] == ["timeout"]
    assert rig.breaker.snapshot().failures == 1


async def test_breaker_opens_after_n_failures_and_closes_through_half_open(rig: Rig) -> None:
    rig.server.always = Answer(500)
    with pytest.raises(TransientCarrierError):
        await rig.connector.quote(REQUEST)  # 3 attempts: threshold 3 reached
    assert rig.breaker.state == "open"
    seen = rig.quotes_seen()
    with pytest.raises(BreakerOpenError) as caught:
        await rig.connector.quote(REQUEST)
    assert caught.value.retry_at is not None
    assert rig.quotes_seen() == seen  # failed fast, no request
    rig.ticks.value += 30.0
    assert rig.breaker.state == "half_open"
    # The probe fails: open again for another cool-down.
    with pytest.raises(TransientCarrierError):
        await rig.connector.quote(REQUEST)
    assert rig.quotes_seen() == seen + 1  # one probe, no retries through an open breaker
    assert rig.breaker.state == "open"
    rig.ticks.value += 30.0
    rig.server.always = None
    assert len(await rig.connector.quote(REQUEST)) == 1
    assert rig.breaker.state == "closed"


async def test_create_job_sends_one_key_on_every_attempt(rig: Rig) -> None:
    quote = (await rig.connector.quote(REQUEST))[0]
    rig.server.queue += [Answer(503), Answer(503)]
    key = carrier_idempotency_key("acme", "order-1")
    job = await rig.connector.create_job(
        JobRequest(quote, "task-1", HERE, HERE, REQUEST.parcels), idempotency_key=key
    )
    sent = [s[2]["Idempotency-Key"] for s in rig.server.seen if s[1].endswith("/deliveries")]
    assert sent == [key, key, key]
    assert len(rig.server.deliveries) == 1
    ref = CarrierJobRef(job.provider_code, job.carrier_job_id, job.tracking_number)
    assert (await rig.connector.get_status(ref)).status == "pending"
    await rig.connector.cancel_job(ref)
    assert (await rig.connector.get_status(ref)).status == "cancelled"
    assert await rig.connector.get_label(ref) is None
    assert await rig.connector.get_manifest(date(2026, 3, 1)) is None
    assert len(key) == 32
    assert key != carrier_idempotency_key("other", "order-1")


class Broken:
    provider_code = "broken"

    async def quote(self, request: QuoteRequest) -> list[Any]:
        raise KeyError("fee")


async def test_a_connector_bug_is_a_counted_carrier_error(rig: Rig) -> None:
    connector = ResilientConnector(Broken(), rig.breaker, audit=rig.record)  # type: ignore[arg-type]
    with pytest.raises(CarrierError, match="connector failed: KeyError"):
        await connector.quote(REQUEST)
    assert rig.breaker.snapshot().failures == 1
    assert rig.audit[0].kind == "error"


async def test_a_failing_audit_never_hides_the_answer(
    server: CarrierServer, session: aiohttp.ClientSession
) -> None:
    async def broken_audit(_: CallbackRow) -> None:
        raise RuntimeError("database down")

    breaker = CircuitBreaker("p", 3, 60, 30)
    connector = ResilientConnector(
        HttpTestConnector(session, server.url, "k"), breaker, audit=broken_audit,
        policy=Policy(attempts=1),
    )  # fmt: skip
    server.queue.append(Answer(400))
    with pytest.raises(CarrierRejectedError):
        await connector.quote(REQUEST)


async def test_a_cancelled_probe_lets_the_next_one_through(rig: Rig) -> None:
    for _ in range(3):
        rig.breaker.failure()
    rig.ticks.value += 30.0
    rig.server.always = Answer(200, delay_s=5)
    task = asyncio.create_task(rig.connector.quote(REQUEST))
    async with asyncio.timeout(2):
        while rig.quotes_seen() == 0:  # noqa: ASYNC110 - the server offers no event to await
            await asyncio.sleep(0.01)
    with pytest.raises(BreakerOpenError):  # the probe is in flight: nobody else passes
        await rig.connector.quote(REQUEST)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rig.server.always = None
    assert len(await rig.connector.quote(REQUEST)) == 1
    assert rig.breaker.state == "closed"
