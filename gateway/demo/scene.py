"""The demo's stage: embedded configs, the shared state of the steps, small helpers."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.protocol.commands import CommandType

from ..daemon import Hub
from ..identity import HubKeys
from ..locks.sim import SimLock

HUB_ID = "hub-demo"
CLOUD_KID = "cloud-demo"
# Courier codes as the cloud would generate them; they travel only sealed to the hub.
DEMO_CODE = "40718263"
KEYPAD_CODE = "55190427"
# Commands live minutes, not days: a captured command is useless soon after.
COMMAND_TTL = timedelta(minutes=10)
# The lock-side code and the keypad PoD are asynchronous; a healthy hub needs milliseconds.
WAIT_SECONDS = 5.0

CLOUD_TOML = """[cloud]
state_dir = "cloud"
database_url = "sqlite+aiosqlite:///cloud/cloud.db"
signing_kid = "{kid}"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[api]
listen = "127.0.0.1:8081"
"""

GATEWAY_TOML = """[hub]
id = "{hub_id}"
state_dir = "hub"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[api]
listen = "127.0.0.1:{port}"
admin_token_file = "admin-token"

[[locks]]
id = "front-door"
driver = "sim"

[[locks]]
id = "parcel-room"
driver = "sim"
[locks.options]
keypad_slots = 10
"""


class DemoFailedError(Exception):
    """A demo step did not check out."""


def expect(condition: bool, what: str) -> None:
    """Raise DemoFailedError naming ``what`` unless ``condition`` holds."""
    if not condition:
        raise DemoFailedError(what)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Demo:
    """What the steps share: the work directory, the keys, the running hub, an HTTP client."""

    workdir: Path
    cloud_key: Ed25519PrivateKey | None = None
    keys: HubKeys | None = None
    hub: Hub | None = None
    http: aiohttp.ClientSession | None = None
    base_url: str = ""
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    seq: int = 0
    batch: bytes = b""
    files: list[Path] = field(default_factory=list)
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        """Run the real ``lockhub`` CLI in a subprocess; return its stdout."""
        argv = [sys.executable, "-m", "gateway.cli", *args]
        done = subprocess.run(  # noqa: S603 - fixed argv, our own CLI
            argv, cwd=self.workdir, capture_output=True, text=True, check=False
        )
        expect(done.returncode == 0, f"`lockhub {' '.join(args)}` failed: {done.stderr.strip()}")
        return done.stdout

    def parts(self) -> tuple[Ed25519PrivateKey, HubKeys, Hub]:
        """The cloud key, the hub's keys and the running hub, once the first steps made them."""
        if self.cloud_key is None or self.keys is None or self.hub is None:
            raise DemoFailedError("an earlier step did not start the hub")
        return self.cloud_key, self.keys, self.hub

    def command(self, type_: CommandType, body: dict[str, Any]) -> bytes:
        """A signed command batch as the cloud publishes it."""
        cloud_key, _, _ = self.parts()
        self.seq += 1
        now = datetime.now(UTC)
        payload = p.command_payload(
            type=type_,
            hub_id=HUB_ID,
            seq=self.seq,
            issued_at=now,
            expires_at=now + COMMAND_TTL,
            body=body,
        )
        return p.encode_batch([p.sign(payload, cloud_key, CLOUD_KID)])

    def window(self, window_id: str, code: str, **changes: Any) -> dict[str, Any]:
        """A window.upsert body for the front door, open from a minute ago for two hours."""
        _, keys, _ = self.parts()
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "window_id": window_id,
            "tenant_id": "acme",
            "task_id": f"task-{window_id}",
            "lock_id": "front-door",
            "starts_at": p.rfc3339(now - timedelta(minutes=1)),
            "ends_at": p.rfc3339(now + timedelta(hours=2)),
            "version": 1,
            "max_uses": 1,
            "enforcement": "hub",
            "courier": {"id": "courier-7", "name": "Sam"},
        }
        body.update(changes)
        body["code_sealed"] = p.seal_code(code, window_id, keys.sealing.public_key())
        return body

    async def post(
        self, path: str, *, data: bytes | None = None, body: Any = None, admin: bool = False
    ) -> tuple[int, Any, dict[str, str]]:
        """POST to the hub's local API; return status, JSON body and headers."""
        if self.http is None:
            raise DemoFailedError("the HTTP client is not running")
        headers = {"Authorization": f"Bearer {self.admin_token}"} if admin else {}
        async with self.http.post(self.base_url + path, data=data, json=body, headers=headers) as r:
            return r.status, await r.json(), dict(r.headers)

    async def get(self, path: str) -> tuple[int, Any, dict[str, str]]:
        """GET from the hub's local API; return status, JSON body and headers."""
        if self.http is None:
            raise DemoFailedError("the HTTP client is not running")
        async with self.http.get(self.base_url + path) as r:
            return r.status, await r.json(), dict(r.headers)

    def sim(self, lock_id: str) -> SimLock:
        """The simulated lock behind ``lock_id``."""
        _, _, hub = self.parts()
        driver = hub.drivers[lock_id]
        if not isinstance(driver, SimLock):
            raise DemoFailedError(f"{lock_id} is not a simulated lock")
        return driver

    async def records(self) -> list[dict[str, Any]]:
        """The outbox, decoded (verification happens in the cloud step)."""
        _, _, hub = self.parts()
        return [json.loads(r.payload) for r in await hub.store.unacked(10_000)]

    async def wait_for(self, what: str, check: Callable[[], Awaitable[bool]]) -> None:
        """Poll ``check`` until it holds, for at most WAIT_SECONDS."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not await check():
            expect(time.monotonic() < deadline, f"timed out waiting for {what}")
            await asyncio.sleep(0.01)
