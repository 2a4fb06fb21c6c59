"""Fixtures: a migrated database on both backends, a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.api import build_cloud_app
from cloud_sync.api.billing import add_billing_routes
from cloud_sync.api.webhooks import add_webhook_routes
from cloud_sync.protocol.envelope import Signer
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore, migrate
from cloud_sync.store.engine import Database, make_engine
from cloud_sync.webhooks.delivery import DeliveryWorker
from tests.cloud.conftest import CLOUD_KID, SettableClock
from tests.infra.services import PostgresDatabase, create_database, drop_database

TENANT = "acme"


def no_jitter(_delay: float) -> float:
    return 0.0


@pytest.fixture(scope="session")
def billing_pg(postgres_db: PostgresDatabase) -> Iterator[PostgresDatabase]:
    """A database of this folder's own for the session, migrated once."""
    db = asyncio.run(create_database())
    try:
        asyncio.run(migrate(asyncpg_url(db)))
        yield db
    finally:
        asyncio.run(drop_database(db))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "cloud.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


def asyncpg_url(db: PostgresDatabase) -> str:
    return db.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend; PostgreSQL skips (or fails under CI) without a server."""
    # Session fixtures set up here, outside the test's event loop (they call asyncio.run).
    request.getfixturevalue("billing_pg" if request.param == "postgresql" else "sqlite_template")
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with no rows on the backend (a copy, or every table emptied:
    migrating for each test would take most of this folder's time)."""
    if backend == "sqlite":
        path = tmp_path / "cloud.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    import asyncpg  # noqa: PLC0415 - only PostgreSQL runs need it

    pg: PostgresDatabase = request.getfixturevalue("billing_pg")
    conn = await asyncpg.connect(pg.dsn, timeout=5)
    try:
        names = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
        tables = ", ".join(f'"{row["tablename"]}"' for row in names)
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    return asyncpg_url(pg)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(make_engine(database_url))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def clock() -> SettableClock:
    """A settable clock starting now (to the second): standardwebhooks checks real time."""
    return SettableClock(datetime.now(UTC).replace(microsecond=0))


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: answers from ``statuses`` (then ``default``) and records."""

    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default: int = 204

    def answer(self) -> int:
        return self.statuses.pop(0) if self.statuses else self.default


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real aiohttp server on 127.0.0.1."""
    box: list[Receiver] = []

    async def handle(request: web.Request) -> web.Response:
        found = box[0]
        found.received.append(Received(request.path, dict(request.headers), await request.read()))
        # No keep-alive: closing the server then never waits on the worker's idle socket.
        return web.Response(status=found.answer(), headers={"Connection": "close"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    box.append(Receiver(str(server.make_url("/hooks"))))
    try:
        yield box[0]
    finally:
        await server.close()


@pytest.fixture
async def worker(db: Database, clock: SettableClock) -> AsyncIterator[DeliveryWorker]:
    made = DeliveryWorker(db, now=clock, jitter=no_jitter)
    try:
        yield made
    finally:
        await made.close()


@dataclass
class Api:
    """The cloud API with the billing and webhook routes, and acme's key."""

    client: TestClient[Any, Any]
    key: str
    other_key: str

    async def call(
        self, method: str, path: str, *, other: bool = False, **kwargs: Any
    ) -> tuple[int, Any]:
        key = self.other_key if other else self.key
        headers = {"Authorization": f"Bearer {key}"}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        body = await response.read()
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, body


@pytest.fixture
async def api(
    database_url: str, db: Database, clock: SettableClock, worker: DeliveryWorker
) -> AsyncIterator[Api]:
    async with await CloudStore.open(database_url, now=clock) as store:
        service = CloudService(store, Signer(CLOUD_KID, Ed25519PrivateKey.generate()), now=clock)
        key, other = await service.create_api_key(TENANT), await service.create_api_key("other")
        app = build_cloud_app(service, lambda _: None, ready=dict)
        add_billing_routes(app, db, now=clock, wake=worker.wake)
        add_webhook_routes(app, db, now=clock, wake=worker.wake, allow_http=True)
        async with TestClient(TestServer(app)) as client:
            yield Api(client, key, other)
