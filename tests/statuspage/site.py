"""A hub with a day's worth of activity behind a real aiohttp server, for the page's tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestServer

from gateway.api import ApiParts, build_app
from gateway.hubmetrics import hub_metrics
from gateway.statuspage import EventLog
from tests.access.harness import ADMIN_TOKEN, HubHarness, running_hub

# What the page must never show: the codes, ids and names the hub holds for its windows.
CODE = "24682468"
WRONG_CODE = "11119999"
SECRETS = (CODE, WRONG_CODE, "w-page", "task-w-page", "acme", "Sam", "courier-7", ADMIN_TOKEN)


@dataclass
class Site:
    """The hub and the base URL of its local API on a real TCP port."""

    harness: HubHarness
    url: str
    activity: EventLog


@contextlib.asynccontextmanager
async def busy_site(tmp_path: Path) -> AsyncIterator[Site]:
    """A started hub after an unlock, a wrong code, a battery report and a jam."""
    async with running_hub(tmp_path) as hub:
        # The daemon taps each coordinator's events into the hub's log as it builds them.
        activity = hub.hub.activity
        upsert = hub.upsert("w-page", CODE, max_uses=3)
        upsert["courier"] = {"id": "courier-7", "name": "Sam"}
        await hub.send(hub.command("window.upsert", upsert))
        assert (await hub.unlock("front-door", code=CODE))[0] == 200
        assert (await hub.unlock("front-door", code=WRONG_CODE))[0] == 403
        hub.sim("parcel-room").set_battery(14)
        await hub.quiet()
        parts = ApiParts(
            engine=hub.hub.engine,
            intake=hub.hub.intake,
            metrics=hub_metrics(hub.hub.engine, hub.hub.link),
            admin_token=ADMIN_TOKEN,
            ready=hub.hub.ready,
            callbacks=hub.hub.callbacks,
            link=hub.hub.link,
            activity=activity,
        )
        server = TestServer(build_app(parts), host="127.0.0.1")
        await server.start_server()
        try:
            yield Site(hub, str(server.make_url("")).rstrip("/"), activity)
        finally:
            await server.close()
