"""A fake bridge, the hub's callback route on a real server, and drivers wired to both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.api import CALLBACK_ROUTE, callback_receiver, json_errors
from gateway.config import LockSection
from gateway.locks.bridges.fake_nuki_bridge import FakeDevice, FakeNukiBridge
from gateway.locks.bridges.nuki_bridge import NukiBridgeLock, build
from gateway.locks.bridges.nuki_bridge_api import AuthMode
from gateway.locks.bridges.nuki_bridge_client import BridgeClient
from gateway.locks.callbacks import CallbackRegistry
from gateway.locks.driver import LockEvent
from gateway.locks.registry import DriverContext

NUKI_ID = 1001
TOKEN = "abc123"  # noqa: S105 - the fake bridge's test token
# Delays of the driver and the coordinator run 20 times faster than written: backoffs stay
# visible in order and ratio while the whole folder runs in seconds.
TIME_SCALE = 0.05


@dataclass
class Sleeps:
    """A scaled sleep that records what was asked for."""

    asked: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(seconds * TIME_SCALE)


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def bridge() -> AsyncIterator[FakeNukiBridge]:
    async with FakeNukiBridge(token=TOKEN, devices=[FakeDevice(NUKI_ID)]) as fake:
        yield fake


@pytest.fixture
def registry() -> CallbackRegistry:
    return CallbackRegistry()


@pytest.fixture
async def hub_api(registry: CallbackRegistry) -> AsyncIterator[str]:
    """The hub's real callback route on 127.0.0.1; yields its http://host:port base."""
    app = web.Application(middlewares=[json_errors])
    app.router.add_post(CALLBACK_ROUTE, callback_receiver(lambda: registry))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client_for(
    bridge: FakeNukiBridge,
    sleeps: Sleeps,
    *,
    token: str | None = TOKEN,
    auth: AuthMode | None = AuthMode.ENCRYPTED,
    **timeouts: float,
) -> BridgeClient:
    return BridgeClient(
        "127.0.0.1", bridge.port, token=token, auth=auth, now=now, sleep=sleeps, **timeouts
    )


def context(tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps) -> DriverContext:
    return DriverContext(
        now=now, sleep=sleeps, source="test.toml", state_dir=tmp_path, callbacks=registry
    )


def section(bridge: FakeNukiBridge, **options: Any) -> LockSection:
    base = {"host": "127.0.0.1", "port": bridge.port, "nuki_id": NUKI_ID}
    return LockSection.model_validate(
        {"id": "front-door", "driver": "nuki_bridge", "options": {**base, **options}}
    )


def token_file(tmp_path: Path, token: str = TOKEN, mode: int = 0o600) -> Path:
    path = tmp_path / "nuki.token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def driver_for(
    bridge: FakeNukiBridge,
    tmp_path: Path,
    registry: CallbackRegistry,
    sleeps: Sleeps,
    *,
    hub: str | None = None,
    lock_id: str = "front-door",
    **options: Any,
) -> NukiBridgeLock:
    """A driver built by ``build`` from options, with a token file and the hub's callback."""
    opts: dict[str, Any] = {"token_file": str(token_file(tmp_path)), "auth": "encrypted"}
    if hub is not None:
        opts["callback_url_base"] = hub
    lock = section(bridge, **{**opts, **options}).model_copy(update={"id": lock_id})
    driver = build(lock, context(tmp_path, registry, sleeps))
    assert isinstance(driver, NukiBridgeLock)
    return driver


async def next_events(driver: NukiBridgeLock, count: int) -> list[LockEvent]:
    events = driver.events()
    async with asyncio.timeout(2):
        return [await anext(events) for _ in range(count)]


async def drained(driver: NukiBridgeLock) -> list[LockEvent]:
    """Stop the driver and return every event it still had queued."""
    await driver.stop()
    async with asyncio.timeout(2):
        return [event async for event in driver.events()]
