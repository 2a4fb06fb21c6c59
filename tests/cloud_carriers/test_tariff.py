"""The tariff connector: zones, distance bands, weight bands, files, idempotent jobs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from cloud_sync.carriers.connector import (
    Address,
    CarrierJobRef,
    JobRequest,
    JobStatus,
    Parcel,
    QuoteRequest,
)
from cloud_sync.carriers.errors import CarrierError, CarrierRejectedError
from cloud_sync.carriers.tariff import TariffConnector, distance_km, load_table, parse_table

from .conftest import START, TARIFF

BERLIN = Address("A", "+49", "Unter den Linden 1", "Berlin", "10117", "DE", 52.5170, 13.3889)
POTSDAM = Address("B", "+49", "Am Neuen Markt 1", "Potsdam", "14467", "DE", 52.3906, 13.0645)
NOWHERE = Address("C", "+49", "Dorfstr. 1", "Irgendwo", "99999", "DE")
TABLE = {
    **TARIFF,
    "zones": [
        {"name": "centre", "postcodes": ["101"], "amount_minor": 900, "lead_minutes": 90},
        {"name": "mitte", "postcodes": ["1011"], "amount_minor": 700, "lead_minutes": 60},
        {"name": "austria", "postcodes": ["1"], "amount_minor": 5000, "lead_minutes": 600,
         "country": "AT"},
    ],
    "distance_bands": [
        {"max_km": 50, "amount_minor": 2500, "lead_minutes": 180},
        {"max_km": 10, "amount_minor": 1200, "lead_minutes": 120},
    ],
}  # fmt: skip


def request(dropoff: Address, grams: int = 1000, pickup: Address = BERLIN) -> QuoteRequest:
    return QuoteRequest("t", "acme", pickup, dropoff, (Parcel(grams, 10, 10, 10),), START)


@pytest.fixture
def tariff() -> TariffConnector:
    return TariffConnector(parse_table(TABLE), now=lambda: START)


async def test_longest_postcode_prefix_in_the_country_wins(tariff: TariffConnector) -> None:
    [quote] = await tariff.quote(request(BERLIN))
    assert (quote.amount_minor, quote.currency, quote.service) == (700, "EUR", "own_courier")
    assert quote.eta == START + timedelta(minutes=60)
    assert quote.expires_at == START + timedelta(days=1)
    assert quote.raw == {"basis": "zone:mitte"}


async def test_distance_bands_when_no_zone_matches(tariff: TariffConnector) -> None:
    assert 25 < (distance_km(BERLIN, POTSDAM) or 0) < 30
    [quote] = await tariff.quote(request(POTSDAM))
    assert (quote.amount_minor, quote.raw) == (2500, {"basis": "distance:50km"})
    with pytest.raises(CarrierRejectedError, match="no zone"):
        await tariff.quote(request(NOWHERE))
    far = Address("D", "", "x", "Munich", "80331", "DE", 48.137, 11.575)
    with pytest.raises(CarrierRejectedError):
        await tariff.quote(request(far))


async def test_weight_bands_add_surcharges_and_cap(tariff: TariffConnector) -> None:
    assert (await tariff.quote(request(BERLIN, 12_000)))[0].amount_minor == 1000
    with pytest.raises(CarrierRejectedError, match="over the heaviest"):
        await tariff.quote(request(BERLIN, 25_000))


async def test_jobs_follow_the_idempotency_key(tariff: TariffConnector) -> None:
    [quote] = await tariff.quote(request(BERLIN))
    booking = JobRequest(quote, "t", BERLIN, BERLIN, (Parcel(1, 1, 1, 1),))
    one = await tariff.create_job(booking, idempotency_key="k1")
    assert one == await tariff.create_job(booking, idempotency_key="k1")
    assert one != await tariff.create_job(booking, idempotency_key="k2")
    ref = CarrierJobRef("tariff", one.carrier_job_id, one.tracking_number)
    assert await tariff.get_status(ref) == JobStatus("pending", START)
    await tariff.cancel_job(ref)
    assert await tariff.get_label(ref) is None
    assert await tariff.get_manifest(date(2026, 3, 1)) is None


async def test_a_status_source_reports_our_own_deliveries() -> None:
    done = JobStatus("delivered", START)

    async def source(_: CarrierJobRef) -> JobStatus:
        return done

    connector = TariffConnector(parse_table(TABLE), status_source=source)
    assert await connector.get_status(CarrierJobRef("tariff", "x", "y")) is done


def test_tables_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text(
        'currency = "EUR"\n[[zones]]\nname = "z"\npostcodes = ["1"]\namount_minor = 5\n'
        "lead_minutes = 1\n"
    )
    assert load_table(toml).zones[0].amount_minor == 5
    path = tmp_path / "t.json"
    path.write_text(json.dumps(TABLE))
    assert load_table(path) == parse_table(TABLE)
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "bad.json").write_text("{")
    for name in ("list.json", "bad.json", "missing.json"):
        with pytest.raises(CarrierError, match="tariff table"):
            load_table(tmp_path / name)


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({"currency": "EUR"}, "a tariff needs zones"),
        ({**TARIFF, "currency": "eur"}, "currency"),
        ({**TARIFF, "zones": [{"name": "z"}]}, "zones.0.postcodes"),
        ({**TARIFF, "surprise": 1}, "surprise"),
    ],
)
def test_bad_tables_are_refused_by_field(table: dict[str, object], where: str) -> None:
    with pytest.raises(CarrierError, match=where):
        parse_table(table)
