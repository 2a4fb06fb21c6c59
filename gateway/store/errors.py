"""The store's one base exception, its subclasses, and the translation of sqlite3 errors."""

from __future__ import annotations

import sqlite3


class StoreError(Exception):
    """Base of every error raised by ``gateway.store``."""


class StoreClosedError(StoreError):
    """The store was used after ``close()``: a programming error, do not retry."""


class StoreCorruptError(StoreError):
    """The database file is damaged: restart, and ``Store.open`` quarantines it."""


class StoreSchemaTooNewError(StoreError):
    """The database was written by newer software: upgrade lockhub, never downgrade data."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"database schema version {found} is newer than this software knows ({known}); "
            "upgrade lockhub or restore a matching database"
        )
        self.found = found
        self.known = known


class StoreFullError(StoreError):
    """The disk (or the database's size limit) is full: nothing was written; free space."""


class StoreLowSpaceError(StoreFullError):
    """Low-space mode refused a write that would create a window; nothing was written.

    The disk filled and the space reserve went to proof of delivery: reject the command that
    brought the window (the cloud may send it again); the mode ends when space returns.
    """


class StoreBusyError(StoreError):
    """Another process held the database lock past the busy timeout: retry later."""


class InvalidRecordError(StoreError):
    """A record's body breaks the wire contract: nothing was written; fix the caller.

    Refused before it is signed: a malformed record in the outbox would be refused by the
    cloud and block every record after it in the chain.
    """


class StoreConstraintError(StoreError):
    """A row broke a schema constraint (bad value or chain order): reject, do not retry."""


_BY_PRIMARY_CODE: dict[int, type[StoreError]] = {
    sqlite3.SQLITE_FULL: StoreFullError,
    sqlite3.SQLITE_CORRUPT: StoreCorruptError,
    sqlite3.SQLITE_NOTADB: StoreCorruptError,
    sqlite3.SQLITE_BUSY: StoreBusyError,
    sqlite3.SQLITE_LOCKED: StoreBusyError,
    sqlite3.SQLITE_CONSTRAINT: StoreConstraintError,
}
# The low byte of an extended result code is its primary code (sqlite.org/rescode.html).
_PRIMARY_MASK = 0xFF


def translate(exc: sqlite3.Error) -> StoreError:
    """Map a sqlite3 error to the StoreError subclass that tells the caller what to do."""
    code = getattr(exc, "sqlite_errorcode", None)
    cls = StoreError
    if isinstance(code, int):
        cls = _BY_PRIMARY_CODE.get(code & _PRIMARY_MASK, StoreError)
    error = cls(f"{type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
