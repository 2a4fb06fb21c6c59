"""A whole deployment in one process: a real mosquitto, the cloud service on SQLite or
PostgreSQL, and a hub with a simulated lock and its local API, linked over MQTT."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cloud_sync.api import build_cloud_app
from cloud_sync.config import load_cloud_config
from cloud_sync.daemon import Cloud, build_cloud
from cloud_sync.identity import init_cloud_identity, load_cloud_identity
from cloud_sync.store import migrate
from gateway.api import ApiParts, build_app
from gateway.config import load_gateway_config
from gateway.daemon import Hub, build_hub, start_hub, stop_hub
from gateway.hubmetrics import hub_metrics
from gateway.identity import init_identity
from tests.infra.services import MosquittoBroker, PostgresDatabase, free_port
from tests.sync.conftest import FAST

HUB_ID = "hub-e2e"
CLOUD_KID = "cloud-e2e"
# Everything in these tests happens on loopback within seconds; a bound keeps a broken
# build from hanging until pytest's timeout with nothing said.
WAIT_SECONDS = 60.0

CLOUD_TOML = """
[cloud]
state_dir = "cloud"
database_url = "{database_url}"
signing_kid = "{kid}"

[mqtt]
url = "{url}"
shared_group = "lockhub-cloud"
client_id = "{client_id}"
keepalive = 5

[api]
listen = "127.0.0.1:{port}"
"""

HUB_TOML = """
[hub]
id = "{hub_id}"
state_dir = "hub"

[mqtt]
url = "{url}"
keepalive = 5

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[api]
listen = "127.0.0.1:{port}"

[[locks]]
id = "front-door"
driver = "sim"
"""


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Deployment:
    """The running cloud and hub, and an HTTP client for the hub's local API."""

    tmp_path: Path
    broker: MosquittoBroker
    database_url: str
    cloud: Cloud | None = None
    hub: Hub | None = None
    http: aiohttp.ClientSession | None = None
    hub_url: str = ""
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # The hub link's task, so that a test can take the hub off the broker and back.
    link_task: asyncio.Task[None] | None = None
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start_cloud(self, client_id: str = "lockhub-cloud") -> Cloud:
        """Migrate the database and start one cloud worker."""
        path = self.tmp_path / f"cloud-{client_id}.toml"
        path.write_text(
            CLOUD_TOML.format(
                database_url=self.database_url,
                kid=CLOUD_KID,
                url=self.broker.url,
                client_id=client_id,
                port=free_port(),
            )
        )
        config = load_cloud_config(path)
        init_cloud_identity(config.cloud.state_dir, CLOUD_KID)
        await migrate(config.cloud.database_url)
        cloud = await build_cloud(config)
        # Reconnect within a second of a broker restart (production waits up to 30 s).
        cloud.worker.backoff_cap = 0.5
        worker = asyncio.create_task(cloud.worker.run())
        self.tasks.append(worker)

        async def close() -> None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await cloud.store.close()

        self.cleanups.append(close)
        self.cloud = self.cloud or cloud
        return cloud

    async def start_hub(self) -> Hub:
        """Start the hub with its MQTT link, deadlines and local API."""
        assert self.cloud is not None
        cloud_key = load_cloud_identity(self.cloud.config.cloud.state_dir, CLOUD_KID)
        path = self.tmp_path / "gateway.toml"
        port = free_port()
        path.write_text(
            HUB_TOML.format(
                hub_id=HUB_ID,
                url=self.broker.url,
                kid=CLOUD_KID,
                key=cloud_key.signing_public,
                port=port,
            )
        )
        config = load_gateway_config(path)
        keys, _ = init_identity(config.hub.state_dir)
        await self.cloud.service.add_hub(
            HUB_ID, keys.signing_public, keys.sealing_public, tenants=["acme"]
        )
        hub = self.hub = await build_hub(config, sync_check=lambda: True, sync_settings=FAST)
        await start_hub(hub)
        assert hub.link is not None
        self.tasks.append(asyncio.create_task(hub.engine.run()))
        self.start_link()
        parts = ApiParts(hub.engine, hub.intake, hub_metrics(hub.engine), None, hub.ready)
        runner = web.AppRunner(build_app(parts), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.hub_url = f"http://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession()

        async def close() -> None:
            assert self.http is not None
            await self.http.close()
            await runner.cleanup()
            await stop_hub(hub)

        self.cleanups.append(close)
        return hub

    def start_link(self) -> None:
        """Start the hub's MQTT link (it connects, says hello and pumps its outbox)."""
        assert self.hub is not None
        assert self.hub.link is not None
        self.link_task = asyncio.create_task(self.hub.link.run())
        self.tasks.append(self.link_task)

    async def stop_link(self) -> None:
        """Stop the hub's link: a clean disconnect, its persistent session stays."""
        assert self.link_task is not None
        self.link_task.cancel()
        await asyncio.gather(self.link_task, return_exceptions=True)
        self.tasks.remove(self.link_task)
        self.link_task = None

    async def serve_cloud_api(self) -> tuple[str, str]:
        """Serve the first worker's REST API; return its URL and an API key for ``acme``."""
        assert self.cloud is not None
        cloud = self.cloud
        app = build_cloud_app(cloud.service, cloud.worker.publish_later, ready=cloud.ready)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        self.cleanups.append(runner.cleanup)
        return f"http://127.0.0.1:{port}", await cloud.service.create_api_key("acme")

    async def unlock(self, code: str) -> tuple[int, dict[str, Any]]:
        """A courier's code at the hub's local API."""
        assert self.http is not None
        url = f"{self.hub_url}/v1/locks/front-door/unlock"
        async with self.http.post(url, json={"code": code}) as response:
            return response.status, await response.json()

    async def close(self) -> None:
        """Stop every task, then close parts in reverse order."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for cleanup in reversed(self.cleanups):
            await cleanup()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite in tmp_path, and PostgreSQL with a fresh schema (the session's database)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/cloud.db"
    database: PostgresDatabase = request.getfixturevalue("postgres_db")
    url = database.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    asyncio.run(reset_schema(database.dsn))
    return url


@pytest.fixture
async def deployment(
    database_url: str, tmp_path: Path, mosquitto: MosquittoBroker
) -> AsyncIterator[Deployment]:
    """A deployment on the broker and the database the test was given."""
    deployment = Deployment(tmp_path, mosquitto, database_url)
    try:
        yield deployment
    finally:
        await deployment.close()


async def reset_schema(dsn: str) -> None:
    """Drop and recreate the public schema so each test starts from an empty database."""
    import asyncpg  # noqa: PLC0415 - PostgreSQL runs only

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
