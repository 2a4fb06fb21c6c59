"""GET /v1/{tenant}/billing/export: idempotent, each event in exactly one export."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook

from cloud_sync.billing.export import export_range
from cloud_sync.protocol.fields import rfc3339
from cloud_sync.store.engine import Database
from cloud_sync.webhooks.delivery import DeliveryWorker
from tests.cloud.conftest import SettableClock

from .conftest import TENANT, Api, Receiver
from .helpers import add_endpoint, record

PATH = "/v1/acme/billing/export"


def rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def query(start: datetime, end: datetime, **extra: str) -> dict[str, str]:
    return {"from": rfc3339(start), "to": rfc3339(end), **extra}


async def get(api: Api, params: dict[str, str]) -> tuple[int, Any, Any]:
    response = await api.client.get(
        PATH, params=params, headers={"Authorization": f"Bearer {api.key}"}
    )
    return response.status, response.headers, await response.read()


async def test_same_range_twice_gives_the_same_export_and_bytes(
    api: Api, db: Database, clock: SettableClock
) -> None:
    day = clock() - timedelta(days=2)
    await record(db, "job-jpy", day, amount_minor=1500, currency="JPY")
    await record(db, "job-eur", day + timedelta(minutes=1), amount_minor=1234, currency="EUR",
                 components={"base": 1000, "fuel": 234})  # fmt: skip
    await record(db, "job-bhd", day + timedelta(minutes=2), amount_minor=12345, currency="BHD")
    params = query(day - timedelta(days=1), day + timedelta(days=1))
    status, headers, first = await get(api, params)
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    found = rows(first)
    assert [(r["ResourceId"], r["BilledCost"], r["BillingCurrency"]) for r in found] == [
        ("job-jpy", "1500", "JPY"), ("job-eur", "12.34", "EUR"), ("job-bhd", "12.345", "BHD"),
    ]  # fmt: skip
    assert json.loads(found[1]["x_CostComponents"]) == {"base": "10.00", "fuel": "2.34"}
    assert {r["x_ExportId"] for r in found} == {headers["X-Export-Id"]}
    assert headers["X-Export-Event-Count"] == "3"

    # A new event in the same range, recorded later: the repeat answers the same bytes.
    await record(db, "job-late", day + timedelta(minutes=3), now=clock())
    clock.advance(60)
    status, again_headers, again = await get(api, params)
    assert (status, again) == (200, first)
    assert again_headers["X-Export-Id"] == headers["X-Export-Id"]
    assert again_headers["ETag"] == headers["ETag"]

    # The JSONL of that range is the same export: the same events, not exported again.
    status, jsonl_headers, jsonl = await get(api, params | {"format": "jsonl"})
    assert status == 200
    assert jsonl_headers["Content-Type"].startswith("application/jsonl")
    assert jsonl_headers["X-Export-Id"] == headers["X-Export-Id"]
    assert [json.loads(line)["ResourceId"] for line in jsonl.splitlines()] == [
        "job-jpy", "job-eur", "job-bhd",
    ]  # fmt: skip

    # The late event goes into the next export, and only there.
    status, next_headers, following = await get(api, query(day + timedelta(days=1), clock()))
    assert status == 200
    assert next_headers["X-Export-Id"] != headers["X-Export-Id"]
    assert [r["ResourceId"] for r in rows(following)] == ["job-late"]


async def test_an_event_is_in_exactly_one_export(
    api: Api, db: Database, clock: SettableClock
) -> None:
    start = clock() - timedelta(days=10)
    for index in range(6):
        await record(db, f"job-{index}", start + timedelta(days=index, hours=1))
    seen: list[str] = []
    ranges = [(0, 2), (0, 3), (2, 4), (1, 5), (5, 9), (0, 9)]
    for low, high in ranges:
        _, _, body = await get(
            api, query(start + timedelta(days=low), start + timedelta(days=high))
        )
        seen += [r["x_BillingEventId"] for r in rows(body)]
    assert len(seen) == len(set(seen)) == 6


async def test_tenants_see_only_their_own_events(
    api: Api, db: Database, clock: SettableClock
) -> None:
    moment = clock() - timedelta(hours=2)
    await record(db, "job-a", moment)
    await record(db, "job-o", moment, tenant="other")
    params = query(moment - timedelta(hours=1), clock())
    _, _, body = await get(api, params)
    assert [r["ResourceId"] for r in rows(body)] == ["job-a"]
    status, answer = await api.call("GET", "/v1/other/billing/export", other=True, params=params)
    assert status == 200
    assert [r["ResourceId"] for r in rows(answer)] == ["job-o"]
    status, _ = await api.call("GET", PATH, other=True, params=params)
    assert status == 404


# Input validation happens before any SQL: one backend is enough.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-03-01T00:00:00Z"}, "to"),
        ({"from": "yesterday", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "to"),
        ({"from": "2026-03-01T00:00:00Z", "to": "2999-03-01T00:00:00Z"}, "to"),
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", "format": "xml"}, "format"),
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", "page": "2"}, "page"),
    ],
)
async def test_bad_queries_are_a_400_naming_the_field(
    api: Api, params: dict[str, str], field: str
) -> None:
    status, answer = await api.call("GET", PATH, params=params)
    assert status == 400
    assert answer["field"] == field


async def test_each_export_is_pushed_to_the_treasury_endpoint(
    api: Api, db: Database, clock: SettableClock, receiver: Receiver, worker: DeliveryWorker
) -> None:
    endpoint = await add_endpoint(db, receiver.url, clock(), ["billing.export.created"])
    moment = clock() - timedelta(hours=3)
    await record(db, "job-1", moment, amount_minor=250, currency="EUR")
    _, headers, body = await get(api, query(moment - timedelta(hours=1), clock()))
    await get(api, query(moment - timedelta(hours=1), clock()))  # the repeat pushes nothing
    assert await worker.run_once() == 1
    [push] = receiver.received
    payload = Webhook(endpoint.secret).verify(push.body, push.headers)
    assert payload["type"] == "billing.export.created"
    data = payload["data"]
    assert data["export_id"] == headers["X-Export-Id"]
    assert data["event_count"] == 1
    assert base64.b64decode(data["csv_base64"]) == body


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_concurrent_requests_for_one_range_make_one_export(
    db: Database, clock: SettableClock
) -> None:
    """The second request waits on the first's insert and answers its export (SQLite has
    one writer, so requests cannot overlap there)."""
    moment = clock() - timedelta(hours=1)
    await record(db, "job-1", moment)
    start, end = moment - timedelta(hours=1), clock()
    async with db.engine.connect() as first:
        transaction = await first.begin()
        made, created = await export_range(first, TENANT, start, end, clock())
        assert created
        second = asyncio.create_task(
            db.write(lambda conn: export_range(conn, TENANT, start, end, clock()))
        )
        await asyncio.sleep(0.3)
        assert not second.done()  # blocked on the first one's row
        await transaction.commit()
    again, created_again = await second
    assert (again.export_id, again.csv_body, created_again) == (
        made.export_id,
        made.csv_body,
        False,
    )


async def test_explicit_csv_format(api: Api, clock: SettableClock) -> None:
    params = query(clock() - timedelta(days=1), clock(), format="csv")
    status, headers, body = await get(api, params)
    assert (status, headers["X-Export-Event-Count"]) == (200, "0")
    assert body.startswith(b"BilledCost,")


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_overlapping_concurrent_exports_never_share_an_event(
    db: Database, clock: SettableClock
) -> None:
    moment = clock() - timedelta(hours=1)
    await record(db, "job-1", moment)
    await record(db, "job-2", moment + timedelta(minutes=1))
    async with db.engine.connect() as first:
        transaction = await first.begin()
        made, _ = await export_range(first, TENANT, moment - timedelta(hours=1), clock(), clock())
        other = asyncio.create_task(
            db.write(lambda conn: export_range(conn, TENANT, moment, clock(), clock()))
        )
        await asyncio.sleep(0.3)
        await transaction.commit()
    late, created = await other
    assert (made.event_count, late.event_count, created) == (2, 0, True)
