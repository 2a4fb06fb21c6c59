"""Commands that never reach the hub through the broker arrive by the resync on its hello."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cloud_sync.daemon import Cloud

from .conftest import HUB_ID, Deployment, eventually

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

# mosquitto (log_type all) logs every PUBLISH it takes, with the topic in quotes, and every
# subscription it grants as "<client id> <qos> <filter>".
COMMAND_PUBLISH = f"'lockhub/v1/hubs/{HUB_ID}/down/commands'"
CLOUD_HELLO_SUBSCRIPTION = "lockhub-cloud 1 $share/lockhub-cloud/lockhub/v1/hubs/+/up/hello"


def logged(deployment: Deployment, *parts: str) -> int:
    """How many lines of the broker's log contain every one of ``parts``."""
    log = deployment.broker.log_path.read_text(errors="replace")
    return sum(all(part in line for part in parts) for line in log.splitlines())


async def sync_results(cloud: Cloud) -> list[str]:
    """The results of every ``windows.sync`` the hub reported to the cloud."""
    found = []
    for record in await cloud.store.records(HUB_ID):
        payload = json.loads(record.payload)
        if record.type == "command.result" and payload["body"]["command_type"] == "windows.sync":
            found.append(payload["body"]["result"])
    return found


async def test_a_command_lost_at_the_broker_arrives_by_resync_on_hello(
    deployment: Deployment,
) -> None:
    cloud = await deployment.start_cloud()
    hub = await deployment.start_hub()
    assert hub.link is not None
    link = hub.link

    async def settled() -> bool:
        # The first hello's digest (no windows) matched the cloud's: nothing was resent.
        return link.connected and cloud.worker.connected and await hub.store.outbox_depth() == 0

    await eventually(settled, "the hub and the cloud to connect and settle")
    no_set_yet = hub.engine.reconciled_set_version
    assert no_set_yet is None
    await deployment.stop_link()
    assert not link.connected

    # The hub is away; the cloud creates a window and publishes its command. The broker
    # queues it in the hub's session, in memory only (mosquitto saves on shutdown).
    before = logged(deployment, "Received PUBLISH", COMMAND_PUBLISH)
    now = datetime.now(UTC)
    view, code, outgoing = await cloud.service.create_window(
        "acme",
        "task-resync",
        hub_id=HUB_ID,
        lock_id="front-door",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
    )
    cloud.worker.publish_later(outgoing)

    async def at_the_broker() -> bool:
        return logged(deployment, "Received PUBLISH", COMMAND_PUBLISH) > before

    await eventually(at_the_broker, "the broker to take the window.upsert")
    # A crash loses the queued command: only the cloud's desired state still has the window.
    subscribed = logged(deployment, CLOUD_HELLO_SUBSCRIPTION)
    deployment.broker.kill()
    deployment.broker.start()

    async def cloud_listening() -> bool:
        # The crash lost the worker's session too: a hello published before the worker
        # subscribes again reaches no one, and the hub does not say it twice.
        return logged(deployment, CLOUD_HELLO_SUBSCRIPTION) > subscribed

    await eventually(cloud_listening, "the cloud to subscribe again after the broker's crash")

    deployment.start_link()

    async def applied() -> bool:
        return hub.engine.cache.get(view.window_id) is not None

    await eventually(applied, "the window to arrive by windows.sync after the hub's hello")
    assert hub.engine.reconciled_set_version is not None  # it came in a windows.sync set
    assert logged(deployment, "Received PUBLISH", COMMAND_PUBLISH) > before + 1  # the sync page
    status, body = await deployment.unlock(code)
    assert (status, body["window_id"]) == (200, view.window_id)

    async def reported() -> bool:
        return "applied" in await sync_results(cloud)

    await eventually(reported, "the hub's command.result for the windows.sync")
