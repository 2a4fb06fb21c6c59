"""The delivery worker against a real receiver: schedule, 410, errors, leases, the loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from standardwebhooks import Webhook

from cloud_sync.store.engine import Database
from cloud_sync.webhooks import endpoints, outbox, verify_standard
from cloud_sync.webhooks.delivery import (
    LEASE,
    MAX_JITTER_FRACTION,
    DeliveryWorker,
    random_jitter,
)
from cloud_sync.webhooks.outbox import RETRY_SCHEDULE, Outcome
from tests.cloud.conftest import SettableClock
from tests.infra.services import free_port

from .conftest import TENANT, Receiver
from .helpers import add_endpoint, deliveries


async def enqueue(
    db: Database, clock: SettableClock, event_type: str = "billing.carrier_cost"
) -> None:
    await db.write(lambda conn: outbox.enqueue(conn, TENANT, event_type, {"n": 1}, clock()))


async def test_the_retry_schedule_is_followed_then_the_delivery_fails(
    db: Database, clock: SettableClock, receiver: Receiver, worker: DeliveryWorker
) -> None:
    assert list(RETRY_SCHEDULE) == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    endpoint = await add_endpoint(db, receiver.url, clock())
    receiver.default = 500
    await enqueue(db, clock)
    sent_at = []
    for delay in RETRY_SCHEDULE:
        clock.advance(delay - 1)
        if delay:  # a second early: nothing is due yet
            assert await worker.run_once() == 0
        clock.advance(1)
        assert await worker.run_once() == 1
        sent_at.append(clock())
    clock.advance(10 * 3600)
    assert await worker.run_once() == 0
    [delivery] = await deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 8, 500)
    assert delivery.next_attempt_at is None
    assert len(receiver.received) == 8
    # One message id on every attempt; each attempt signed at its own time.
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.message_id}
    for request, moment in zip(receiver.received, sent_at, strict=True):
        assert request.headers["webhook-timestamp"] == str(int(moment.timestamp()))
        verify_standard([endpoint.secret], request.body, request.headers, now=moment)


async def test_jitter_is_added_to_each_retry(
    db: Database, clock: SettableClock, receiver: Receiver
) -> None:
    await add_endpoint(db, receiver.url, clock())
    receiver.default = 503
    await enqueue(db, clock)
    worker = DeliveryWorker(db, now=clock, jitter=lambda delay: delay * MAX_JITTER_FRACTION)
    try:
        assert await worker.run_once() == 1
    finally:
        await worker.close()
    [delivery] = await deliveries(db)
    assert delivery.next_attempt_at == clock() + timedelta(seconds=5.5)


def test_random_jitter_stays_within_a_tenth_of_the_delay() -> None:
    values = [random_jitter(300) for _ in range(200)]
    assert all(0 <= value <= 30 for value in values)
    assert len(set(values)) > 1


async def test_a_2xx_delivers_on_the_first_attempt(
    db: Database, clock: SettableClock, receiver: Receiver, worker: DeliveryWorker
) -> None:
    endpoint = await add_endpoint(db, receiver.url, clock())
    receiver.default = 202
    await enqueue(db, clock)
    assert await worker.run_once() == 1
    [request] = receiver.received
    assert request.headers["Content-Type"] == "application/json"
    payload = Webhook(endpoint.secret).verify(request.body, request.headers)
    assert payload == {"type": "billing.carrier_cost", "timestamp": payload["timestamp"],
                       "data": {"n": 1}}  # fmt: skip
    [delivery] = await deliveries(db)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 202)
    clock.advance(3600)
    assert await worker.run_once() == 0


async def test_410_gone_disables_the_endpoint(
    db: Database, clock: SettableClock, receiver: Receiver, worker: DeliveryWorker
) -> None:
    endpoint = await add_endpoint(db, receiver.url, clock())
    receiver.statuses = [410]
    await enqueue(db, clock)
    assert await worker.run_once() == 1
    async with db.read() as conn:
        stored = await endpoints.get(conn, TENANT, endpoint.endpoint_id)
    assert stored is not None
    assert (stored.enabled, stored.disabled_reason) == (False, "gone")
    [delivery] = await deliveries(db)
    assert (delivery.status, delivery.last_status_code) == ("failed", 410)
    # A disabled endpoint is no longer a target, and nothing is sent to it.
    await enqueue(db, clock)
    clock.advance(3600)
    assert await worker.run_once() == 0
    assert len(receiver.received) == 1


async def test_a_pending_delivery_waits_while_its_endpoint_is_disabled(
    db: Database, clock: SettableClock, receiver: Receiver, worker: DeliveryWorker
) -> None:
    endpoint = await add_endpoint(db, receiver.url, clock())
    await enqueue(db, clock)
    await db.write(lambda conn: endpoints.disable(conn, endpoint.endpoint_id, "user", clock()))
    assert await worker.run_once() == 0
    await db.write(lambda conn: endpoints.update(conn, endpoint, clock(), enabled=True))
    assert await worker.run_once() == 1
    assert len(receiver.received) == 1


async def test_a_refused_connection_is_retried(
    db: Database, clock: SettableClock, worker: DeliveryWorker
) -> None:
    await add_endpoint(db, f"http://127.0.0.1:{free_port()}/hooks", clock())
    await enqueue(db, clock)
    assert await worker.run_once() == 1
    [delivery] = await deliveries(db)
    assert delivery.status == "pending"
    assert delivery.last_status_code is None
    assert delivery.last_error == "ClientConnectorError"
    assert delivery.next_attempt_at == clock() + timedelta(seconds=5)


async def test_a_redirect_counts_as_a_failure(
    db: Database, clock: SettableClock, receiver: Receiver, worker: DeliveryWorker
) -> None:
    await add_endpoint(db, receiver.url, clock())
    receiver.statuses = [301]
    await enqueue(db, clock)
    assert await worker.run_once() == 1
    [delivery] = await deliveries(db)
    assert (delivery.status, delivery.last_status_code) == ("pending", 301)


async def test_a_claim_is_leased_so_a_crashed_worker_loses_nothing(
    db: Database, clock: SettableClock, receiver: Receiver, worker: DeliveryWorker
) -> None:
    await add_endpoint(db, receiver.url, clock())
    await enqueue(db, clock)
    # A worker claims the delivery and dies before sending it.
    [(claimed, _)] = await db.write(lambda conn: outbox.claim_due(conn, clock(), 10, LEASE))
    assert await worker.run_once() == 0  # leased: invisible to other workers
    clock.advance(LEASE.total_seconds())
    assert await worker.run_once() == 1  # the lease ran out: sent once
    assert len(receiver.received) == 1
    # The dead worker's late result does not overwrite the newer attempt.
    late = await db.write(
        lambda conn: outbox.record(
            conn,
            claimed,
            Outcome(500, None, 1),
            clock(),
            status="pending",
            step=1,
            next_attempt_at=clock(),
        )
    )
    assert late is False
    [delivery] = await deliveries(db)
    assert (delivery.status, delivery.attempts) == ("delivered", 1)


async def test_the_loop_delivers_when_woken_and_survives_a_database_error(
    db: Database, clock: SettableClock, receiver: Receiver
) -> None:
    await add_endpoint(db, receiver.url, clock())
    naps: list[float] = []

    async def nap(seconds: float) -> None:
        naps.append(seconds)
        await asyncio.sleep(3600)  # only a wake() ends the idle wait

    worker = DeliveryWorker(db, now=clock, sleep=nap)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.05)
        await enqueue(db, clock)
        worker.wake()
        for _ in range(100):
            if receiver.received:
                break
            await asyncio.sleep(0.02)
        assert len(receiver.received) == 1
        assert naps
        assert naps[0] == 1.0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await worker.close()


async def test_a_failing_round_is_logged_and_the_loop_goes_on(
    db: Database, clock: SettableClock
) -> None:
    calls = 0

    def broken_clock() -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("clock broke")
        return clock()

    rounds = asyncio.Event()

    async def nap(_seconds: float) -> None:
        if calls >= 2:
            rounds.set()
        await asyncio.sleep(0)

    worker = DeliveryWorker(db, now=broken_clock, sleep=nap)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(rounds.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await worker.close()
    assert calls >= 2


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_workers_claim_side_by_side_with_skip_locked(
    db: Database, clock: SettableClock, receiver: Receiver
) -> None:
    await add_endpoint(db, receiver.url, clock())
    await add_endpoint(db, receiver.url + "/2", clock())
    await enqueue(db, clock)
    async with db.engine.connect() as first:
        transaction = await first.begin()
        mine = await outbox.claim_due(first, clock(), 1, LEASE)
        # The second worker neither waits for the first nor takes its row.
        theirs = await asyncio.wait_for(
            db.write(lambda conn: outbox.claim_due(conn, clock(), 10, LEASE)), 2
        )
        await transaction.commit()
    assert len(mine) == len(theirs) == 1
    assert mine[0][0].delivery_id != theirs[0][0].delivery_id
