"""Fixtures: the cloud API over a real CloudService (SQLite, or PostgreSQL where asked)."""

from __future__ import annotations

import asyncio
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


@pytest.fixture(scope="session")
def api_pg(postgres_db: PostgresDatabase) -> Iterator[PostgresDatabase]:
    """A database of this folder's own for the session; each test empties it first."""
    db = asyncio.run(create_database())
    try:
        yield db
    finally:
        asyncio.run(drop_database(db))


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """SQLite unless a test asks for more with ``parametrize(..., indirect=True)``."""
    name = str(getattr(request, "param", "sqlite"))
    if name == "postgresql":
        request.getfixturevalue("api_pg")
    return name


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on the backend."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    else:
        import asyncpg  # noqa: PLC0415 - only PostgreSQL runs need it

        db: PostgresDatabase = request.getfixturevalue("api_pg")
        conn = await asyncpg.connect(db.dsn, timeout=5)
        try:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        finally:
            await conn.close()
        url = db.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    await migrate(url)
    return url


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
