"""Opening the store: migrations, pragmas, refusals, closing."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from gateway.store import (
    MIGRATIONS,
    Store,
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreSchemaTooNewError,
)
from gateway.store.connection import connect
from gateway.testing import lock_event_record as lock_event

from .conftest import HUB_ID, SettableClock, exists, raw

TABLES = {"windows", "locks", "records", "replay_state", "lockouts", "kv"}


async def open_store(path: Path | str, signer: Signer, clock: SettableClock, **kw: float) -> Store:
    return await Store.open(path, signer=signer, hub_id=HUB_ID, now=clock, **kw)


async def test_fresh_file_gets_every_migration_and_the_pragmas(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    async with await open_store(db_path, signer, clock) as store:
        assert store.quarantined is None
        assert store.path == db_path
        assert await store.outbox_depth() == 0
    with raw(db_path) as conn:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert names >= TABLES
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reopen_is_idempotent_and_keeps_data(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    async with await open_store(db_path, signer, clock) as store:
        await store.kv_set("clock.floor", "2026-03-01T12:00:00.000Z")
    for _ in range(2):
        async with await open_store(db_path, signer, clock) as store:
            assert await store.kv_get("clock.floor") == "2026-03-01T12:00:00.000Z"
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_schema_newer_than_the_code_is_refused(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    with raw(db_path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreSchemaTooNewError, match="upgrade lockhub") as info:
        await open_store(db_path, signer, clock)
    assert (info.value.found, info.value.known) == (len(MIGRATIONS) + 1, len(MIGRATIONS))
    assert exists(db_path)  # refused, never quarantined


async def test_failed_migration_rolls_back_its_step(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    with raw(db_path) as conn:
        conn.execute("CREATE TABLE kv (unrelated TEXT)")  # a foreign file in our place
    with pytest.raises(StoreError, match="already exists"):
        await open_store(db_path, signer, clock)
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert names == {"kv"}


async def test_a_database_that_cannot_use_wal_is_refused(
    signer: Signer, clock: SettableClock
) -> None:
    with pytest.raises(StoreError, match="journal_mode=WAL"):
        await open_store(":memory:", signer, clock)


async def test_an_unopenable_path_raises_store_error(
    tmp_path: Path, signer: Signer, clock: SettableClock
) -> None:
    with pytest.raises(StoreError) as info:
        await open_store(tmp_path, signer, clock)  # a directory
    assert type(info.value) is StoreError


async def test_a_locked_database_is_busy_not_corrupt(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    with raw(db_path) as holder:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreBusyError):
            await open_store(db_path, signer, clock, busy_timeout=0.05)
        holder.execute("ROLLBACK")
    assert not list(db_path.parent.glob("*.corrupt-*"))


async def test_signer_must_sign_as_the_hub(db_path: Path, clock: SettableClock) -> None:
    other = Signer("someone-else", Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match="kid"):
        await Store.open(db_path, signer=other, hub_id=HUB_ID, now=clock)


async def test_closed_store_refuses_work_and_closes_twice(store: Store) -> None:
    await store.close()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.outbox_depth()
    with pytest.raises(StoreClosedError):
        await store.append_records([lock_event(1)])


# Without waiting, about 1 in 12 failed opens left a thread that outlived its event loop.
FAILED_OPENS = 300


def test_a_failed_open_leaves_no_thread_behind_its_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args.exc_value))
    missing = tmp_path / "no-such-dir" / "hub.db"

    async def open_once() -> None:
        with pytest.raises(StoreError):
            await connect(missing, busy_timeout=0.05)

    for _ in range(FAILED_OPENS):
        asyncio.run(open_once())  # each run closes its loop at once, as a giving-up caller does
    assert thread_errors == []
    assert not [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
