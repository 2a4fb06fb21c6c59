"""The retained ``up/status`` is kept fresh: refreshed now and then, and at once on news."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.infra.services import MosquittoBroker

from .cloud import eventually
from .conftest import FAST, CloudFactory, HubFactory

pytestmark = pytest.mark.mqtt


def online(statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statuses if s["state"] == "online"]


async def test_the_status_is_refreshed_with_the_current_outbox_depth(
    mosquitto: MosquittoBroker, make_hub: HubFactory, make_cloud: CloudFactory
) -> None:
    async with make_cloud() as cloud, make_hub(mosquitto.url, link=False) as hub:
        hub.link.status_interval = 0.2
        hub.start_link()
        await eventually(lambda: bool(online(cloud.statuses)), "the first status")
        assert online(cloud.statuses)[0]["health"]["outbox_depth"] == 0
        await hub.add_records(5, together=True)  # the test's cloud does not ack: they wait
        await eventually(
            lambda: online(cloud.statuses)[-1]["health"]["outbox_depth"] == 5,
            "a refreshed status with the outbox depth",
        )
        shown = online(cloud.statuses)
        # One connection: every refresh carries the connect time of the first status.
        assert {s["connected_at"] for s in shown} == {shown[0]["connected_at"]}
        await eventually(
            lambda: hub.link.statuses_published == len(online(cloud.statuses)),
            "the test to have seen every status the hub published",
        )


async def test_an_outbox_alert_is_published_at_once(
    mosquitto: MosquittoBroker, make_hub: HubFactory, make_cloud: CloudFactory
) -> None:
    settings = replace(FAST, max_outbox=10)  # outbox_high at 8 records
    async with (
        make_cloud() as cloud,
        make_hub(mosquitto.url, settings=settings, link=False) as hub,
    ):
        hub.link.status_interval = 3600.0  # no periodic refresh in this test
        hub.start_link()
        await eventually(lambda: bool(online(cloud.statuses)), "the first status")
        assert online(cloud.statuses)[0]["health"]["outbox_alert"] is None
        await hub.add_records(8, together=True)
        await eventually(
            lambda: online(cloud.statuses)[-1]["health"]["outbox_alert"] == "outbox_high",
            "the status with the outbox alert",
        )
        # The alert itself was the news: the first refresh after the connect carries it.
        refreshed = online(cloud.statuses)[1]["health"]
        assert refreshed["outbox_alert"] == "outbox_high"
        assert refreshed["outbox_depth"] >= 8
