"""Shared fixtures: private mosquitto brokers, a fresh PostgreSQL database, a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing import FakeClock
from tests.infra.services import (
    MosquittoBroker,
    PostgresDatabase,
    drop_database,
    missing_service,
    mosquitto_available,
    session_database,
)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A private mosquitto for one test; stop(), kill() and restart() are the test's to call."""
    if not mosquitto_available():
        missing_service("mosquitto binary not found (apt-get install mosquitto)")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[PostgresDatabase]:
    """A PostgreSQL database created for this session (LOCKHUB_TEST_PG_DSN or the local server)."""
    db = session_database()
    try:
        yield db
    finally:
        asyncio.run(drop_database(db))


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock()
