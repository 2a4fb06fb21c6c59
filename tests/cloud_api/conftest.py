"""Fixtures: the cloud API over a real CloudService, every test on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.api import build_cloud_app
from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.fields import rfc3339
from cloud_sync.service import CloudService, Outgoing
from cloud_sync.store import CloudStore, migrate
from gateway.identity import HubKeys, init_identity
from tests.cloud.conftest import CLOUD_KID, HUB_ID, START, HubChain, SettableClock
from tests.infra.services import PostgresDatabase, create_database, drop_database

WINDOWS = "/v1/acme/locks/access-windows"


# Every table but Alembic's: what a test may have written.
USER_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1"
ALEMBIC_TABLE = "alembic_version"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy (a migration per test costs more)."""
    path = tmp_path_factory.mktemp("cloud-template") / "cloud.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def api_pg(postgres_db: PostgresDatabase) -> Iterator[PostgresDatabase]:
    """A database of this folder's own, migrated once; each test empties its tables first."""
    db = asyncio.run(create_database())
    try:
        url = db.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
        asyncio.run(migrate(url))
        # Emptying the tables gives each test what a migration gives only while no
        # migration writes rows of its own.
        assert asyncio.run(pg_rows(db.dsn)) == 0, "a migration wrote rows: truncate no more"
        yield db
    finally:
        asyncio.run(drop_database(db))


async def pg_rows(dsn: str, *, truncate: bool = False) -> int:
    """Rows in every table but Alembic's (after emptying them all if ``truncate``)."""
    import asyncpg  # noqa: PLC0415 - only PostgreSQL runs need it

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        tables = [f'"{row[0]}"' for row in await conn.fetch(USER_TABLES, ALEMBIC_TABLE)]
        if truncate:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        counts = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables]  # noqa: S608 - catalog names
        return sum(counts)
    finally:
        await conn.close()


# PostgreSQL comes from the session's server (tests/conftest.py): skipped without one, a
# failure under CI=true.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that touches the store runs on both backends."""
    name = str(request.param)
    # Set up here, outside the event loop that the async fixtures below run in.
    request.getfixturevalue("api_pg" if name == "postgresql" else "sqlite_template")
    return name


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database at the newest revision on the backend."""
    if backend == "sqlite":
        path = tmp_path / "cloud.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    db: PostgresDatabase = request.getfixturevalue("api_pg")
    assert await pg_rows(db.dsn, truncate=True) == 0
    return db.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def cloud_signer() -> Signer:
    return Signer(CLOUD_KID, Ed25519PrivateKey.generate())


@pytest.fixture
def hub_keys(tmp_path: Path) -> HubKeys:
    """A hub's real key files, made as ``lockhub gateway init`` makes them."""
    keys, _ = init_identity(tmp_path / "hub")
    return keys


@dataclass
class Cloud:
    """The API under test, its service, what it published and each tenant's key."""

    client: TestClient[Any, Any]
    service: CloudService
    published: list[list[Outgoing]]
    keys: dict[str, str]
    ready: dict[str, bool] = field(default_factory=dict)

    def auth(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    async def call(
        self, method: str, path: str, tenant: str = "acme", **kwargs: Any
    ) -> tuple[int, Any]:
        """Send a request as ``tenant``; the status and the JSON answer."""
        response = await self.client.request(method, path, headers=self.auth(tenant), **kwargs)
        return response.status, await response.json()

    async def create(self, tenant: str = "acme", **changes: Any) -> ClientResponse:
        """POST a valid window request (with ``changes``) as ``tenant``."""
        body = window_request(**changes)
        path = f"/v1/{tenant}/locks/access-windows"
        return await self.client.post(path, json=body, headers=self.auth(tenant))


def window_request(**changes: Any) -> dict[str, Any]:
    """A valid window request body, two hours from the clock's start."""
    return {
        "task_id": "task-1", "hub_id": HUB_ID, "lock_id": "front-door",
        "starts_at": rfc3339(START), "ends_at": rfc3339(START + timedelta(hours=2)),
        "max_uses": 1, "courier": {"id": "c-7", "name": "Ada"}, **changes,
    }  # fmt: skip


@pytest.fixture
def chain(hub_keys: HubKeys) -> HubChain:
    """Records signed as the hub signs them."""
    return HubChain(Signer(HUB_ID, hub_keys.signing))


@pytest.fixture
async def cloud(
    database_url: str, clock: SettableClock, cloud_signer: Signer, hub_keys: HubKeys
) -> AsyncIterator[Cloud]:
    """The API with hub ``hub-0001`` registered and keys for tenants ``acme`` and ``other``."""
    async with await CloudStore.open(database_url, now=clock) as store:
        service = CloudService(store, cloud_signer, now=clock)
        # The hub serves acme only: "other" cannot create windows on it.
        await service.add_hub(
            HUB_ID, hub_keys.signing_public, hub_keys.sealing_public, tenants=["acme"]
        )
        keys = {tenant: await service.create_api_key(tenant) for tenant in ("acme", "other")}
        published: list[list[Outgoing]] = []
        ready = {"store": True, "mqtt": True}
        app = build_cloud_app(service, published.append, ready=lambda: dict(ready))
        async with TestClient(TestServer(app)) as client:
            yield Cloud(client, service, published, keys, ready)
