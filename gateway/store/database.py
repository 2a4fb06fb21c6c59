"""One aiosqlite connection whose transactions never interleave, with errors translated."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import aiosqlite

from .errors import StoreClosedError, translate

Params = Sequence[Any]


class Database:
    """Serialises every statement on one connection; each write commits before the next starts.

    One connection is shared, so a write's transaction stays open across awaits; a lock
    keeps other readers and writers from seeing or joining it before it commits.
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
        # Shielded: a cancelled caller must not leave a half-done transaction on the shared
        # connection for the next writer to commit.
        return await asyncio.shield(self._write_batches(batches))

    async def _write_batches(self, batches: Sequence[tuple[str, Iterable[Params]]]) -> int:
        async with self._exclusive() as conn:
            changed = 0
            try:
                # The connection's isolation_level makes the first statement begin the
                # transaction itself.
                for sql, rows in batches:
                    cursor = await conn.executemany(sql, rows)
                    changed += cursor.rowcount
                await conn.commit()
            except sqlite3.Error:
                with suppress(sqlite3.Error):
                    await conn.rollback()
                raise
            return changed

    async def close(self) -> None:
        """Close the connection once pending operations finished; closing twice is harmless."""
        async with self._lock:
            if not self._closed:
                self._closed = True
                await self._conn.close()
