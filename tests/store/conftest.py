"""Fixtures for the store tests: a hub signer, a settable clock, an open store."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from gateway.store import Store

HUB_ID = "hub-0001"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class SettableClock:
    """A wall clock that only moves when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def signer() -> Signer:
    return Signer(HUB_ID, Ed25519PrivateKey.generate())


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "hub.db"


@pytest.fixture
async def store(db_path: Path, signer: Signer, clock: SettableClock) -> AsyncIterator[Store]:
    async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as opened:
        yield opened


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection for looking at (or damaging) the file from outside."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


# Small synchronous file helpers: async tests call these instead of blocking Path methods.
def companion(path: Path, suffix: str) -> Path:
    """The file SQLite keeps beside ``path`` (``-wal``, ``-shm``, ``-journal``)."""
    return Path(f"{path}{suffix}")


def read(path: Path) -> bytes:
    return path.read_bytes()


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def exists(path: Path) -> bool:
    return path.exists()


def names_in(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())
