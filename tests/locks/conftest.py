"""Helpers for the lock tests: virtual time, event collection, instrumented simulated locks."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from gateway.locks import KeypadCode, LockEvent, LockStatus, SimLock
from gateway.testing import FakeClock

T = TypeVar("T")

# Loop turns to let woken tasks run before the clock moves on; a few are enough for our chains.
TURNS = 20


async def settle() -> None:
    """Let every ready task run until it waits again."""
    for _ in range(TURNS):
        await asyncio.sleep(0)


async def run_virtual(clock: FakeClock, work: Awaitable[T], *, step: float = 0.25) -> T:
    """Await ``work`` while moving ``clock`` forward in ``step``s whenever nothing else can run."""
    task = asyncio.ensure_future(work)
    for _ in range(2000):
        await settle()
        if task.done():
            return task.result()
        clock.advance(step)
    task.cancel()
    raise AssertionError("work did not finish within the virtual time budget")


async def take(events: AsyncIterator[LockEvent], count: int) -> list[LockEvent]:
    """The next ``count`` events, failing fast instead of hanging."""
    async with asyncio.timeout(1):
        return [await anext(events) for _ in range(count)]


def keypad_code(clock: FakeClock, code: str = "482913", *, hours: float = 1) -> KeypadCode:
    """A code valid from now for ``hours``."""
    start = clock.now()
    return KeypadCode(code, "courier", start, start + timedelta(hours=hours))


class ProbeLock(SimLock):
    """A SimLock that counts calls and records how many run at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []
        self.active = 0
        self.max_active = 0

    @asynccontextmanager
    async def _probe(self, name: str) -> AsyncIterator[None]:
        self.calls[name] += 1
        self.order.append(name)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            yield
        finally:
            self.active -= 1

    async def unlock(self, request_id: str) -> None:
        async with self._probe("unlock"):
            await super().unlock(request_id)

    async def lock(self, request_id: str) -> None:
        async with self._probe("lock"):
            await super().lock(request_id)

    async def status(self) -> LockStatus:
        async with self._probe("status"):
            return await super().status()

    async def add_keypad_code(self, code: KeypadCode) -> int:
        async with self._probe("add_keypad_code"):
            return await super().add_keypad_code(code)

    async def remove_keypad_code(self, code_id: int) -> None:
        async with self._probe("remove_keypad_code"):
            await super().remove_keypad_code(code_id)


@pytest.fixture
def sim(fake_clock: FakeClock) -> SimLock:
    """A simulated lock on the fake clock, with default options."""
    return SimLock("front-door", now=fake_clock.now, sleep=fake_clock.sleep)
