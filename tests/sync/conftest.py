"""A real hub (store, engine, sim lock, MQTT link) on a real mosquitto, and the cloud's part."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from gateway.access import records
from gateway.config import load_gateway_config
from gateway.daemon import Hub, build_hub, start_hub, stop_hub
from gateway.identity import HubKeys, init_identity
from gateway.store import StoredRecord
from gateway.sync.link import HubLink
from gateway.sync.settings import SyncSettings
from tests.infra.services import MosquittoBroker

from .cloud import Cloud, running

HUB_ID = "hub-sync"
CLOUD_KID = "cloud-sync"
PREFIX = "lockhub/test"
# Small batches so a few hundred records make several messages; retries in tens of
# milliseconds so broker restarts cost the suite little; a stall resend well inside a test.
FAST = SyncSettings(
    batch_size=50,
    inflight_batches=4,
    backoff_base=0.05,
    backoff_cap=0.5,
    stable_after=1.0,
    resend_after=2.0,
    poll=0.02,
    outbox_check=0.1,
)
CONFIG = """
[hub]
id = "{hub_id}"
state_dir = "state"

[mqtt]
url = "{url}"
topic_prefix = "{prefix}"
protocol = "{protocol}"
keepalive = 5

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[[locks]]
id = "front-door"
driver = "sim"
"""


def write_config(tmp_path: Path, url: str, cloud: Ed25519PrivateKey, protocol: str) -> Path:
    """A hub config for HUB_ID on ``url`` trusting ``cloud``'s key."""
    path = tmp_path / "gateway.toml"
    key = p.public_key_b64(cloud.public_key())
    text = CONFIG.format(
        hub_id=HUB_ID, url=url, prefix=PREFIX, protocol=protocol, kid=CLOUD_KID, key=key
    )
    path.write_text(text)
    return path


@dataclass
class SyncHub:
    """A started hub whose engine and link run as tasks the test can stop and start."""

    hub: Hub
    keys: HubKeys
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    link_task: asyncio.Task[None] | None = None

    @property
    def link(self) -> HubLink:
        """The hub's MQTT link."""
        assert self.hub.link is not None
        return self.hub.link

    def start_link(self) -> None:
        """Run the link (again)."""
        self.link_task = asyncio.create_task(self.link.run())

    async def stop_link(self) -> None:
        """Cancel the link as the daemon does at shutdown."""
        assert self.link_task is not None
        self.link_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.link_task
        self.link_task = None

    async def add_records(
        self, count: int, start: int = 0, *, together: bool = False
    ) -> list[StoredRecord]:
        """Append ``count`` ``hub.alert`` records, one transaction each or all ``together``."""
        clock = self.hub.engine.clock.status().as_record()
        items = [
            records.alert("test_record", "info", f"record {i}", clock, {"i": i})
            for i in range(start, start + count)
        ]
        if together:
            return await self.hub.store.append_records(items)
        stored: list[StoredRecord] = []
        for item in items:
            stored += await self.hub.store.append_records([item])
        return stored

    async def depth(self) -> int:
        """Records waiting for an ack."""
        return await self.hub.store.outbox_depth()


HubFactory = Callable[..., contextlib.AbstractAsyncContextManager[SyncHub]]


@pytest.fixture
def cloud_key() -> Ed25519PrivateKey:
    """The test cloud's command and ack signing key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture
def hub_keys(tmp_path: Path) -> HubKeys:
    """The hub's keys, made before the hub starts so the cloud can subscribe first."""
    return init_identity(tmp_path / "state")[0]


@pytest.fixture
def make_hub(tmp_path: Path, cloud_key: Ed25519PrivateKey) -> HubFactory:
    """Start a hub on a broker URL: ``async with make_hub(url) as hub``."""

    @contextlib.asynccontextmanager
    async def factory(
        url: str, *, protocol: str = "auto", settings: SyncSettings = FAST, link: bool = True
    ) -> AsyncIterator[SyncHub]:
        config = load_gateway_config(write_config(tmp_path, url, cloud_key, protocol))
        keys, _ = init_identity(config.hub.state_dir)
        hub = await build_hub(config, sync_check=lambda: True, sync_settings=settings)
        await start_hub(hub)
        sync_hub = SyncHub(hub, keys, [asyncio.create_task(hub.engine.run())])
        if link:
            sync_hub.start_link()
        try:
            yield sync_hub
        finally:
            if sync_hub.link_task is not None:
                await sync_hub.stop_link()
            for task in sync_hub.tasks:
                task.cancel()
            await asyncio.gather(*sync_hub.tasks, return_exceptions=True)
            await stop_hub(hub)

    return factory


CloudFactory = Callable[..., contextlib.AbstractAsyncContextManager[Cloud]]


@pytest.fixture
def make_cloud(
    mosquitto: MosquittoBroker, cloud_key: Ed25519PrivateKey, hub_keys: HubKeys
) -> CloudFactory:
    """Run the test's cloud against ``mosquitto``: ``async with make_cloud() as cloud``."""

    def factory(**options: Any) -> contextlib.AbstractAsyncContextManager[Cloud]:
        cloud = Cloud(
            host="127.0.0.1",
            port=mosquitto.port,
            prefix=PREFIX,
            hub_id=HUB_ID,
            hub_key=hub_keys.signing.public_key(),
            key=cloud_key,
            kid=CLOUD_KID,
            **options,
        )
        return running(cloud)

    return factory
