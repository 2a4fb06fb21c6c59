"""Billing events, their exports, webhook endpoints and deliveries (migration 0004)."""

from __future__ import annotations

import sqlalchemy as sa

from .schema import IDENT, TEXT, WORD, Json, UtcDateTime, metadata

# ULIDs (26 characters) name events, exports, endpoints, deliveries and messages.
ULID = 26
# ISO 4217 alphabetic codes are three letters.
CURRENCY = 3
# Long enough for any URL a webhook receiver really uses; browsers cap near 2 KiB too.
URL = 2048
# "whsec_" plus the base64 of a 32-byte secret is 50 characters; room for longer keys.
SECRET = 128

billing_events = sa.Table(
    "billing_events",
    metadata,
    sa.Column("event_id", sa.String(ULID), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column("event_type", sa.String(WORD), nullable=False),
    sa.Column("job_id", sa.String(IDENT), nullable=False),
    sa.Column("provider_code", sa.String(WORD), nullable=True),
    sa.Column("task_id", sa.String(IDENT), nullable=True),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(CURRENCY), nullable=False),
    sa.Column("components", Json, nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    # The one export that carries this event; NULL until an export claims it.
    sa.Column("export_id", sa.String(ULID), nullable=True),
    # One event of a type per job: recording a job's cost twice is a no-op.
    sa.UniqueConstraint("tenant_id", "event_type", "job_id", name="uq_billing_events_job"),
    sa.Index("ix_billing_events_unexported", "tenant_id", "export_id", "occurred_at"),
)

billing_exports = sa.Table(
    "billing_exports",
    metadata,
    sa.Column("export_id", sa.String(ULID), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column("range_start", UtcDateTime, nullable=False),
    sa.Column("range_end", UtcDateTime, nullable=False),
    sa.Column("event_count", sa.Integer, nullable=False),
    # Both renderings are kept: a repeated request returns these very bytes.
    sa.Column("csv_body", sa.LargeBinary, nullable=False),
    sa.Column("jsonl_body", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "range_start", "range_end", name="uq_billing_exports_range"),
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("endpoint_id", sa.String(ULID), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False, index=True),
    sa.Column("url", sa.String(URL), nullable=False),
    sa.Column("description", sa.String(TEXT), nullable=True),
    # The event types it receives; an empty list receives every type.
    sa.Column("event_types", Json, nullable=False),
    sa.Column("secret", sa.String(SECRET), nullable=False),
    # After a rotation the old secret also signs until it expires.
    sa.Column("previous_secret", sa.String(SECRET), nullable=True),
    sa.Column("previous_secret_expires_at", UtcDateTime, nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.String(WORD), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(ULID), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column(
        "endpoint_id",
        sa.String(ULID),
        sa.ForeignKey("webhook_endpoints.endpoint_id"),
        nullable=False,
    ),
    # The webhook-id header: the same on every attempt so receivers can deduplicate.
    sa.Column("message_id", sa.String(WORD), nullable=False),
    sa.Column("event_type", sa.String(WORD), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    # The index into the retry schedule of the attempt that comes next.
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=True),
    sa.Column("last_attempt_at", UtcDateTime, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(TEXT), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("endpoint_id", "message_id", name="uq_webhook_deliveries_message"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column(
        "delivery_id",
        sa.String(ULID),
        sa.ForeignKey("webhook_deliveries.delivery_id"),
        primary_key=True,
    ),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("attempted_at", UtcDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(TEXT), nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
)
