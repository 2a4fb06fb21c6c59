"""Shared fixtures: private mosquitto brokers, a fresh PostgreSQL database, a fake clock; and
a check that no test module leaves an aiosqlite connection open."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest

from gateway.testing import FakeClock
from tests.infra.services import (
    MosquittoBroker,
    PostgresDatabase,
    drop_database,
    missing_service,
    mosquitto_available,
    session_database,
)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A private mosquitto for one test; stop(), kill() and restart() are the test's to call."""
    if not mosquitto_available():
        missing_service("mosquitto binary not found (apt-get install mosquitto)")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture(scope="session")
def postgres_db() -> Iterator[PostgresDatabase]:
    """A PostgreSQL database created for this session (LOCKHUB_TEST_PG_DSN or the local server)."""
    db = session_database()
    try:
        yield db
    finally:
        asyncio.run(drop_database(db))


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock()


# aiosqlite runs each connection on a thread of its own, not a daemon: a connection never
# closed keeps the interpreter from exiting, and a hub's daemon from stopping.
AIOSQLITE_THREAD = "_connection_worker_thread"
# A closed connection's thread ends within moments.
THREAD_END_SECONDS = 2.0


def _sqlite_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if AIOSQLITE_THREAD in t.name and t.is_alive()}


@pytest.fixture(scope="module", autouse=True)
def no_open_sqlite_connection_left() -> Iterator[None]:
    """Fail the module whose tests (or fixtures) leave an aiosqlite connection open."""
    before = _sqlite_threads()
    yield
    deadline = time.monotonic() + THREAD_END_SECONDS
    while (left := _sqlite_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.01)
    if left:
        pytest.fail(
            f"{len(left)} aiosqlite connection(s) left open by this module: "
            "close every store the tests open (async with, or close() in a finally)"
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop connections left open (the check above has failed the run) so the process exits."""
    if not _sqlite_threads():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stop() asks for an event loop there is none of
        for thing in gc.get_objects():
            if isinstance(thing, aiosqlite.Connection):
                thing.stop()
