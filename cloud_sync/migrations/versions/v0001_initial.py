"""Create the cloud schema: hubs, chains, records, keys, tasks, windows, pods, alerts, seqs.

Revision ID: 0001
Revises:
Create Date: 2026-03-01

Written by hand with portable Core types so it runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
HUB_FK = "hubs.hub_id"


def _hubs() -> None:
    op.create_table(
        "hubs",
        sa.Column("hub_id", sa.String(64), primary_key=True),
        sa.Column("signing_key", sa.String(64), nullable=False),
        sa.Column("sealing_key", sa.String(64), nullable=False),
        sa.Column("registered_at", TIME, nullable=False),
    )
    op.create_table(
        "hub_chains",
        sa.Column("hub_id", sa.String(64), sa.ForeignKey(HUB_FK), primary_key=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("next_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("broken_seq", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "records",
        sa.Column("hub_id", sa.String(64), sa.ForeignKey(HUB_FK), primary_key=True),
        sa.Column("epoch", sa.Integer, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("record_id", sa.String(26), nullable=False, unique=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("chained", sa.Boolean, nullable=False),
    )


def _tenancy() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(26), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False, index=True),
        sa.Column("prefix", sa.String(64), nullable=False, unique=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
    )
    op.create_table(
        "tasks",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("task_id", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("delivered_at", TIME, nullable=True),
        sa.Column("pod_id", sa.String(26), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_table(
        "command_seqs",
        sa.Column("kid", sa.String(128), primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )


def _windows() -> None:
    op.create_table(
        "windows",
        sa.Column("window_id", sa.String(128), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("hub_id", sa.String(64), sa.ForeignKey(HUB_FK), nullable=False),
        sa.Column("lock_id", sa.String(128), nullable=False),
        sa.Column("starts_at", TIME, nullable=False),
        sa.Column("ends_at", TIME, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=True),
        sa.Column("enforcement", sa.String(8), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=True),
        sa.Column("code_sealed", sa.String(256), nullable=True),
        sa.Column("courier", JSON, nullable=True),
        sa.Column("carrier_job_id", sa.String(128), nullable=True),
        sa.Column("desired", sa.String(16), nullable=False),
        sa.Column("hub_status", sa.String(64), nullable=True),
        sa.Column("hub_status_at", TIME, nullable=True),
        sa.Column("hub_version", sa.BigInteger, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_windows_tenant_task", "windows", ["tenant_id", "task_id"])
    op.create_index("ix_windows_hub_desired", "windows", ["hub_id", "desired"])


def _events() -> None:
    op.create_table(
        "pods",
        sa.Column("pod_id", sa.String(26), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("window_id", sa.String(128), nullable=False),
        sa.Column("hub_id", sa.String(64), sa.ForeignKey(HUB_FK), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("lock_id", sa.String(128), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("unlocked_at", TIME, nullable=False),
        sa.Column("body", JSON, nullable=False),
    )
    op.create_index("ix_pods_tenant_task", "pods", ["tenant_id", "task_id"])
    op.create_table(
        "alerts",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("hub_id", sa.String(64), nullable=False, index=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.String(512), nullable=False),
        sa.Column("details", JSON, nullable=True),
        sa.Column("record_id", sa.String(26), nullable=True, unique=True),
        sa.Column("created_at", TIME, nullable=False),
    )


def upgrade() -> None:
    """Create every table of the first schema."""
    _hubs()
    _tenancy()
    _windows()
    _events()


def downgrade() -> None:
    """Drop every table, children first."""
    for table in (
        "alerts",
        "pods",
        "windows",
        "command_seqs",
        "tasks",
        "api_keys",
        "records",
        "hub_chains",
        "hubs",
    ):
        op.drop_table(table)
