"""A whole hub in one process for tests: real store, engine, sim locks and local API.

Nothing touches a network beyond the loopback HTTP of aiohttp's test server; time is a
FakeClock the test moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.protocol.tokens import CourierTokenClaims, issue_courier_token
from gateway.api import ApiParts, build_app
from gateway.config import load_gateway_config
from gateway.daemon import Hub, build_hub, start_hub, stop_hub
from gateway.hubmetrics import hub_metrics
from gateway.identity import HubKeys, init_identity
from gateway.locks.adapter import BleProvider
from gateway.locks.sim import SimLock
from gateway.testing import FakeClock

HUB_ID = "hub-test"
CLOUD_KID = "cloud-test"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"  # noqa: S105 - a test fixture, not a secret
# Waiting for the hub to catch up polls this often, at most this many times (2 s in all).
QUIET_POLL_SECONDS = 0.002
QUIET_POLLS = 1000
CONFIG = """
[hub]
id = "{hub_id}"
state_dir = "state"

[mqtt]
url = "mqtt://127.0.0.1:1"

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[api]
admin_token_file = "admin-token"

[access]
grace_seconds = {grace}
untrusted_clock_policy = "{policy}"

{locks}"""

SIM_LOCKS = """
[[locks]]
id = "front-door"
driver = "sim"

[[locks]]
id = "parcel-room"
driver = "sim"
[locks.options]
keypad_slots = 3
"""


@dataclass
class HubHarness:
    """A started hub with helpers to sign commands and call the local API."""

    hub: Hub
    keys: HubKeys
    cloud: Ed25519PrivateKey
    clock: FakeClock
    client: TestClient  # type: ignore[type-arg]
    synced: list[bool]
    seq: int = 0
    runner: asyncio.Task[None] | None = None
    sent: list[str] = field(default_factory=list)

    def sim(self, lock_id: str) -> SimLock:
        """The simulated lock behind ``lock_id``."""
        driver = self.hub.drivers[lock_id]
        assert isinstance(driver, SimLock)
        return driver

    def upsert(self, window_id: str, code: str, **changes: Any) -> dict[str, Any]:
        """A window.upsert body for a window starting now and lasting an hour."""
        now = self.clock.now()
        body: dict[str, Any] = {
            "window_id": window_id,
            "tenant_id": "acme",
            "task_id": f"task-{window_id}",
            "lock_id": "front-door",
            "starts_at": p.rfc3339(now),
            "ends_at": p.rfc3339(now + timedelta(hours=1)),
            "version": 1,
            "max_uses": None,
            "enforcement": "hub",
            "code_sealed": "",
        }
        body.update(changes)
        body["code_sealed"] = p.seal_code(code, window_id, self.keys.sealing.public_key())
        return body

    def command(
        self,
        type_: str,
        body: dict[str, Any],
        *,
        seq: int | None = None,
        issued_at: datetime | None = None,
    ) -> bytes:
        """A signed command batch as the cloud would publish it (stamped with cloud time)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        now = issued_at or self.clock.now()
        payload = p.command_payload(
            type=type_,  # type: ignore[arg-type]
            hub_id=HUB_ID,
            seq=seq,
            issued_at=now,
            expires_at=now + timedelta(minutes=10),
            body=body,
        )
        return p.encode_batch([p.sign(payload, self.cloud, CLOUD_KID)])

    async def send(self, batch: bytes) -> tuple[int, list[dict[str, Any]]]:
        """POST a signed batch to the admin commands endpoint."""
        response = await self.client.post(
            "/v1/admin/commands", data=batch, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        return response.status, (await response.json())["results"]

    async def unlock(self, lock_id: str, **credential: str) -> tuple[int, dict[str, Any]]:
        """POST /v1/locks/{lock_id}/unlock with a code or token."""
        response = await self.client.post(f"/v1/locks/{lock_id}/unlock", json=credential)
        return response.status, await response.json()

    async def admin(self, path: str) -> Any:
        """GET an admin endpoint."""
        response = await self.client.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert response.status == 200, await response.text()
        return await response.json()

    def token(self, window_id: str, lock_id: str = "front-door", **changes: Any) -> str:
        """A courier token signed by the cloud key, valid for an hour from now."""
        moment = self.clock.now()
        now = int(moment.timestamp())
        claims: dict[str, Any] = {
            "v": 1,
            "jti": p.new_ulid(int(moment.timestamp() * 1000)),  # minted now, as the cloud would
            "aud": HUB_ID,
            "sub": "courier-7",
            "name": "Sam",
            "win": window_id,
            "lock": lock_id,
            "ten": "acme",
            "task": f"task-{window_id}",
            "nbf": now,
            "exp": now + 3600,
            "max": 1,
        }
        claims.update(changes)
        return issue_courier_token(CourierTokenClaims(**claims), p.Signer(CLOUD_KID, self.cloud))

    async def advance(self, seconds: float) -> None:
        """Move time and wait until the hub has handled every deadline it passed."""
        self.clock.advance(seconds)
        await self.quiet()

    async def quiet(self) -> None:
        """Wait (in real time, briefly) until the engine, provisioning and locks are idle."""
        engine = self.hub.engine
        for _ in range(QUIET_POLLS):
            await settle()
            await asyncio.sleep(QUIET_POLL_SECONDS)  # aiosqlite works in its own thread
            if engine.caught_up() and self.locks_idle():
                break
        await engine.provisioner.idle()
        await settle()

    def locks_idle(self) -> bool:
        """No simulated lock has an event waiting and no coordinator is handing one over."""
        for lock_id, coordinator in self.hub.coordinators.items():
            driver = self.hub.drivers[lock_id]
            if coordinator.delivering or (isinstance(driver, SimLock) and driver.events().pending):
                return False
        return True

    async def records(self) -> list[dict[str, Any]]:
        """Every record in the outbox, decoded, in seq order (chain and signatures verified)."""
        stored = await self.hub.store.unacked(100_000)
        keys = {HUB_ID: self.keys.signing.public_key()}
        verified = [p.verify(r.envelope, keys) for r in stored]
        p.verify_chain([v.payload for v in verified])
        return [json.loads(v.payload) for v in verified]


async def settle(rounds: int = 20) -> None:
    """Let every ready task run (a few event-loop turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running_hub(
    tmp_path: Path,
    *,
    start: datetime | None = None,
    grace: int = 0,
    policy: str = "deny",
    synced: bool = True,
    floor: datetime | None = None,
    cloud: Ed25519PrivateKey | None = None,
    locks: str = SIM_LOCKS,
    ble: BleProvider | None = None,
    clock: FakeClock | None = None,
) -> AsyncIterator[HubHarness]:
    """A hub started on ``tmp_path`` with a FakeClock (again, for the same cloud key).

    ``locks`` replaces the two simulated locks' ``[[locks]]`` TOML; ``ble`` the adapter.
    """
    cloud = cloud or Ed25519PrivateKey.generate()
    config_path = tmp_path / "gateway.toml"
    config_path.write_text(
        CONFIG.format(
            hub_id=HUB_ID,
            kid=CLOUD_KID,
            key=p.public_key_b64(cloud.public_key()),
            grace=grace,
            policy=policy,
            locks=locks,
        )
    )
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN)
    token_file.chmod(0o600)
    config = load_gateway_config(config_path)
    keys, _ = init_identity(config.hub.state_dir)
    clock = clock or (FakeClock() if start is None else FakeClock(start))
    flag = [synced]
    hub = await build_hub(
        config,
        wall=clock.now,
        monotonic=clock.monotonic,
        sync_check=lambda: flag[0],
        sleep=clock.sleep,
        ble=ble,
    )
    if floor is not None:
        hub.clock.restore_floor(floor)
    await start_hub(hub)
    parts = ApiParts(
        engine=hub.engine,
        intake=hub.intake,
        metrics=hub_metrics(hub.engine),
        admin_token=ADMIN_TOKEN,
        ready=hub.ready,
        callbacks=hub.callbacks,
        activity=hub.activity,
    )
    client = TestClient(TestServer(build_app(parts)))
    await client.start_server()
    harness = HubHarness(hub, keys, cloud, clock, client, flag)
    harness.runner = asyncio.create_task(hub.engine.run())
    try:
        yield harness
    finally:
        harness.runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await harness.runner
        await client.close()
        await stop_hub(hub)
