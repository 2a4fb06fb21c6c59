"""A fake Schlage cloud served on 127.0.0.1, and drivers built against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.config import LockSection
from gateway.locks import KeypadCode, LockEvent
from gateway.locks.bridges.fake_schlage import FakeLock, FakeSchlageCloud
from gateway.locks.bridges.schlage import SchlageLock, build
from gateway.locks.registry import DriverContext
from gateway.testing import FakeClock

USERNAME = "courier-site@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 - the fake account's, not a secret
LOCK_ID = "front-door"


@dataclass
class Served:
    """The fake cloud, its first lock and where it listens."""

    cloud: FakeSchlageCloud
    lock: FakeLock
    base: str

    def options(self, **extra: Any) -> dict[str, Any]:
        """Driver options pointing at this fake (no credentials)."""
        found = {"api_base": f"{self.base}/v1", "cognito_endpoint": self.base}
        return found | extra


@dataclass
class ScriptedUI:
    """A PairUI that answers from a script and records what it was told."""

    answers: list[str]
    said: list[str] = field(default_factory=list)
    asked: list[tuple[str, bool]] = field(default_factory=list)

    def say(self, message: str) -> None:
        self.said.append(message)

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        self.asked.append((prompt, secret))
        return self.answers.pop(0)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    cloud = FakeSchlageCloud(username=USERNAME, password=PASSWORD)
    lock = cloud.add_lock("Front Door")
    async with TestServer(cloud.app, host="127.0.0.1") as server:
        yield Served(cloud, lock, str(server.make_url("")).rstrip("/"))


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "schlage.password"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


def wall_now() -> datetime:
    """Real UTC time: the fake cloud stamps its log with it too."""
    return datetime.now(UTC)


@pytest.fixture
def context(tmp_path: Path, fake_clock: FakeClock) -> DriverContext:
    return DriverContext(
        now=wall_now, sleep=fake_clock.sleep, source="test.toml", state_dir=tmp_path / "state"
    )


def section(options: dict[str, Any], lock_id: str = LOCK_ID) -> LockSection:
    return LockSection(id=lock_id, driver="schlage", options=options)


MakeDriver = Callable[..., Awaitable[SchlageLock]]


@pytest.fixture
async def make_driver(
    served: Served, context: DriverContext, password_file: Path
) -> AsyncIterator[MakeDriver]:
    """Build and start drivers for the fake's lock (stopped at the end)."""
    started: list[SchlageLock] = []

    async def make(**options: Any) -> SchlageLock:
        base = {"device_id": served.lock.device_id, "username": USERNAME}
        base["password_file"] = str(password_file)
        driver = build(section(served.options(**(base | options))), context)
        await driver.start()
        started.append(driver)
        return driver

    yield make
    for driver in started:
        await driver.stop()


@pytest.fixture
async def driver(make_driver: MakeDriver) -> SchlageLock:
    return await make_driver()


def courier_code(code: str = "482913", *, hours: float = 2) -> KeypadCode:
    """A code valid from a minute ago for ``hours`` (whole seconds, as Schlage stores them)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return KeypadCode(code, "courier", start, start + timedelta(hours=hours))


async def drain(driver: SchlageLock) -> list[LockEvent]:
    """Every event queued so far (without waiting for more)."""
    events = driver.events()
    found: list[LockEvent] = []
    while True:
        try:
            async with asyncio.timeout(0.05):
                found.append(await anext(events))
        except TimeoutError:
            return found
