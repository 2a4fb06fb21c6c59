"""The demo's stage: names, configs, the state the steps share, and their small helpers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from cloud_sync.daemon import Cloud
from cloud_sync.protocol.messages import rfc3339

from ..daemon import Hub
from ..locks.sim import SimLock
from ..sync.settings import SyncSettings
from .broker import Uplink
from .logfiles import LogFiles

HUB_ID = "hub-demo"
TENANT = "acme"
CLOUD_KID = "cloud-demo"
# Three locks: the hub checks codes typed at its terminal for the front door; the parcel
# room's own keypad checks the codes the hub programs into it; the loading dock has no keypad
# and a slow radio, like a BLE lock at the far end of a building.
LOCKS = ("front-door", "parcel-room", "loading-dock")
# Everything happens on loopback within milliseconds; a bound turns a hang into a failure.
WAIT_SECONDS = 10.0
# Loopback ports for the demo's servers: below Linux's ephemeral range (32768-60999) and
# apart from the ports the test suite hands out (20000-31999).
DEMO_PORTS = range(10_000, 20_000)
DEMO_PORT_TRIES = 50
POLL_SECONDS = 0.02
# Polling the cloud's REST API: 10 requests a second stays well under the API key's rate
# limit ([api] rate_limit_per_second, 20 by default), as a dispatcher's client would.
API_POLL_SECONDS = 0.1
# Production backs off up to a minute so a fleet never reconnects in lockstep; one demo hub
# may retry fast, so recovery from the outage takes a second, not a minute.
DEMO_SYNC = SyncSettings(
    backoff_base=0.05,
    backoff_cap=0.5,
    stable_after=1.0,
    resend_after=2.0,
    poll=POLL_SECONDS,
    outbox_check=0.5,
)
CLOUD_BACKOFF_CAP_SECONDS = 0.5
# After an outage: the cloud worker notices a dead connection only when a publish in flight
# (an ack) times out in aiomqtt (10 s), so recovery may take that long plus a reconnect.
RECOVERY_SECONDS = 20.0
# A guesser at another terminal: a second loopback address, so lockouts (per source) hit
# the guesser and not the couriers.
GUESSER_ADDRESS = "127.0.0.2"
# A CLI subprocess imports the whole package: a few seconds on a Pi, well under this.
CLI_TIMEOUT_SECONDS = 30.0

CLOUD_TOML = """# lockhub demo: the cloud service
[cloud]
state_dir = "cloud"
database_url = "sqlite+aiosqlite:///{database}"
signing_kid = "{kid}"

[mqtt]
url = "{url}"
topic_prefix = "{prefix}"
shared_group = "lockhub-demo"
client_id = "{client_id}"
protocol = "{protocol}"

[api]
listen = "127.0.0.1:{port}"

[carriers]
key_file = "cloud/carrier-keys.toml"
"""

# The key ring that seals carrier credentials (`[carriers] key_file`): one fresh key.
CARRIER_KEYS_TOML = """active = "demo-1"

[keys]
demo-1 = "{key}"
"""

GATEWAY_TOML = """# lockhub demo: the hub
[hub]
id = "{hub_id}"
state_dir = "hub"

[mqtt]
url = "{url}"
topic_prefix = "{prefix}"
protocol = "{protocol}"

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[api]
listen = "127.0.0.1:{port}"

[[locks]]
id = "front-door"
driver = "sim"
[locks.options]
has_keypad = false

[[locks]]
id = "parcel-room"
driver = "sim"
[locks.options]
keypad_slots = 10

[[locks]]
id = "loading-dock"
driver = "sim"
[locks.options]
has_keypad = false
latency = 0.15
battery_percent = 35
"""


class DemoFailedError(Exception):
    """A demo step did not check out."""


def expect(condition: bool, what: str) -> None:
    """Raise DemoFailedError naming ``what`` unless ``condition`` holds."""
    if not condition:
        raise DemoFailedError(what)


def free_port() -> int:
    """A loopback TCP port, free now, from below the ephemeral range.

    The demo stops its broker and starts it again on the same port. A port the OS picks
    (bind to 0) is an ephemeral one, which any outgoing connection may take as its local port
    in between; a port from DEMO_PORTS cannot be taken that way.
    """
    for _ in range(DEMO_PORT_TRIES):
        port = secrets.choice(DEMO_PORTS)
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    """An HTTP answer: status, decoded JSON (or raw bytes), headers."""

    status: int
    body: Any
    headers: dict[str, str]
    raw: bytes = b""


@dataclass
class Demo:
    """What the steps share: the work directory, the running parts, HTTP clients, results."""

    workdir: Path
    logs: LogFiles
    mqtt_url: str | None = None
    uplink: Uplink | None = None
    cloud: Cloud | None = None
    hub: Hub | None = None
    http: aiohttp.ClientSession | None = None
    cloud_url: str = ""
    hub_url: str = ""
    api_key: str = ""
    prefix: str = "lockhub/demo"
    # Every code the cloud handed out, to prove none of them landed in a file or a log.
    codes: list[str] = field(default_factory=list)
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[tuple[str, Path]] = field(default_factory=list)
    cleanup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop what the steps started, last first; calling it again does nothing."""
        while self.cleanup:
            await self.cleanup.pop()()

    def running(self) -> tuple[Cloud, Hub]:
        """The running cloud and hub, once the first steps started them."""
        if self.cloud is None or self.hub is None:
            raise DemoFailedError("an earlier step did not start the cloud and the hub")
        return self.cloud, self.hub

    def client(self) -> aiohttp.ClientSession:
        """The HTTP client (created on first use, closed at the end)."""
        if self.http is None:
            self.http = aiohttp.ClientSession()
            self.cleanup.append(self.http.close)
        return self.http

    async def cli(self, *args: str) -> str:
        """Run the real ``lockhub`` CLI in a subprocess (stderr to cli.log); return stdout."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", *args,
            cwd=self.workdir, stdout=asyncio.subprocess.PIPE, stderr=self.logs.stream("cli"),
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise DemoFailedError(f"`lockhub {' '.join(args)}` hung") from None
        logged = self.logs.path("cli")
        expect(process.returncode == 0, f"`lockhub {' '.join(args)}` failed (see {logged})")
        return out.decode()

    async def cloud_api(
        self,
        method: str,
        path: str,
        body: Any = None,
        extra_headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Reply:
        """Call the cloud's REST API as the tenant, with its API key."""
        headers = {"Authorization": f"Bearer {self.api_key}", **(extra_headers or {})}
        url = f"{self.cloud_url}/v1/{TENANT}{path}"
        async with self.client().request(
            method, url, json=body, headers=headers, params=query
        ) as response:
            raw = await response.read()
            decoded: Any = raw
            if response.content_type == "application/json":
                decoded = await response.json()
            return Reply(response.status, decoded, dict(response.headers), raw)

    async def unlock(
        self, lock_id: str, code: str, session: aiohttp.ClientSession | None = None
    ) -> Reply:
        """A code typed at the hub's terminal: POST /v1/locks/{lock_id}/unlock."""
        url = f"{self.hub_url}/v1/locks/{lock_id}/unlock"
        async with (session or self.client()).post(url, json={"code": code}) as response:
            return Reply(response.status, await response.json(), dict(response.headers))

    async def create_window(self, task_id: str, lock_id: str, **extra: Any) -> dict[str, Any]:
        """POST a window for ``task_id`` (open from a minute ago for two hours); keep its code."""
        now = datetime.now(UTC)
        body = {
            "task_id": task_id,
            "hub_id": HUB_ID,
            "lock_id": lock_id,
            "starts_at": rfc3339(now - timedelta(minutes=1)),
            "ends_at": rfc3339(now + timedelta(hours=2)),
            "max_uses": 1,
            **extra,
        }
        reply = await self.cloud_api("POST", "/locks/access-windows", body)
        expect(reply.status == 201, f"the window for {task_id} was refused: {reply.body}")
        expect(reply.headers.get("Cache-Control") == "no-store", "the code's answer is cacheable")
        window: dict[str, Any] = reply.body
        self.codes.append(window["code"])
        self.windows[task_id] = window
        return window

    async def window_on_hub(self, window: dict[str, Any], status: str = "applied") -> None:
        """Wait until the hub holds ``window`` and the cloud has its ``status`` report."""
        _, hub = self.running()
        window_id = window["window_id"]

        async def held() -> bool:
            return hub.engine.cache.get(window_id) is not None

        await self.wait_for(f"window {window_id} to reach the hub", held)

        async def reported() -> bool:
            view = await self.cloud_api("GET", f"/locks/access-windows/{window_id}")
            sync = view.body["sync"]
            return bool(sync["hub_status"] == status and sync["up_to_date"])

        await self.wait_for(
            f"the hub's {status!r} report on {window_id}", reported, API_POLL_SECONDS
        )

    async def task(self, task_id: str) -> dict[str, Any]:
        """GET /v1/{tenant}/tasks/{task_id}."""
        reply = await self.cloud_api("GET", f"/tasks/{task_id}")
        expect(reply.status == 200, f"task {task_id}: {reply.status} {reply.body}")
        task: dict[str, Any] = reply.body
        return task

    async def delivered(self, task_id: str, within: float = WAIT_SECONDS) -> dict[str, Any]:
        """Wait until the cloud shows ``task_id`` delivered; return the task."""

        async def done() -> bool:
            return bool((await self.task(task_id))["status"] == "delivered")

        what = f"the cloud to mark {task_id} delivered"
        await self.wait_for(what, done, API_POLL_SECONDS, within)
        return await self.task(task_id)

    def sim(self, lock_id: str) -> SimLock:
        """The simulated lock behind ``lock_id``."""
        _, hub = self.running()
        driver = hub.drivers[lock_id]
        if not isinstance(driver, SimLock):
            raise DemoFailedError(f"{lock_id} is not a simulated lock")
        return driver

    async def wait_for(
        self,
        what: str,
        check: Callable[[], Awaitable[bool]],
        every: float = POLL_SECONDS,
        within: float = WAIT_SECONDS,
    ) -> float:
        """Poll ``check`` until it holds, for at most ``within`` s; return the seconds taken."""
        started = time.monotonic()
        while not await check():
            expect(time.monotonic() - started < within, f"timed out waiting for {what}")
            await asyncio.sleep(every)
        return time.monotonic() - started
