"""The cloud database's tables as SQLAlchemy Core metadata (migration 0001 creates them)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# Identifiers of the wire contract are at most 128 characters; hub ids 64.
IDENT = 128
HUB_ID = 64
# Short machine words (alert kinds, statuses).
WORD = 64
# Free text of the wire contract (alert messages) is at most 512 characters.
TEXT = 512


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC datetime on both backends (SQLite keeps naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("datetimes stored in the cloud database must be timezone-aware")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()
Json = sa.JSON(none_as_null=True)
# SQLite autoincrements only an INTEGER PRIMARY KEY.
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

hubs = sa.Table(
    "hubs",
    metadata,
    sa.Column("hub_id", sa.String(HUB_ID), primary_key=True),
    sa.Column("signing_key", sa.String(WORD), nullable=False),
    sa.Column("sealing_key", sa.String(WORD), nullable=False),
    sa.Column("registered_at", UtcDateTime, nullable=False),
)

# The tenants each hub serves (a tenant creates windows only on hubs granted to it).
hub_tenants = sa.Table(
    "hub_tenants",
    metadata,
    sa.Column("hub_id", sa.String(HUB_ID), sa.ForeignKey("hubs.hub_id"), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), primary_key=True),
    sa.Column("granted_at", UtcDateTime, nullable=False),
)

hub_chains = sa.Table(
    "hub_chains",
    metadata,
    sa.Column("hub_id", sa.String(HUB_ID), sa.ForeignKey("hubs.hub_id"), primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("next_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    # The seq where the chain broke in this epoch; NULL while it holds.
    sa.Column("broken_seq", sa.BigInteger, nullable=True),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("hub_id", sa.String(HUB_ID), sa.ForeignKey("hubs.hub_id"), primary_key=True),
    sa.Column("epoch", sa.Integer, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("record_id", sa.String(26), nullable=False, unique=True),
    sa.Column("type", sa.String(WORD), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("payload_hash", sa.String(64), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("chained", sa.Boolean, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(26), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False, index=True),
    sa.Column("prefix", sa.String(WORD), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("tenant_id", sa.String(IDENT), primary_key=True),
    sa.Column("task_id", sa.String(IDENT), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
    sa.Column("pod_id", sa.String(26), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

windows = sa.Table(
    "windows",
    metadata,
    sa.Column("window_id", sa.String(IDENT), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column("task_id", sa.String(IDENT), nullable=False),
    sa.Column("hub_id", sa.String(HUB_ID), sa.ForeignKey("hubs.hub_id"), nullable=False),
    sa.Column("lock_id", sa.String(IDENT), nullable=False),
    sa.Column("starts_at", UtcDateTime, nullable=False),
    sa.Column("ends_at", UtcDateTime, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("max_uses", sa.Integer, nullable=True),
    sa.Column("enforcement", sa.String(8), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=True),
    # Sealed to the hub's X25519 key: only that hub can open it; kept for resyncs.
    sa.Column("code_sealed", sa.String(256), nullable=True),
    sa.Column("courier", Json, nullable=True),
    sa.Column("carrier_job_id", sa.String(IDENT), nullable=True),
    sa.Column("desired", sa.String(16), nullable=False),
    sa.Column("hub_status", sa.String(WORD), nullable=True),
    sa.Column("hub_status_at", UtcDateTime, nullable=True),
    sa.Column("hub_version", sa.BigInteger, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_windows_tenant_task", "tenant_id", "task_id"),
    sa.Index("ix_windows_hub_desired", "hub_id", "desired"),
)

pods = sa.Table(
    "pods",
    metadata,
    sa.Column("pod_id", sa.String(26), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column("task_id", sa.String(IDENT), nullable=False),
    sa.Column("window_id", sa.String(IDENT), nullable=False),
    sa.Column("hub_id", sa.String(HUB_ID), sa.ForeignKey("hubs.hub_id"), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("lock_id", sa.String(IDENT), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("unlocked_at", UtcDateTime, nullable=False),
    sa.Column("body", Json, nullable=False),
    sa.Index("ix_pods_tenant_task", "tenant_id", "task_id"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("hub_id", sa.String(HUB_ID), nullable=False, index=True),
    sa.Column("kind", sa.String(WORD), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("message", sa.String(TEXT), nullable=False),
    sa.Column("details", Json, nullable=True),
    # The record that raised it, if any: a record raises its alert once.
    sa.Column("record_id", sa.String(26), nullable=True, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

command_seqs = sa.Table(
    "command_seqs",
    metadata,
    sa.Column("kid", sa.String(IDENT), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)
