"""The cloud API with metrics wired in as the daemon wires them, over a real SQLite database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.api import build_cloud_app
from cloud_sync.api.metrics import add_metrics_route
from cloud_sync.api.ratelimit import KeyRateLimiter
from cloud_sync.metrics import ChainSummary, CloudMetrics, read_chain_summary
from cloud_sync.protocol.envelope import Signer
from cloud_sync.service import CloudService, Outgoing
from cloud_sync.store import CloudStore, migrate
from cloud_sync.store.engine import Database, make_engine
from gateway.identity import init_identity
from tests.cloud.conftest import CLOUD_KID, HUB_ID, HubChain, SettableClock

# Three requests per key, then 429: enough for the tests' calls, and a limit one can hit.
BURST = 3


@dataclass
class CloudSite:
    """The API's client, the service and store under it, the metrics and a hub's chain."""

    client: TestClient  # type: ignore[type-arg]
    service: CloudService
    store: CloudStore
    metrics: CloudMetrics
    chain: HubChain
    key: str
    published: list[list[Outgoing]]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def scrape(self) -> str:
        response = await self.client.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        return await response.text()


@contextlib.asynccontextmanager
async def cloud_site(tmp_path: Path) -> AsyncIterator[CloudSite]:
    """A migrated SQLite cloud with hub ``HUB_ID`` registered for tenant ``acme``."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    await migrate(url)
    hub, _ = init_identity(tmp_path / "hub")
    reader = Database(make_engine(url))

    async def chains() -> ChainSummary:
        async with reader.read() as conn:
            return await read_chain_summary(conn)

    published: list[list[Outgoing]] = []
    try:
        clock = SettableClock()
        async with await CloudStore.open(url, now=clock) as store:
            signer = Signer(CLOUD_KID, Ed25519PrivateKey.generate())
            service = CloudService(store, signer, now=clock)
            await service.add_hub(HUB_ID, hub.signing_public, hub.sealing_public, tenants=["acme"])
            key = await service.create_api_key("acme")
            metrics = CloudMetrics(chains, connected=lambda: True)
            app = build_cloud_app(
                service,
                metrics.counting(published.append),
                ready=lambda: {"store": True},
                limiter=KeyRateLimiter(0.001, BURST),
            )
            add_metrics_route(app, metrics)
            async with TestClient(TestServer(app)) as client:
                chain = HubChain(Signer(HUB_ID, hub.signing))
                yield CloudSite(client, service, store, metrics, chain, key, published)
    finally:
        await reader.dispose()
