"""Schema migrations with Alembic, driven from code (no alembic.ini needed at runtime)."""

from __future__ import annotations

import functools

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.errors import SchemaError

from .engine import Database, make_engine

log = structlog.get_logger(__name__)

# Inside the installed package, so `lockhub cloud migrate` works from a wheel.
SCRIPT_LOCATION = "cloud_sync:migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision the shipped migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("no migrations shipped")
    return head


def _upgrade(connection: sa.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(conn: AsyncConnection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    return await conn.run_sync(_current)


async def migrate(database_url: str) -> str:
    """Upgrade the database at ``database_url`` to the newest revision; return it."""
    db = Database(make_engine(database_url))
    try:
        before = await db.write(current_revision)
        await db.write(lambda conn: conn.run_sync(_upgrade))
        async with db.read() as conn:
            after = await current_revision(conn)
    finally:
        await db.dispose()
    log.info("store.migrated", before=before, after=after)
    return after or ""


async def check_at_head(db: Database) -> None:
    """Raise SchemaError unless the database is at the newest revision."""
    async with db.read() as conn:
        current = await current_revision(conn)
    if current != head_revision():
        raise SchemaError(current, head_revision())
