"""Billing events and exports; outgoing webhook endpoints, deliveries and attempts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Written by hand with portable Core types, identical to cloud_sync/store/billing_schema.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)
ULID = 26


def _billing() -> None:
    op.create_table(
        "billing_events",
        sa.Column("event_id", sa.String(ULID), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("provider_code", sa.String(64), nullable=True),
        sa.Column("task_id", sa.String(128), nullable=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("components", JSON, nullable=False),
        sa.Column("occurred_at", TIME, nullable=False),
        sa.Column("recorded_at", TIME, nullable=False),
        sa.Column("export_id", sa.String(ULID), nullable=True),
        sa.UniqueConstraint("tenant_id", "event_type", "job_id", name="uq_billing_events_job"),
    )
    op.create_index(
        "ix_billing_events_unexported",
        "billing_events",
        ["tenant_id", "export_id", "occurred_at"],
    )
    op.create_table(
        "billing_exports",
        sa.Column("export_id", sa.String(ULID), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("range_start", TIME, nullable=False),
        sa.Column("range_end", TIME, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("csv_body", sa.LargeBinary, nullable=False),
        sa.Column("jsonl_body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "range_start", "range_end", name="uq_billing_exports_range"
        ),
    )


def _endpoints() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", sa.String(ULID), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False, index=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(512), nullable=True),
        sa.Column("event_types", JSON, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_secret_expires_at", TIME, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.String(64), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )


def _deliveries() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", sa.String(ULID), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column(
            "endpoint_id",
            sa.String(ULID),
            sa.ForeignKey("webhook_endpoints.endpoint_id"),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=True),
        sa.Column("last_attempt_at", TIME, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(512), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_message"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint", "webhook_deliveries", ["endpoint_id", "created_at"]
    )
    op.create_table(
        "webhook_attempts",
        sa.Column(
            "delivery_id",
            sa.String(ULID),
            sa.ForeignKey("webhook_deliveries.delivery_id"),
            primary_key=True,
        ),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("attempted_at", TIME, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(512), nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )


def upgrade() -> None:
    """Create the billing and webhook tables."""
    _billing()
    _endpoints()
    _deliveries()


def downgrade() -> None:
    """Drop them, children first."""
    for table in (
        "webhook_attempts",
        "webhook_deliveries",
        "webhook_endpoints",
        "billing_exports",
        "billing_events",
    ):
        op.drop_table(table)
