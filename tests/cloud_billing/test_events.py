"""Recording carrier costs: once per job, in the caller's transaction, with its webhook."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.billing import InvalidAmountError, record_carrier_cost
from cloud_sync.billing.events import list_events
from cloud_sync.errors import InvalidRequestError
from cloud_sync.store.engine import Database
from tests.cloud.conftest import SettableClock

from .conftest import TENANT, Receiver
from .helpers import add_endpoint, deliveries, event_count, record


async def test_a_second_call_for_the_same_job_is_a_no_op(
    db: Database, clock: SettableClock, receiver: Receiver
) -> None:
    await add_endpoint(db, receiver.url, clock(), ["billing.carrier_cost"])
    await record(db, "job-1", clock(), amount_minor=1234)
    await record(db, "job-1", clock() + timedelta(hours=1), amount_minor=9999)
    async with db.read() as conn:
        events = await list_events(conn, TENANT)
    assert [(e.job_id, e.amount_minor, e.event_type) for e in events] == [
        ("job-1", 1234, "carrier_cost")
    ]
    assert len(events[0].event_id) == 26
    queued = await deliveries(db)
    assert [d.event_type for d in queued] == ["billing.carrier_cost"]
    payload = json.loads(queued[0].payload)
    assert payload["type"] == "billing.carrier_cost"
    assert payload["data"]["event_id"] == events[0].event_id
    assert (payload["data"]["amount"], payload["data"]["currency"]) == ("12.34", "EUR")


async def test_endpoints_that_did_not_subscribe_get_nothing(
    db: Database, clock: SettableClock, receiver: Receiver
) -> None:
    await add_endpoint(db, receiver.url, clock(), ["billing.export.created"])
    await record(db, "job-1", clock())
    assert await deliveries(db) == []
    await record(db, "job-2", clock(), tenant="other")
    assert await event_count(db) == 2


async def test_a_rolled_back_transaction_leaves_no_event_and_no_webhook(
    db: Database, clock: SettableClock, receiver: Receiver
) -> None:
    await add_endpoint(db, receiver.url, clock())

    async def work(conn: AsyncConnection) -> None:
        await record_carrier_cost(
            conn, tenant=TENANT, job_id="job-1", amount_minor=100, currency="EUR",
            components={}, occurred_at=clock(), now=clock(),
        )  # fmt: skip
        raise RuntimeError("the job update failed")

    with pytest.raises(RuntimeError):
        await db.write(work)
    assert await event_count(db) == 0
    assert await deliveries(db) == []


# Input validation happens before any SQL: one backend is enough.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"currency": "eur"}, "currency"),
        ({"amount_minor": True}, "amount_minor"),
        ({"amount_minor": 10**16}, "amount_minor"),
        ({"components": {"base": 1.5}}, "components.base"),
        ({"components": {"": 1}}, "components"),
        ({"components": {f"c{i}": 1 for i in range(33)}}, "components"),
        ({"occurred_at": datetime(2026, 3, 1)}, "occurred_at"),
    ],
)
async def test_invalid_costs_are_refused(
    db: Database, clock: SettableClock, changes: dict[str, object], field: str
) -> None:
    arguments: dict[str, object] = {
        "tenant": TENANT, "job_id": "job-1", "amount_minor": 100, "currency": "EUR",
        "components": {}, "occurred_at": clock(),
    }  # fmt: skip

    async def work(conn: AsyncConnection) -> None:
        await record_carrier_cost(conn, **(arguments | changes))  # type: ignore[arg-type]

    with pytest.raises(InvalidAmountError) as caught:
        await db.write(work)
    assert isinstance(caught.value, InvalidRequestError)
    assert caught.value.field == field
    assert await event_count(db) == 0


async def test_the_wall_clock_stamps_when_no_time_is_given(
    db: Database, clock: SettableClock
) -> None:
    async def work(conn: AsyncConnection) -> None:
        await record_carrier_cost(
            conn, tenant=TENANT, job_id="job-9", amount_minor=1, currency="JPY",
            components={"base": 1}, occurred_at=clock(),
        )  # fmt: skip

    await db.write(work)
    assert await event_count(db) == 1
