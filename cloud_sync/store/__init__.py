"""The cloud's database: SQLAlchemy Core over aiosqlite or asyncpg, Alembic migrations."""

# Every table module joins the shared metadata (migrations are checked against it).
from . import billing_schema, carrier_schema  # noqa: F401
from .migrate import head_revision, migrate
from .rows import (
    AlertRow,
    ApiKeyRow,
    ChainAccepted,
    ChainState,
    HubRow,
    IngestResult,
    PodRow,
    Rejected,
    StoredRecord,
    TaskRow,
    TaskView,
    WindowRow,
    WindowView,
)
from .store import CloudStore, utc_now

__all__ = [
    "AlertRow",
    "ApiKeyRow",
    "ChainAccepted",
    "ChainState",
    "CloudStore",
    "HubRow",
    "IngestResult",
    "PodRow",
    "Rejected",
    "StoredRecord",
    "TaskRow",
    "TaskView",
    "WindowRow",
    "WindowView",
    "head_revision",
    "migrate",
    "utc_now",
]
