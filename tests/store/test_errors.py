"""sqlite3 errors become the StoreError subclass that says what the caller should do."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.store import (
    StoreBusyError,
    StoreConstraintError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
)
from gateway.store.errors import translate


def sqlite_error(cls: type[sqlite3.Error], code: int | None) -> sqlite3.Error:
    error = cls("boom")
    if code is not None:
        error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_FULL), StoreFullError),
        (sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_CORRUPT), StoreCorruptError),
        (sqlite_error(sqlite3.DatabaseError, sqlite3.SQLITE_NOTADB), StoreCorruptError),
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_BUSY), StoreBusyError),
        # Extended codes carry the primary code in their low byte (SQLITE_BUSY_SNAPSHOT).
        (sqlite_error(sqlite3.OperationalError, 517), StoreBusyError),
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_LOCKED), StoreBusyError),
        (sqlite_error(sqlite3.IntegrityError, 2067), StoreConstraintError),
        (sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_IOERR), StoreError),
        (sqlite_error(sqlite3.InterfaceError, None), StoreError),
    ],
)
def test_translate_by_primary_code(error: sqlite3.Error, expected: type[StoreError]) -> None:
    translated = translate(error)
    assert type(translated) is expected
    assert translated.__cause__ is error
    assert "boom" in str(translated)
