"""A fake August cloud on 127.0.0.1, an account with a bridged lock, a scripted pairing UI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.config import LockSection
from gateway.locks.bridges.fake_august import FakeAccount, FakeAugustCloud, FakeLock, FakePin
from gateway.locks.bridges.yale_cloud import YaleCloudLock, YaleCloudOptions, pair
from gateway.locks.credentials import CredentialStore
from gateway.locks.driver import LockEvent
from gateway.locks.registry import DriverContext
from gateway.testing import FakeClock

OWNER_EMAIL = "owner@example.com"
PASSWORD = "correct horse battery"  # noqa: S105 - the fake account's password
LOCK_ID = "A6697750D607098BAE8D6BAA11EF8063"
SERIAL = "L3FHG01234"
OFFLINE_KEY = "00112233445566778899aabbccddeeff"
COURIER_SLOT = 7

Answer = str | Callable[[], str]


class ScriptedUI:
    """A PairUI that answers from a script and records what it was asked and told."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, bool]] = []
        self.said: list[str] = []

    def say(self, message: str) -> None:
        self.said.append(message)

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        self.asked.append((prompt, secret))
        answer = self.answers.pop(0)
        return answer() if callable(answer) else answer


@pytest.fixture
async def cloud(fake_clock: FakeClock) -> AsyncIterator[FakeAugustCloud]:
    """The fake cloud, on the test's clock."""
    fake = FakeAugustCloud(now=fake_clock.now)
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def owner(cloud: FakeAugustCloud) -> FakeAccount:
    return cloud.add_account(OWNER_EMAIL, PASSWORD, phone="+15550100")


@pytest.fixture
def front(cloud: FakeAugustCloud, owner: FakeAccount) -> FakeLock:
    lock = cloud.add_lock(
        LOCK_ID,
        owner=owner,
        serial=SERIAL,
        name="Front door",
        offline_key=OFFLINE_KEY.upper(),
        offline_slot=2,
    )
    lock.pins.append(FakePin("courier-user", COURIER_SLOT, "482913", "Courier", "Seven"))
    return lock


def login_answers(cloud: FakeAugustCloud, identity: str = OWNER_EMAIL) -> list[Answer]:
    """Email, password and the 2FA code the fake cloud 'sent'."""
    return [identity, PASSWORD, lambda: cloud.sent_codes[identity]]


def section(cloud: FakeAugustCloud, **options: object) -> LockSection:
    return LockSection(
        id="front-door",
        driver="yale_cloud",
        options={"api_base": cloud.base_url, **options},
    )


def context(fake_clock: FakeClock, state_dir: Path) -> DriverContext:
    return DriverContext(
        now=fake_clock.now, sleep=fake_clock.sleep, source="test.toml", state_dir=state_dir
    )


@pytest.fixture
async def paired(
    cloud: FakeAugustCloud, front: FakeLock, fake_clock: FakeClock, tmp_path: Path
) -> DriverContext:
    """The lock paired through pair() (password + 2FA); the context holding its token."""
    ctx = context(fake_clock, tmp_path)
    await pair(section(cloud), ctx, ScriptedUI(*login_answers(cloud)))
    return ctx


def make_driver(
    cloud: FakeAugustCloud,
    ctx: DriverContext,
    *,
    request_timeout: float = 2.0,
    operation_timeout: float = 2.0,
) -> YaleCloudLock:
    assert ctx.state_dir is not None
    return YaleCloudLock(
        "front-door",
        store=CredentialStore.open(ctx.state_dir),
        options=YaleCloudOptions(api_base=cloud.base_url),
        now=ctx.now,
        sleep=ctx.sleep,
        request_timeout=request_timeout,
        operation_timeout=operation_timeout,
    )


@pytest.fixture
async def driver(cloud: FakeAugustCloud, paired: DriverContext) -> AsyncIterator[YaleCloudLock]:
    """A started driver on the paired lock (its poller waits on the fake clock)."""
    lock = make_driver(cloud, paired, request_timeout=0.5, operation_timeout=0.3)
    await lock.start()
    yield lock
    await lock.stop()


async def drain(driver: YaleCloudLock) -> list[LockEvent]:
    """Events already queued (without waiting for more)."""
    found: list[LockEvent] = []
    events = driver.events()
    while True:
        try:
            async with asyncio.timeout(0.05):
                found.append(await anext(events))
        except (TimeoutError, StopAsyncIteration):
            return found


async def poller_waiting(clock: FakeClock) -> None:
    """Wait (briefly, in real time) until a poller sleeps on ``clock``."""
    async with asyncio.timeout(1):
        # The poller and the fake cloud are other tasks with no event to wait on: poll.
        while clock.sleepers == 0:  # noqa: ASYNC110
            await asyncio.sleep(0.001)


async def until(condition: Callable[[], bool]) -> None:
    """Wait (at most a second of real time) until ``condition`` holds."""
    async with asyncio.timeout(1):
        # The condition is state of another task (the fake cloud's counters): poll.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.001)
