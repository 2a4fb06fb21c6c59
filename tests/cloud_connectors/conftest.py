"""Fixtures: fake carrier servers on 127.0.0.1 and the values a booking trades in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from cloud_sync.carriers.connector import Address, Parcel, QuoteRequest
from cloud_sync.carriers.fakes.dhl_express import FakeDhlExpress
from cloud_sync.carriers.fakes.uber import Account, FakeUberDirect
from cloud_sync.carriers.fakes.ups import FakeUps

READY = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
PICKUP = Address(
    name="Lockhub Depot",
    phone="+4930123456",
    street="Alexanderplatz 1",
    city="Berlin",
    postcode="10178",
    country="DE",
    lat=52.5219,
    lng=13.4132,
)
DROPOFF = Address(
    name="Erika Mustermann",
    phone="+4930654321",
    street="Karl-Marx-Allee 90",
    city="Berlin",
    postcode="10243",
    country="DE",
    lat=52.5155,
    lng=13.4420,
)
PARCEL = Parcel(weight_g=1200, length_cm=30, width_cm=20, height_cm=10, description="shoes")


def quote_request(**changes: object) -> QuoteRequest:
    """A Berlin same-city request; ``changes`` replace fields."""
    values: dict[str, object] = {
        "task_id": "task-1",
        "tenant": "acme",
        "pickup": PICKUP,
        "dropoff": DROPOFF,
        "parcels": (PARCEL,),
        "ready_at": READY,
    }
    values.update(changes)
    return QuoteRequest(**values)  # type: ignore[arg-type]


@pytest.fixture
async def uber() -> AsyncIterator[FakeUberDirect]:
    """A running fake Uber Direct."""
    fake = FakeUberDirect(
        Account(
            customer_id="cus_lockhub",
            client_id="client-1",
            client_secret="secret-1",  # noqa: S106 - a fake's credential
            webhook_key=b"uber-signing-key",
        )
    )
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def dhl() -> AsyncIterator[FakeDhlExpress]:
    """A running fake DHL Express XML Services endpoint."""
    fake = FakeDhlExpress("lockhub-site", "dhl-pass")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def ups() -> AsyncIterator[FakeUps]:
    """A running fake UPS API."""
    fake = FakeUps("ups-client", "ups-secret")
    await fake.start()
    yield fake
    await fake.close()
