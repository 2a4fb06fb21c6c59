"""Forward-only schema migrations, numbered by ``PRAGMA user_version``."""

from __future__ import annotations

import sqlite3

import aiosqlite
import structlog

from .errors import StoreSchemaTooNewError

log = structlog.get_logger(__name__)

# Written by the records_move_head trigger below (the literal is repeated there).
CHAIN_HEAD_KEY = "store.chain_head"

# Step N (1-based) takes user_version from N-1 to N. Append new steps; never edit old ones,
# hubs in the field have already run them.
_V1_TABLES = """
CREATE TABLE windows (
    window_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    lock_id TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    version INTEGER NOT NULL,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    enforcement TEXT NOT NULL CHECK (enforcement IN ('hub', 'lock', 'both')),
    state TEXT NOT NULL
        CHECK (state IN ('scheduled', 'active', 'used', 'expired', 'revoked')),
    code_hash BLOB NOT NULL,
    code_sealed TEXT,
    courier TEXT,
    carrier_job_id TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX windows_by_lock ON windows (lock_id, starts_at);
CREATE TABLE locks (
    lock_id TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    state TEXT NOT NULL,
    battery INTEGER,
    updated_at TEXT NOT NULL
);
CREATE TABLE records (
    seq INTEGER PRIMARY KEY CHECK (seq >= 1),
    record_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    envelope TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    acked_at TEXT
);
CREATE INDEX records_unacked ON records (seq) WHERE acked_at IS NULL;
CREATE INDEX records_acked_at ON records (acked_at) WHERE acked_at IS NOT NULL;
CREATE TABLE replay_state (
    kid TEXT PRIMARY KEY,
    highest INTEGER NOT NULL,
    bitmap INTEGER NOT NULL
);
CREATE TABLE lockouts (
    lock_id TEXT NOT NULL,
    source TEXT NOT NULL,
    failures INTEGER NOT NULL,
    level INTEGER NOT NULL,
    locked_until TEXT,
    PRIMARY KEY (lock_id, source)
);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# The database itself refuses a record that does not continue the chain, and keeps the head
# in kv within the inserting transaction, so purging acked records never loses it.
_V1_CHAIN_TRIGGER = """
CREATE TRIGGER records_continue_chain BEFORE INSERT ON records
BEGIN
    SELECT RAISE(ABORT, 'record does not continue the chain head')
    WHERE NEW.seq != 1 + coalesce(
            (SELECT json_extract(value, '$.seq') FROM kv WHERE key = 'store.chain_head'), 0)
       OR json_extract(CAST(NEW.payload AS TEXT), '$.body.prev_hash') IS NOT coalesce(
            (SELECT json_extract(value, '$.hash') FROM kv WHERE key = 'store.chain_head'),
            '0000000000000000000000000000000000000000000000000000000000000000');
END;
CREATE TRIGGER records_move_head AFTER INSERT ON records
BEGIN
    INSERT OR REPLACE INTO kv (key, value)
    VALUES ('store.chain_head', json_object('seq', NEW.seq, 'hash', NEW.payload_hash));
END;
"""

# v2 (access engine): the lock's keypad code id for lock-enforced windows (attribution), the
# lock-side provisioning state, and where a window came from: a pushed command, a courier
# token whose window push never arrived, or a revoke that arrived before its window (a
# tombstone that keeps a later, older upsert or token from reviving it).
_V2_WINDOWS = """
ALTER TABLE windows ADD COLUMN keypad_code_id INTEGER;
ALTER TABLE windows ADD COLUMN lock_side TEXT NOT NULL DEFAULT 'none'
    CHECK (lock_side IN ('none', 'pending', 'set_on_lock', 'failed_on_lock',
                         'removed_from_lock'));
ALTER TABLE windows ADD COLUMN origin TEXT NOT NULL DEFAULT 'push'
    CHECK (origin IN ('push', 'token', 'tombstone'));
CREATE INDEX windows_by_task ON windows (task_id);
"""

# v3: completed tasks, so that an upsert overtaken by task.complete revives nothing. Kept
# for longer than any command lives (31 days), then pruned.
_V3_COMPLETED_TASKS = """
CREATE TABLE completed_tasks (task_id TEXT PRIMARY KEY, completed_at TEXT NOT NULL);
"""

# v4: a window that is over (used, expired, revoked) never programs a lock again, so its
# sealed code goes; hubs that ran older code may still hold some.
_V4_DROP_SEALED_CODES = """
UPDATE windows SET code_sealed = NULL
WHERE state IN ('used', 'expired', 'revoked') AND code_sealed IS NOT NULL;
"""

MIGRATIONS: tuple[str, ...] = (
    _V1_TABLES + _V1_CHAIN_TRIGGER,
    _V2_WINDOWS,
    _V3_COMPLETED_TASKS,
    _V4_DROP_SEALED_CODES,
)


async def schema_version(conn: aiosqlite.Connection) -> int:
    """Return the database's ``user_version``."""
    rows = list(await conn.execute_fetchall("PRAGMA user_version"))
    return int(rows[0][0])


async def migrate(conn: aiosqlite.Connection) -> int:
    """Apply every missing step, each in its own transaction; return the resulting version."""
    found = await schema_version(conn)
    known = len(MIGRATIONS)
    if found > known:
        raise StoreSchemaTooNewError(found, known)
    for version in range(found + 1, known + 1):
        step = MIGRATIONS[version - 1]
        script = f"BEGIN IMMEDIATE;\n{step}\nPRAGMA user_version = {version};\nCOMMIT;"
        try:
            await conn.executescript(script)
        except sqlite3.Error:
            await conn.rollback()
            raise
        log.info("store.migrated", schema=version)
    return known
