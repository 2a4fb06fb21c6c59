"""Jobs and the rate shop below the API: races, stale bookings, withdrawn partners, stats."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import aiohttp
import pytest

from cloud_sync.carriers.connector import Address, CarrierJobRef, JobStatus, Parcel, QuoteRequest
from cloud_sync.carriers.credentials import KeyRing
from cloud_sync.carriers.errors import OfferUnavailableError
from cloud_sync.carriers.jobs import STALE_BOOKING
from cloud_sync.carriers.service import Carriers
from cloud_sync.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_sync.store import carriers as q
from tests.cloud.conftest import SettableClock

from .carrier_server import PROVIDER, Answer, CarrierServer
from .conftest import START, TARIFF, TENANT, section

HERE = Address("A", "+49", "Str. 1", "Berlin", "10115", "DE")
REQUEST = QuoteRequest("task-1", TENANT, HERE, HERE, (Parcel(1000, 1, 1, 1),), START)


async def _offer(carriers: Carriers, server: CarrierServer) -> str:
    await carriers.registry.create(
        TENANT, PROVIDER, "c", credentials={"api_key": "k"}, settings={"base_url": server.url}
    )
    result = await carriers.shop.shop(REQUEST)
    return result.offers[0].offer_id


async def test_concurrent_accepts_with_one_key_book_once(
    carriers: Carriers, servers: list[CarrierServer]
) -> None:
    offer_id = await _offer(carriers, servers[0])
    results = await asyncio.gather(
        *(carriers.jobs.accept(TENANT, offer_id, "same-key") for _ in range(4))
    )
    assert len({job.job_id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(servers[0].deliveries) == 1


async def test_unknown_offer_and_key_reused_for_another_offer(
    carriers: Carriers, servers: list[CarrierServer]
) -> None:
    with pytest.raises(NotFoundError):
        await carriers.jobs.accept(TENANT, "01AAAAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(NotFoundError):
        await carriers.shop.get_offer(TENANT, "01AAAAAAAAAAAAAAAAAAAAAAAA")
    first = await _offer(carriers, servers[0])
    second = (await carriers.shop.shop(REQUEST)).offers[0].offer_id
    await carriers.jobs.accept(TENANT, first, "k")
    with pytest.raises(ConflictError, match="another offer"):
        await carriers.jobs.accept(TENANT, second, "k")


async def test_a_disabled_partner_withdraws_its_offers(
    carriers: Carriers, servers: list[CarrierServer]
) -> None:
    offer_id = await _offer(carriers, servers[0])
    offer = await carriers.shop.get_offer(TENANT, offer_id)
    await carriers.registry.update(TENANT, offer.partner_id, status="disabled")
    with pytest.raises(OfferUnavailableError, match="no longer active"):
        await carriers.jobs.accept(TENANT, offer_id)


async def test_a_stale_booking_is_booked_again_with_the_same_key(
    carriers: Carriers, servers: list[CarrierServer], clock: SettableClock
) -> None:
    offer_id = await _offer(carriers, servers[0])
    now = clock()
    # A booker that died after its claim: the job sits in "booking".
    job, created = await carriers.registry.store.write(
        lambda conn: carriers.jobs._claim(conn, TENANT, offer_id, "k", now)
    )
    assert created
    assert job.status == "booking"
    same, again = await carriers.jobs.accept(TENANT, offer_id, "k")
    assert (same.status, again) == ("booking", False)  # still fresh: someone may be booking
    assert (await carriers.jobs.refresh(TENANT, job.job_id)).status == "booking"
    with pytest.raises(ConflictError, match="booking"):
        await carriers.jobs.cancel(TENANT, job.job_id)
    clock.advance(STALE_BOOKING.total_seconds() + 1)
    booked, _ = await carriers.jobs.accept(TENANT, offer_id, "k")
    assert booked.status == "pending"
    assert booked.carrier_job_id == "del_1"


async def test_failed_jobs_count_against_reliability_and_delivered_falls_back_to_the_quote(
    carriers: Carriers, servers: list[CarrierServer]
) -> None:
    offer_id = await _offer(carriers, servers[0])
    job, _ = await carriers.jobs.accept(TENANT, offer_id)
    servers[0].deliveries[next(iter(servers[0].deliveries))]["status"] = "returned"
    failed = await carriers.jobs.refresh(TENANT, job.job_id)
    assert (failed.status, failed.cost_amount_minor) == ("failed", None)
    other = (await carriers.shop.shop(REQUEST)).offers[0]
    job2, _ = await carriers.jobs.accept(TENANT, other.offer_id)
    late = START + timedelta(hours=5)
    for delivery in servers[0].deliveries.values():
        delivery |= {"status": "delivered", "updated": late.isoformat().replace("+00:00", "Z")}
    done = await carriers.jobs.refresh(TENANT, job2.job_id)
    assert (done.cost_amount_minor, done.cost_components) == (1250, {"quoted": 1250})
    async with carriers.registry.store.read() as conn:
        stats = (await q.get_stats(conn, [other.partner_id]))[other.partner_id]
    assert (stats.delivered, stats.on_time, stats.failed) == (1, 0, 1)
    # The next shop scores this partner below the prior.
    again = await carriers.shop.shop(REQUEST)
    assert again.offers[0].score_parts["reliability"] < 0.8


async def test_a_deleted_partner_leaves_its_jobs_unrefreshable(
    carriers: Carriers, servers: list[CarrierServer]
) -> None:
    offer_id = await _offer(carriers, servers[0])
    job, _ = await carriers.jobs.accept(TENANT, offer_id)
    await carriers.registry.delete(TENANT, job.partner_id)
    with pytest.raises(ConflictError, match="gone"):
        await carriers.jobs.refresh(TENANT, job.job_id)
    assert (await carriers.jobs.get(TENANT, job.job_id)).job_id == job.job_id


async def test_a_worker_that_lost_the_race_keeps_the_final_status(
    carriers: Carriers, servers: list[CarrierServer]
) -> None:
    offer_id = await _offer(carriers, servers[0])
    job, _ = await carriers.jobs.accept(TENANT, offer_id)
    await carriers.jobs.cancel(TENANT, job.job_id)
    late = JobStatus("delivered", START)
    kept = await carriers.registry.store.write(
        lambda conn: carriers.jobs._apply(conn, TENANT, job.job_id, late)
    )
    assert kept.status == "cancelled"


async def test_shop_skips_what_cannot_be_built_and_drops_bad_or_stale_quotes(
    carriers: Carriers, servers: list[CarrierServer], clock: SettableClock
) -> None:
    bad = await carriers.registry.create(
        TENANT, PROVIDER, "b", credentials={"api_key": "k"}, settings={"base_url": servers[1].url}
    )
    # A row sealed under a key this ring lacks (a retired key): reported, not fatal.
    async with carriers.registry.store.read() as conn:
        row = await q.get_partner(conn, TENANT, bad.partner_id)
    assert row is not None
    broken = dataclasses.replace(row, credentials="v1:gone:AAAA:AAAA")
    await carriers.registry.store.write(lambda conn: q.update_partner(conn, broken))
    tariff = await carriers.registry.create(
        TENANT, "tariff", "t", credentials={}, settings={"table": {**TARIFF, "quote_lifetime_s": 1}}
    )
    servers[0].currency = "eur"  # not an ISO 4217 code: the quote is dropped
    await carriers.registry.create(
        TENANT, PROVIDER, "c", credentials={"api_key": "k"}, settings={"base_url": servers[0].url}
    )
    result = await carriers.shop.shop(REQUEST)
    assert [s.reason for s in result.skipped] == ["credentials"]
    assert [o.partner_id for o in result.offers] == [tariff.partner_id]
    assert result.offers[0].expires_at == START + timedelta(seconds=1)
    servers[0].currency = "EUR"
    stale = {
        "kind": "delivery_quote", "id": "dqt_old", "fee": 100, "currency_type": "EUR",
        "dropoff_eta": "2026-03-01T13:00:00Z", "expires": "2026-03-01T11:59:00Z", "duration": 60,
    }  # fmt: skip
    servers[0].always = Answer(200, stale)
    offers = (await carriers.shop.shop(REQUEST)).offers
    assert [o.partner_id for o in offers] == [tariff.partner_id]  # the stale quote is dropped


async def test_registry_refuses_bad_settings(carriers: Carriers) -> None:
    with pytest.raises(InvalidRequestError, match="table object or a table_path"):
        await carriers.registry.create(TENANT, "tariff", "t", credentials={}, settings={})
    with pytest.raises(InvalidRequestError, match="provider"):
        await carriers.registry.create(TENANT, "karrio:nope", "k", credentials={}, settings={})
    with pytest.raises(NotFoundError):
        await carriers.registry.get(TENANT, "nope")
    with pytest.raises(InvalidRequestError, match="tariff table"):
        await carriers.registry.create(
            TENANT, "tariff", "t", credentials={}, settings={"table_path": "/nonexistent.toml"}
        )


async def test_tariff_from_a_table_path(carriers: Carriers, tmp_path: object) -> None:
    import json  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    path = Path(str(tmp_path)) / "tariff.json"
    path.write_text(json.dumps(TARIFF))
    row = await carriers.registry.create(
        TENANT, "tariff", "t", credentials={}, settings={"table_path": str(path)}
    )
    renamed = await carriers.registry.update(TENANT, row.partner_id, name="own couriers")
    assert renamed.name == "own couriers"
    assert carriers.registry.connector(renamed) is carriers.registry.connector(renamed)
    ref = CarrierJobRef("tariff", "x", "y")
    assert (await carriers.registry.connector(renamed).get_status(ref)).status == "pending"


async def test_a_probe_in_flight_makes_the_shop_skip_the_partner(
    store: q.CarrierStore, ring: KeyRing, session: aiohttp.ClientSession,
    servers: list[CarrierServer], clock: SettableClock,
) -> None:  # fmt: skip
    carriers = Carriers.build(
        store, section(breaker_cooldown_s=0.01), ring=ring, session=session, now=clock
    )
    offer_id = await _offer(carriers, servers[0])
    partner_id = (await carriers.shop.get_offer(TENANT, offer_id)).partner_id
    breaker = carriers.registry.board.get(partner_id)
    for _ in range(3):
        breaker.failure()
    await asyncio.sleep(0.02)
    breaker.acquire()  # someone else's probe is in flight
    result = await carriers.shop.shop(REQUEST)
    assert [(s.partner_id, s.reason) for s in result.skipped] == [(partner_id, "breaker_open")]


async def test_a_factory_that_no_longer_accepts_the_settings_is_reported(
    carriers: Carriers, servers: list[CarrierServer]
) -> None:
    row = await carriers.registry.create(
        TENANT, PROVIDER, "c", credentials={"api_key": "k"}, settings={"base_url": servers[0].url}
    )
    gone = dataclasses.replace(row, settings={})  # the factory reads settings["base_url"]
    await carriers.registry.store.write(lambda conn: q.update_partner(conn, gone))
    result = await carriers.shop.shop(REQUEST)
    assert [(s.reason, s.detail) for s in result.skipped] == [
        ("error", "cannot build the test_http connector: KeyError")
    ]
