"""A write transaction is one hop onto aiosqlite's thread: BEGIN to COMMIT (or ROLLBACK) in it."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest

from gateway.store import Store, StoreError
from gateway.store.connection import BUSY_TIMEOUT_S, apply_pragmas, connect
from gateway.store.database import Database
from gateway.testing import lock_event_record

from .conftest import START

_execute = cast(
    Callable[[aiosqlite.Connection, Callable[[], Any]], Awaitable[Any]],
    aiosqlite.Connection._execute,
)


@dataclass
class Hops:
    """Every call onto aiosqlite's thread, and each SQL statement tagged with its call."""

    count: int = 0
    statements: list[tuple[int, str]] = field(default_factory=list)
    _running: threading.local = field(default_factory=threading.local)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        async def counted(conn: aiosqlite.Connection, fn: Callable[..., Any], *args: Any) -> Any:
            hop = self.count
            self.count += 1

            def tagged() -> Any:
                self._running.hop = hop  # on aiosqlite's thread, while this hop runs
                return fn(*args)

            return await _execute(conn, tagged)

        # Every aiosqlite method reaches its thread through _execute, ours included.
        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)

    def trace(self, sql: str) -> None:
        self.statements.append((getattr(self._running, "hop", -1), sql))


async def traced(conn: aiosqlite.Connection, monkeypatch: pytest.MonkeyPatch) -> Hops:
    hops = Hops()
    await conn.set_trace_callback(hops.trace)
    hops.install(monkeypatch)
    return hops


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    conn = await connect(tmp_path / "plain.db", BUSY_TIMEOUT_S)
    await apply_pragmas(conn)
    await conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
    db = Database(conn)
    yield db
    await db.close()


async def test_an_append_is_one_hop_from_begin_to_commit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.append_records([lock_event_record(0)])  # reads the chain head once, then keeps it
    hops = await traced(store._db._conn, monkeypatch)
    stored = await store.append_records(
        [lock_event_record(n) for n in range(1, 4)], completed_tasks={"task-1": START}
    )
    monkeypatch.undo()
    assert [r.seq for r in stored] == [2, 3, 4]
    assert hops.count == 1
    sql = [s for _, s in hops.statements]
    assert (sql[0], sql[-1]) == ("BEGIN IMMEDIATE", "COMMIT")
    # SQLite traces a statement again as each trigger it fires starts: count distinct ones.
    assert len({s for s in sql if s.startswith("INSERT INTO records")}) == 3
    assert {hop for hop, _ in hops.statements} == {0}


async def test_a_failed_transaction_rolls_back_in_the_same_hop(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = await traced(database._conn, monkeypatch)
    batches: list[tuple[str, list[tuple[str, int | None]]]] = [
        ("INSERT INTO t (k, v) VALUES (?, ?)", [("a", 1), ("b", 2)]),
        ("INSERT INTO t (k, v) VALUES (?, ?)", [("c", None)]),  # NOT NULL: the whole lot fails
    ]
    with pytest.raises(StoreError):
        await database.write_batches(batches)
    assert hops.count == 1
    assert (hops.statements[0], hops.statements[-1]) == ((0, "BEGIN IMMEDIATE"), (0, "ROLLBACK"))
    monkeypatch.undo()
    assert await database.fetch("SELECT k FROM t") == []
    assert await database.write_many("INSERT INTO t (k, v) VALUES (?, ?)", [("a", 1)]) == 1


async def test_a_bad_row_source_rolls_back_too(database: Database) -> None:
    def rows() -> Any:
        yield ("a", 1)
        raise ValueError("the caller's rows broke off")

    with pytest.raises(ValueError, match="broke off"):
        await database.write_batches([("INSERT INTO t (k, v) VALUES (?, ?)", rows())])
    assert await database.fetch("SELECT k FROM t") == []
    assert not database._conn.in_transaction
