"""Brute force against the local API cannot beat the lockout schedule: the figure, measured.

A real hub (store, engine, sim locks, HTTP API on loopback) with a FakeClock is attacked for a
simulated day by an attacker who guesses the moment the hub lets them: from one address, and
from as many addresses as they like (each a distinct loopback address, so the hub sees a
distinct client). Every 423 is answered by waiting exactly its ``Retry-After``. The most wrong
guesses the hub checked per lock per day must equal the figure docs/access.md and
config/gateway.example.toml state; the attack goes on for a second day, for which
docs/access.md states a lower figure (lockout levels have not decayed).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import aiohttp

from cloud_sync import protocol as p
from tests.access.harness import HubHarness, running_hub

REPO = Path(__file__).resolve().parents[2]
DAY = timedelta(hours=24)
LOCK = "front-door"
CODE = "48213957"  # the window's real code: 8 digits, never among the guesses (6 digits)


@dataclass
class Source:
    """One attacking client, bound to its own loopback address."""

    address: str
    session: aiohttp.ClientSession

    @classmethod
    def at(cls, address: str) -> Source:
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        return cls(address, aiohttp.ClientSession(connector=connector))

    async def guess(self, hub: HubHarness, code: str) -> tuple[int, float]:
        """POST one code; the status and the seconds Retry-After asks for (0 if none)."""
        url = hub.client.make_url(f"/v1/locks/{LOCK}/unlock")
        async with self.session.post(url, json={"code": code}) as response:
            await response.read()
            return response.status, float(response.headers.get("Retry-After", 0))


def addresses() -> Iterator[str]:
    """Loopback addresses other than the hub's own 127.0.0.1 (Linux routes all of 127/8)."""
    for third, fourth in itertools.product(range(1, 255), range(1, 255)):
        yield f"127.0.{third}.{fourth}"


def guesses() -> Iterator[str]:
    """Wrong codes, all different."""
    return (f"{n:06d}" for n in itertools.count())


async def attack_day(
    hub: HubHarness, pool: Iterator[str], *, many_sources: bool
) -> tuple[int, int]:
    """Guess for a simulated day; return (wrong guesses the hub checked, addresses used)."""
    end = hub.clock.now() + DAY
    codes = guesses()
    source = Source.at(next(pool))
    used, checked = 1, 0
    try:
        while hub.clock.now() < end:
            status, wait = await source.guess(hub, next(codes))
            if status == 423 and many_sources:
                # A fresh address tells this address's lockout from the whole lock's.
                await source.session.close()
                source, used = Source.at(next(pool)), used + 1
                status, wait = await source.guess(hub, next(codes))
            if status == 403:
                checked += 1
            else:
                assert status == 423, status
                hub.clock.advance(wait)
    finally:
        await source.session.close()
    return checked, used


def documented_figures() -> dict[str, tuple[int, ...]]:
    """(one source, many sources[, one source, many sources on later days]) as stated."""
    access = " ".join((REPO / "docs" / "access.md").read_text().split())
    example = (REPO / "config" / "gateway.example.toml").read_text()
    doc = re.search(
        r"at most (\d+) guesses per lock per day from one source and (\d+) from any number"
        r" of sources \((\d+) and (\d+) after the first day\)",
        access,
    )
    toml = re.search(
        r"at most (\d+) guesses per lock per day from one source, (\d+) from many", example
    )
    assert doc is not None
    assert toml is not None
    return {
        "docs/access.md": tuple(int(figure) for figure in doc.groups()),
        "config/gateway.example.toml": tuple(int(figure) for figure in toml.groups()),
    }


@dataclass(frozen=True)
class Attack:
    """What two days of attack on one lock achieved."""

    per_day: tuple[int, int]
    addresses: int
    lockout_sources: list[str]


async def attack(tmp_path: Path, *, many_sources: bool) -> Attack:
    """Attack a fresh hub for two days, then check the right code still works."""
    async with running_hub(tmp_path) as hub:
        ends = p.rfc3339(hub.clock.now() + 3 * DAY)
        body = hub.upsert("w-target", CODE, ends_at=ends)
        assert (await hub.send(hub.command("window.upsert", body)))[0] == 200
        # One source keeps its address for both days; many sources never reuse one.
        pool = addresses() if many_sources else itertools.repeat("127.0.1.1")
        first, used_first = await attack_day(hub, pool, many_sources=many_sources)
        second, used_second = await attack_day(hub, pool, many_sources=many_sources)
        records = await hub.records()
        denied = [r for r in records if r["type"] == "access.denied"]
        lockouts = [r["body"]["source"] for r in records if r["type"] == "access.lockout"]
        # Every checked guess was recorded; none opened the door.
        assert len(denied) == first + second
        assert not [r for r in records if r["type"] == "pod.recorded"]
        # The right code still opens the lock once the lock-wide lockout is over (a lockout
        # holds the attacker's addresses and, briefly, the whole lock: not the courier).
        hub.clock.advance(3600)
        assert (await hub.unlock(LOCK, code=CODE))[0] == 200
    return Attack((first, second), used_first + used_second, lockouts)


async def test_one_source_gets_at_most_the_documented_guesses_per_day(tmp_path: Path) -> None:
    result = await attack(tmp_path, many_sources=False)
    print(f"one source: {result.per_day} guesses checked on days 1 and 2")  # with pytest -s
    figures = documented_figures()
    assert result.per_day == figures["docs/access.md"][0:3:2], figures
    assert result.per_day[0] == figures["config/gateway.example.toml"][0], figures
    assert set(result.lockout_sources) == {"127.0.1.1", "*"}


async def test_many_sources_get_at_most_the_documented_guesses_per_day(tmp_path: Path) -> None:
    result = await attack(tmp_path, many_sources=True)
    print(f"many sources: {result.per_day} guesses on days 1 and 2, {result.addresses} addresses")
    figures = documented_figures()
    assert result.per_day == figures["docs/access.md"][1:4:2], figures
    assert result.per_day[0] == figures["config/gateway.example.toml"][1], figures
    assert result.lockout_sources.count("*") > 0
    # Each address was locked out after its own five guesses: switching is what it takes.
    assert result.addresses >= sum(result.per_day) // 5
