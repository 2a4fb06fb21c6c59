"""Fixtures: a migrated database on SQLite and PostgreSQL, a key ring, fake carrier servers
on 127.0.0.1, and the carrier desk over them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import cloud_sync.store.billing_schema
import cloud_sync.store.carrier_schema  # noqa: F401
from cloud_sync.carriers.credentials import KeyRing, generate_key
from cloud_sync.carriers.service import Carriers
from cloud_sync.carriers.settings import CarriersSection
from cloud_sync.store import head_revision, migrate
from cloud_sync.store.carriers import CarrierStore
from cloud_sync.store.engine import Database, make_engine
from cloud_sync.store.schema import metadata
from tests.cloud.conftest import SettableClock
from tests.infra.services import PostgresDatabase, create_database, drop_database

from .carrier_server import CarrierServer

TENANT = "acme"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TARIFF = {
    "currency": "EUR",
    "service": "own_courier",
    "zones": [{"name": "centre", "postcodes": ["101"], "amount_minor": 900, "lead_minutes": 90}],
    "weight_bands": [{"max_g": 5000}, {"max_g": 20000, "surcharge_minor": 300}],
}


@pytest.fixture(scope="session")
def carriers_pg(postgres_db: PostgresDatabase) -> Iterator[PostgresDatabase]:
    """A database of this folder's own for the session; each test empties it first."""
    db = asyncio.run(create_database())
    try:
        yield db
    finally:
        asyncio.run(drop_database(db))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend; PostgreSQL skips (or fails under CI) without a server."""
    if request.param == "postgresql":
        request.getfixturevalue("carriers_pg")
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on the backend, migrated to head."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    else:
        import asyncpg  # noqa: PLC0415 - only PostgreSQL runs need it

        db: PostgresDatabase = request.getfixturevalue("carriers_pg")
        url = db.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
        conn = await asyncpg.connect(db.dsn, timeout=5)
        try:
            # Emptying the tables of a database already at head takes a few milliseconds
            # where dropping the schema and migrating again takes most of a second.
            if await _at_head(conn):
                await conn.execute(f"TRUNCATE {', '.join(_tables())} RESTART IDENTITY CASCADE")
                return url
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()
    await migrate(url)
    return url


def _tables() -> list[str]:
    return [f'"{name}"' for name in metadata.tables]


async def _at_head(conn: Any) -> bool:
    exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
    if not exists:
        return False
    version = await conn.fetchval("SELECT version_num FROM alembic_version")
    return bool(version == head_revision())


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[CarrierStore]:
    db = Database(make_engine(database_url))
    try:
        yield CarrierStore(db)
    finally:
        await db.dispose()


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing({"k1": bytes(range(32))}, "k1")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


async def start_server(server: CarrierServer) -> web.AppRunner:
    """Serve ``server`` on 127.0.0.1 and a free port; sets ``server.url``."""
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.url = f"http://127.0.0.1:{port}"
    return runner


@pytest.fixture
async def servers(clock: SettableClock) -> AsyncIterator[list[CarrierServer]]:
    """Three carrier servers (fees 1250, 1100, 1400), running until the test ends."""
    made = [CarrierServer(clock, fee=fee) for fee in (1250, 1100, 1400)]
    runners = [await start_server(server) for server in made]
    try:
        yield made
    finally:
        for server in made:
            server.release.set()
        for runner in runners:
            await runner.cleanup()


def section(**changes: Any) -> CarriersSection:
    """A [carriers] section with short limits for tests."""
    values: dict[str, Any] = {
        # A quote limit a loaded 2-core runner meets with room (the good carriers answer at
        # once; the slow one in tests/cloud_carriers/test_api.py takes 5 s).
        "quote_timeout_s": 1.5, "call_timeout_s": 2.0, "retry_attempts": 2,
        "breaker_threshold": 3, "breaker_window_s": 60.0, "breaker_cooldown_s": 30.0,
        **changes,
    }  # fmt: skip
    return CarriersSection.model_validate(values)


@pytest.fixture
def carriers(
    store: CarrierStore, ring: KeyRing, session: aiohttp.ClientSession, clock: SettableClock
) -> Carriers:
    return Carriers.build(store, section(), ring=ring, session=session, now=clock)


__all__ = ["START", "TARIFF", "TENANT", "generate_key", "section", "start_server"]
