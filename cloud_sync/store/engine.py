"""The async engine: SQLite pragmas and write locking, error translation, retries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cloud_sync.errors import StoreError, StoreUnavailableError

log = structlog.get_logger(__name__)
T = TypeVar("T")

# A writer waits this long for another process's SQLite write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 10.0
# Serialization failures and deadlocks between workers resolve on a retry; five attempts
# with growing pauses ride out a burst without hiding a database that is really down.
MAX_ATTEMPTS = 5
RETRY_BASE_DELAY_S = 0.02
# SQLSTATEs that mean "run the transaction again": serialization_failure, deadlock_detected.
RETRY_SQLSTATES = frozenset({"40001", "40P01"})
WRITE_OPTION = "lockhub_write"


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:
    # We issue BEGIN ourselves (see _sqlite_on_begin); pysqlite's implicit BEGIN would not
    # take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "synchronous=FULL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_on_begin(connection: sa.Connection) -> None:
    # A writer takes the lock at BEGIN: a read that later upgrades could fail with
    # SQLITE_BUSY halfway through, which no busy timeout can wait out.
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def make_engine(database_url: str) -> AsyncEngine:
    """Create the engine for ``database_url`` (sqlite+aiosqlite or postgresql+asyncpg)."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
        return engine
    return create_async_engine(database_url, pool_pre_ping=True)


def _sqlstate(error: exc.DBAPIError) -> str | None:
    code = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_transient(error: exc.DBAPIError) -> bool:
    """Whether running the transaction again may succeed."""
    if _sqlstate(error) in RETRY_SQLSTATES:
        return True
    return isinstance(error, exc.OperationalError) and "database is locked" in str(error.orig)


class Database:
    """An engine plus the write discipline: one in-process writer for SQLite, retries."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        # SQLite has one writer per file anyway; queueing here avoids busy-wait sleeps.
        self._lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read transaction."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except exc.DBAPIError as error:
            raise translate(error) from error
        except OSError as error:
            raise StoreUnavailableError(f"database unreachable: {error.strerror}") from error

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction, again on a transient failure."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._write_once(work)
            except exc.DBAPIError as error:
                if not is_transient(error) or attempt == MAX_ATTEMPTS:
                    raise translate(error) from error
                log.info("store.retry", attempt=attempt, sqlstate=_sqlstate(error))
            except OSError as error:
                raise StoreUnavailableError(f"database unreachable: {error.strerror}") from error
            await asyncio.sleep(RETRY_BASE_DELAY_S * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write_once(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with contextlib.AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            conn = await stack.enter_async_context(self._writer.begin())
            return await work(conn)
        raise AssertionError("unreachable")  # pragma: no cover - the stack never swallows

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def insert_for(dialect: str, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can say ON CONFLICT on this dialect (both spell it the same way)."""
    return sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)


def translate(error: exc.DBAPIError) -> StoreError:
    """Our error for a driver error: unavailable (retry later) or a plain store failure."""
    if is_transient(error) or isinstance(error, exc.InterfaceError) or error.connection_invalidated:
        return StoreUnavailableError(f"database busy or unreachable: {type(error.orig).__name__}")
    return StoreError(f"database error: {type(error.orig).__name__}")
