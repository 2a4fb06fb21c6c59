"""One aiosqlite connection whose transactions never interleave, with errors translated."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar, cast

import aiosqlite

from .errors import StoreClosedError, translate

Params = Sequence[Any]
T = TypeVar("T")


async def on_thread(conn: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` with the raw connection on aiosqlite's own thread: one hop, one await."""
    # aiosqlite has no public call for this: ``_execute`` is how each of its own methods
    # reaches its thread (0.20 to 0.22, the range pyproject allows); tests/store/test_hops.py
    # fails if a release changes it.
    execute = cast(Callable[[Callable[[], T]], Awaitable[T]], conn._execute)
    return await execute(lambda: work(conn._conn))


def _commit_batches(
    raw: sqlite3.Connection, batches: Sequence[tuple[str, Iterable[Params]]]
) -> int:
    """On the SQLite thread: every ``executemany``, then COMMIT, or ROLLBACK and raise."""
    changed = 0
    try:
        # The connection's isolation_level makes the first statement begin the transaction.
        for sql, rows in batches:
            changed += raw.executemany(sql, rows).rowcount
        raw.commit()
    except BaseException:
        with suppress(sqlite3.Error):
            raw.rollback()
        raise
    return changed


class Database:
    """Serialises every statement on one connection; each write commits before the next starts.

    A write transaction runs whole on the SQLite thread, so no other statement can join it;
    the lock orders callers and makes ``close`` wait for the last of them.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._closed = False

    @asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            if self._closed:
                raise StoreClosedError("the store is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise translate(exc) from exc

    async def fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """Run a query and return all its rows."""
        async with self._exclusive() as conn:
            return list(await conn.execute_fetchall(sql, params))

    async def write(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own committed transaction; return the changed row count."""
        return await self.write_many(sql, [params])

    async def write_many(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one ``executemany`` in one committed transaction; return the changed row count."""
        return await self.write_batches([(sql, rows)])

    async def write_batches(self, batches: Sequence[tuple[str, Iterable[Params]]]) -> int:
        """Run several ``executemany`` in ONE committed transaction; return rows changed."""
        # Shielded: the transaction runs to its commit or rollback on the SQLite thread
        # whatever happens to the caller, and the lock is held until it has.
        return await asyncio.shield(self._write_batches(batches))

    async def _write_batches(self, batches: Sequence[tuple[str, Iterable[Params]]]) -> int:
        async with self._exclusive() as conn:
            # BEGIN, every executemany and COMMIT run in one hop onto the SQLite thread
            # (DESIGN.md: each await costs a thread hop).
            return await on_thread(conn, lambda raw: _commit_batches(raw, batches))

    async def close(self) -> None:
        """Close the connection once pending operations finished; closing twice is harmless."""
        async with self._lock:
            if not self._closed:
                self._closed = True
                await self._conn.close()
