"""The hub's durable state in SQLite: windows, locks, the record outbox, replay and lockouts."""

from .connection import BUSY_TIMEOUT_S, Quarantine
from .errors import (
    InvalidRecordError,
    StoreBusyError,
    StoreClosedError,
    StoreConstraintError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    StoreLowSpaceError,
    StoreSchemaTooNewError,
)
from .migrations import MIGRATIONS
from .rows import (
    ChainHead,
    Courier,
    Lockout,
    LockRow,
    NewRecord,
    StoredRecord,
    WindowRow,
)
from .space import RESERVE_BYTES
from .store import ALERT_RECORD_TYPE, Store

__all__ = [
    "ALERT_RECORD_TYPE",
    "BUSY_TIMEOUT_S",
    "MIGRATIONS",
    "RESERVE_BYTES",
    "ChainHead",
    "Courier",
    "InvalidRecordError",
    "LockRow",
    "Lockout",
    "NewRecord",
    "Quarantine",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreConstraintError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreLowSpaceError",
    "StoreSchemaTooNewError",
    "StoredRecord",
    "WindowRow",
]
