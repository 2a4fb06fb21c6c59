"""Opening the SQLite file: integrity check, quarantine of a corrupt file, pragmas."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aiosqlite
import structlog

from .errors import StoreCorruptError, StoreError, translate

log = structlog.get_logger(__name__)

# A backup or an operator's sqlite3 shell may hold the lock for a moment; waiting longer than
# this means something is wrong and the caller should hear about it rather than hang.
BUSY_TIMEOUT_S = 5.0
# integrity_check can list thousands of problems; the first few say enough in a log line.
INTEGRITY_REPORT_LINES = 5
# Files SQLite may keep beside the database; they belong to it and move with it.
COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")
# Python's implicit BEGIN before a write becomes BEGIN IMMEDIATE: the write lock is taken up
# front, and a write costs no extra thread hop for an explicit BEGIN.
ISOLATION_LEVEL = "IMMEDIATE"
# The thread of a connection that failed to open has one step left; it takes microseconds.
WORKER_END_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A corrupt database that was moved aside, and why."""

    path: Path
    reason: str


def _read_only_uri(path: Path) -> str:
    return f"file:{quote(str(path.absolute()))}?mode=ro"


async def connect(
    path: Path, busy_timeout: float, *, read_only: bool = False
) -> aiosqlite.Connection:
    """Open a connection in the store's transaction mode (no pragmas yet)."""
    target = _read_only_uri(path) if read_only else str(path)
    pending = aiosqlite.connect(
        target, isolation_level=ISOLATION_LEVEL, timeout=busy_timeout, uri=read_only
    )
    try:
        return await pending
    except BaseException as exc:
        await _worker_ended(pending)
        if isinstance(exc, sqlite3.Error):
            raise translate(exc) from exc
        raise


async def _worker_ended(conn: aiosqlite.Connection) -> None:
    """Wait for the thread of a connection that failed to open to end.

    aiosqlite 0.22 stops that thread with a future of the running loop that nobody awaits.
    Were the loop closed first (the caller gave up at once), the thread would fail setting
    that future ("Event loop is closed"), an unhandled exception in a thread.
    """
    # 0.22 keeps its worker in ``_thread``; before, the connection was the thread itself.
    thread = getattr(conn, "_thread", conn)
    if isinstance(thread, threading.Thread) and thread.ident is not None:
        await asyncio.to_thread(thread.join, WORKER_END_SECONDS)


class _NeedsRecoveryError(Exception):
    """A read-only connection cannot check a file that needs crash recovery (a hot journal)."""


async def _integrity_problem(path: Path, busy_timeout: float, *, read_only: bool) -> str | None:
    conn = await connect(path, busy_timeout, read_only=read_only)
    try:
        rows = list(await conn.execute_fetchall("PRAGMA integrity_check"))
    except sqlite3.DatabaseError as exc:
        error = translate(exc)
        if isinstance(error, StoreCorruptError):
            return str(error)
        if read_only and exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY:
            raise _NeedsRecoveryError from exc
        raise error from exc
    finally:
        await conn.close()
    verdict = "; ".join(str(row[0]) for row in rows[:INTEGRITY_REPORT_LINES])
    return None if verdict == "ok" else verdict


async def integrity_problem(path: Path, busy_timeout: float) -> str | None:
    """Return why the file is corrupt, or None if ``PRAGMA integrity_check`` says ok."""
    # Read-only first: a read-write connection would checkpoint the WAL into the damaged
    # file, or delete a WAL it cannot use, destroying what the quarantine should keep.
    try:
        return await _integrity_problem(path, busy_timeout, read_only=True)
    except _NeedsRecoveryError:
        return await _integrity_problem(path, busy_timeout, read_only=False)


def quarantine_files(path: Path, moment: datetime) -> Path:
    """Move the database and its companion files aside; return the new database path."""
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    attempt = 0
    while target.exists():
        attempt += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}.{attempt}")
    for suffix in ("", *COMPANION_SUFFIXES):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.replace(f"{target}{suffix}")
    # The renames must survive a power cut, or the corrupt file comes back on reboot.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


async def open_checked(
    path: Path, now: Callable[[], datetime], busy_timeout: float
) -> tuple[aiosqlite.Connection, Quarantine | None]:
    """Connect; if an existing file is corrupt, quarantine it first and start a fresh one."""
    quarantine = None
    if await asyncio.to_thread(path.exists):
        problem = await integrity_problem(path, busy_timeout)
        if problem is not None:
            moved = await asyncio.to_thread(quarantine_files, path, now())
            log.critical(
                "store.quarantined", path=str(path), quarantined_to=str(moved), reason=problem
            )
            quarantine = Quarantine(moved, problem)
    return await connect(path, busy_timeout), quarantine


async def apply_pragmas(conn: aiosqlite.Connection) -> None:
    """Set WAL, durable commits and foreign keys; raise StoreError if WAL is refused."""
    rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
    if rows[0][0] != "wal":
        raise StoreError(f"SQLite refused journal_mode=WAL (got {rows[0][0]!r})")
    # FULL: a record the caller was told is committed must survive a power cut.
    await conn.executescript("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
