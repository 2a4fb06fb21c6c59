"""Must-show, end to end: a hub restarted with its wall clock a day behind the floor it
persisted refuses time-bound windows (records say why) until the sync flag appears.

The hub runs as ``run_gateway`` composes it (build_hub, start_hub, serve, stop_hub) on a real
port, with the sync flag file named by ``[access] clock_sync_flag``; only the wall and
monotonic clocks are fakes, since the test has to set the wall clock back a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from gateway.clock import FLOOR_KV_KEY, SYNC_CHECK_CACHE_SECONDS, parse_floor
from gateway.config import GatewayConfig, load_gateway_config
from gateway.daemon import Hub, build_hub, serve, start_hub, stop_hub
from gateway.identity import HubKeys, init_identity
from gateway.testing import FakeClock
from tests.infra.services import free_port

from .conftest import ADMIN_TOKEN

HUB_ID = "hub-clock"
KID = "cloud-1"
CODE = "31415926"
# Waiting for the API or for a record polls this often, at most this many times (5 s in all).
POLL_SECONDS = 0.02
POLLS = 250
CONFIG = """
[hub]
id = "{hub_id}"
state_dir = "{state}"

[mqtt]
url = "mqtt://127.0.0.1:1"

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[api]
listen = "127.0.0.1:{port}"
admin_token_file = "{token_file}"

[access]
clock_sync_flag = "{flag}"

[[locks]]
id = "front-door"
driver = "sim"
"""


class Site:
    """A hub's config, keys and sync flag, and the cloud key that signs its commands."""

    def __init__(self, tmp_path: Path) -> None:
        self.cloud = Ed25519PrivateKey.generate()
        self.flag = tmp_path / "timesync" / "synchronized"
        self.flag.parent.mkdir()
        self.port = free_port()
        token_file = tmp_path / "admin-token"
        token_file.write_text(ADMIN_TOKEN + "\n")
        token_file.chmod(0o600)
        path = tmp_path / "gateway.toml"
        path.write_text(
            CONFIG.format(
                hub_id=HUB_ID,
                state=tmp_path / "state",
                kid=KID,
                key=p.public_key_b64(self.cloud.public_key()),
                port=self.port,
                token_file=token_file,
                flag=self.flag,
            )
        )
        self.config: GatewayConfig = load_gateway_config(path)
        self.keys: HubKeys = init_identity(self.config.hub.state_dir)[0]
        self.base = f"http://127.0.0.1:{self.port}"

    def window(self, starts: datetime, ends: datetime, issued_at: datetime) -> bytes:
        body = {
            "window_id": "win-clock",
            "tenant_id": "acme",
            "task_id": "task-clock",
            "lock_id": "front-door",
            "starts_at": p.rfc3339(starts),
            "ends_at": p.rfc3339(ends),
            "version": 1,
            "max_uses": None,
            "enforcement": "hub",
            "code_sealed": p.seal_code(CODE, "win-clock", self.keys.sealing.public_key()),
        }
        payload = p.command_payload(
            type="window.upsert",
            hub_id=HUB_ID,
            seq=1,
            issued_at=issued_at,
            expires_at=issued_at + timedelta(minutes=10),
            body=body,
        )
        return p.encode_batch([p.sign(payload, self.cloud, KID)])

    def floor(self) -> datetime | None:
        with contextlib.closing(sqlite3.connect(self.config.hub.state_dir / "hub.db")) as db:
            row = db.execute("SELECT value FROM kv WHERE key = ?", (FLOOR_KV_KEY,)).fetchone()
        return None if row is None else parse_floor(row[0])


@contextlib.asynccontextmanager
async def running(site: Site, clock: FakeClock) -> AsyncIterator[Hub]:
    """The daemon's wiring on ``clock``: serving until the block ends, then stopped."""
    hub = await build_hub(site.config, wall=clock.now, monotonic=clock.monotonic, sleep=clock.sleep)
    stop = asyncio.Event()
    try:
        await start_hub(hub)
        task = asyncio.create_task(serve(hub, stop))
        try:
            await until(lambda: healthy(site.base), task)
            yield hub
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    finally:
        await stop_hub(hub)  # persists the floor, as at every shutdown


async def until(check: Any, task: asyncio.Task[None] | None = None) -> None:
    for _ in range(POLLS):
        assert task is None or not task.done(), task.exception() if task else None
        if await check():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError("condition never held")


async def healthy(base: str) -> bool:
    with contextlib.suppress(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(base + "/healthz") as answer:
            return answer.status == 200
    return False


async def post(site: Site, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(site.base + path, **kwargs) as r:
        return r.status, await r.json()


async def unlock(site: Site) -> tuple[int, Any]:
    return await post(site, "/v1/locks/front-door/unlock", json={"code": CODE})


async def bodies(site: Site, hub: Hub, type_: str) -> list[dict[str, Any]]:
    """Bodies of the hub's records of ``type_``, each envelope verified with the hub's key."""
    keys = {HUB_ID: site.keys.signing.public_key()}
    stored = await hub.store.unacked(10_000)
    payloads = [json.loads(p.verify(r.envelope, keys).payload) for r in stored]
    return [payload["body"] for payload in payloads if payload["type"] == type_]


async def test_a_restart_behind_the_floor_denies_until_the_sync_flag_appears(
    tmp_path: Path,
) -> None:
    site = Site(tmp_path)
    first = FakeClock()
    start = first.now()
    site.flag.touch()  # the first run is NTP-synchronized

    async with running(site, first) as hub:
        assert hub.clock.status().source == "ntp"
        batch = site.window(start - timedelta(minutes=5), start + timedelta(days=3), start)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        status, answer = await post(site, "/v1/admin/commands", data=batch, headers=headers)
        assert (status, answer["results"][0]["result"]) == (200, "applied")
        assert (await unlock(site))[0] == 200
        first.advance(3600)
        stopped_at = first.now()
        kinds = ("clock.status", "pod.recorded", "access.denied")
        first_run = {kind: len(await bodies(site, hub, kind)) for kind in kinds}
    assert first_run["access.denied"] == 0
    assert site.floor() == stopped_at  # trusted time, persisted at shutdown

    # The Pi reboots with no RTC and a wall clock a day behind; timesyncd has not synced yet.
    site.flag.unlink()
    second = FakeClock(stopped_at - timedelta(days=1))
    async with running(site, second) as hub:
        assert await unlock(site) == (403, {"error": "denied"})
        (denied,) = await bodies(site, hub, "access.denied")
        assert denied["reason"] == "clock_untrusted"
        assert denied["clock"] == {"synced": False, "source": "behind_floor"}

        async def reported() -> bool:
            alerts = [b["kind"] for b in await bodies(site, hub, "hub.alert")]
            return "clock_behind_floor" in alerts

        # The daemon's clock watcher reports the state it booted in, and alerts.
        await until(reported)
        statuses = [b["clock"] for b in await bodies(site, hub, "clock.status")]
        assert statuses[first_run["clock.status"]] == {"synced": False, "source": "behind_floor"}

        # timesyncd steps the clock to the true time, then raises its flag.
        second.set_wall(stopped_at + timedelta(minutes=2))
        site.flag.touch()
        second.advance(SYNC_CHECK_CACHE_SECONDS + 1)
        status, answer = await unlock(site)
        assert (status, answer["window_id"]) == (200, "win-clock")

        async def recorded() -> bool:
            return len(await bodies(site, hub, "pod.recorded")) > first_run["pod.recorded"]

        await until(recorded)
        (pod,) = (await bodies(site, hub, "pod.recorded"))[first_run["pod.recorded"] :]
        assert pod["clock"] == {"synced": True, "source": "ntp"}
        assert pod["window_id"] == "win-clock"
    floor = site.floor()
    assert floor is not None
    assert floor >= stopped_at + timedelta(minutes=2)
