"""The real hub link and the real cloud worker through the shipped broker config: mqtts with
client certificates, use_identity_as_username and the per-hub ACL of config/mosquitto/."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_sync.config import load_cloud_config
from cloud_sync.daemon import Cloud, build_cloud
from cloud_sync.identity import init_cloud_identity, load_cloud_identity
from cloud_sync.protocol.chain import verify_chain
from cloud_sync.store import migrate
from gateway.api import ApiParts, build_app
from gateway.config import load_gateway_config
from gateway.daemon import Hub, build_hub, start_hub, stop_hub
from gateway.hubmetrics import hub_metrics
from gateway.identity import init_identity
from tests.broker.conftest import Pki
from tests.e2e.conftest import eventually
from tests.infra.services import MosquittoBroker
from tests.sync.conftest import FAST

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

HUB_ID = "hub-a"  # the CN of its certificate, as the ACL's %u patterns need
WORKER = "lockhub-cloud"  # a cloud worker CN with a user block in the shipped acl
CLOUD_KID = "cloud-broker"
# The broker's certificate names 127.0.0.1, so hostname checking stays on.
URL = "mqtts://127.0.0.1:{port}"
CLOUD_TOML = """
[cloud]
state_dir = "cloud"
database_url = "sqlite+aiosqlite:///{db}"
signing_kid = "{kid}"

[mqtt]
url = "{url}"
ca = "{ca}"
cert = "{cert}"
key = "{key}"
client_id = "{client_id}"
shared_group = "lockhub-cloud"
keepalive = 5
"""
HUB_TOML = """
[hub]
id = "{hub_id}"
state_dir = "hub"

[mqtt]
url = "{url}"
ca = "{ca}"
cert = "{cert}"
key = "{key}"
keepalive = 5

[cloud]
command_keys = {{ "{kid}" = "{cloud_key}" }}

[[locks]]
id = "front-door"
driver = "sim"
"""


async def make_cloud(tmp_path: Path, broker: MosquittoBroker, pki: Pki) -> Cloud:
    """A migrated cloud on SQLite whose worker dials the broker with its own certificate."""
    creds = pki.clients[WORKER]
    path = tmp_path / "cloud.toml"
    path.write_text(
        CLOUD_TOML.format(
            db=tmp_path / "cloud.db",
            kid=CLOUD_KID,
            url=URL.format(port=broker.port),
            ca=pki.ca,
            cert=creds.cert,
            key=creds.key,
            client_id=WORKER,
        )
    )
    config = load_cloud_config(path, env={})
    init_cloud_identity(config.cloud.state_dir, CLOUD_KID)
    await migrate(config.cloud.database_url)
    return await build_cloud(config)


async def make_hub(tmp_path: Path, broker: MosquittoBroker, pki: Pki, cloud: Cloud) -> Hub:
    """A hub (hub-a's certificate) registered with the cloud, started, its link not yet run."""
    creds = pki.clients[HUB_ID]
    cloud_key = load_cloud_identity(cloud.config.cloud.state_dir, CLOUD_KID).signing_public
    path = tmp_path / "gateway.toml"
    path.write_text(
        HUB_TOML.format(
            hub_id=HUB_ID,
            url=URL.format(port=broker.port),
            ca=pki.ca,
            cert=creds.cert,
            key=creds.key,
            kid=CLOUD_KID,
            cloud_key=cloud_key,
        )
    )
    config = load_gateway_config(path, env={})
    keys, _ = init_identity(config.hub.state_dir)
    await cloud.service.add_hub(HUB_ID, keys.signing_public, keys.sealing_public, tenants=["acme"])
    hub = await build_hub(config, sync_check=lambda: True, sync_settings=FAST)
    await start_hub(hub)
    return hub


async def running(stack: AsyncExitStack, *coros: Awaitable[Any]) -> None:
    """Run ``coros`` as tasks until the stack closes."""
    tasks = [asyncio.ensure_future(coro) for coro in coros]

    async def cancel() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(cancel)


@pytest.fixture
async def site(
    tmp_path: Path, broker: MosquittoBroker, pki: Pki
) -> AsyncIterator[tuple[Cloud, Hub, TestClient[Any, Any]]]:
    """The cloud worker and the hub (engine, link, local API) running on the TLS broker."""
    async with AsyncExitStack() as stack:
        cloud = await make_cloud(tmp_path, broker, pki)
        stack.push_async_callback(cloud.store.close)
        hub = await make_hub(tmp_path, broker, pki, cloud)
        stack.push_async_callback(stop_hub, hub)
        assert hub.link is not None
        await running(stack, cloud.worker.run(), hub.engine.run(), hub.link.run())
        parts = ApiParts(hub.engine, hub.intake, hub_metrics(hub.engine), None, hub.ready)
        local = await stack.enter_async_context(TestClient(TestServer(build_app(parts))))
        yield cloud, hub, local


async def test_a_delivery_makes_the_round_trip_through_the_tls_broker_with_its_acl(
    site: tuple[Cloud, Hub, TestClient[Any, Any]], broker: MosquittoBroker
) -> None:
    cloud, hub, local = site
    assert hub.link is not None
    link = hub.link

    async def connected() -> bool:
        return link.connected and cloud.worker.connected

    await eventually(connected, "the hub and the worker to connect over TLS")
    now = datetime.now(UTC)
    view, code, outgoing = await cloud.service.create_window(
        "acme",
        "task-tls",
        hub_id=HUB_ID,
        lock_id="front-door",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        max_uses=1,
    )
    cloud.worker.publish_later(outgoing)

    async def applied() -> bool:
        return hub.engine.cache.get(view.window_id) is not None

    await eventually(applied, "the window.upsert to reach the hub on its down/commands")
    answer = await local.post("/v1/locks/front-door/unlock", json={"code": code})
    assert answer.status == 200
    pod_id = (await answer.json())["pod_id"]

    async def delivered() -> bool:
        return (await cloud.service.get_task("acme", "task-tls")).status == "delivered"

    await eventually(delivered, "the PoD to reach the cloud on the hub's up/records")

    async def acked() -> bool:
        return await hub.store.outbox_depth() == 0

    await eventually(acked, "the cloud's acks to reach the hub on its down/acks")
    task = await cloud.service.get_task("acme", "task-tls")
    assert task.pod is not None
    assert task.pod.pod_id == pod_id
    stored = await cloud.store.records(HUB_ID)
    assert [r.seq for r in stored] == list(range(1, len(stored) + 1))
    verify_chain([r.payload for r in stored])
    # Both sides logged in as their certificates' CNs (the broker's user names for the ACL).
    log = broker.log_path.read_text(errors="replace")
    assert f"as {HUB_ID} (p5, c0, k5, u'{HUB_ID}')" in log
    assert f"as {WORKER} (p" in log
    assert f"u'{WORKER}')" in log
