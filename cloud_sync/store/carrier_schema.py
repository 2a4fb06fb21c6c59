"""The carrier tables (migration 0003 creates them) on the shared metadata."""

from __future__ import annotations

import sqlalchemy as sa

from .schema import IDENT, TEXT, WORD, AutoId, Json, UtcDateTime, metadata

ULID = 26
# "v1:<id>:<nonce>:<ciphertext>" of a few credential strings; 4 KiB holds a PEM key too.
SEALED = 8192
CURRENCY = 3
STATUS = 16
URL = 2048

carrier_partners = sa.Table(
    "carrier_partners",
    metadata,
    sa.Column("partner_id", sa.String(ULID), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column("provider_code", sa.String(WORD), nullable=False),
    sa.Column("name", sa.String(IDENT), nullable=False),
    # Sealed with AES-256-GCM (cloud_sync.carriers.credentials); the key id is repeated here so
    # a rotation can find what is still sealed under an old key.
    sa.Column("credentials", sa.String(SEALED), nullable=True),
    sa.Column("credentials_kid", sa.String(WORD), nullable=True),
    sa.Column("settings", Json, nullable=False),
    sa.Column("status", sa.String(STATUS), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_carrier_partners_tenant", "tenant_id", "status"),
)

marketplace_offers = sa.Table(
    "marketplace_offers",
    metadata,
    sa.Column("offer_id", sa.String(ULID), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column("task_id", sa.String(IDENT), nullable=False),
    sa.Column(
        "partner_id", sa.String(ULID), sa.ForeignKey("carrier_partners.partner_id"), nullable=False
    ),
    sa.Column("provider_code", sa.String(WORD), nullable=False),
    sa.Column("service", sa.String(IDENT), nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(CURRENCY), nullable=False),
    sa.Column("eta", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("carrier_quote_id", sa.String(IDENT), nullable=True),
    sa.Column("raw", Json, nullable=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("score_parts", Json, nullable=False),
    sa.Column("rank", sa.Integer, nullable=False),
    # The rate shop's request (pickup, drop-off, parcels, times): accepting books exactly it.
    sa.Column("request", Json, nullable=False),
    sa.Column("status", sa.String(STATUS), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_marketplace_offers_tenant_task", "tenant_id", "task_id"),
)

carrier_jobs = sa.Table(
    "carrier_jobs",
    metadata,
    sa.Column("job_id", sa.String(ULID), primary_key=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=False),
    sa.Column("task_id", sa.String(IDENT), nullable=False),
    sa.Column(
        "partner_id", sa.String(ULID), sa.ForeignKey("carrier_partners.partner_id"), nullable=False
    ),
    # One job per offer, whatever races: the database refuses a second.
    sa.Column(
        "offer_id",
        sa.String(ULID),
        sa.ForeignKey("marketplace_offers.offer_id"),
        nullable=False,
        unique=True,
    ),
    sa.Column("idempotency_key", sa.String(IDENT), nullable=False),
    sa.Column("provider_code", sa.String(WORD), nullable=False),
    sa.Column("service", sa.String(IDENT), nullable=False),
    sa.Column("carrier_job_id", sa.String(IDENT), nullable=True),
    sa.Column("tracking_number", sa.String(IDENT), nullable=True),
    sa.Column("status", sa.String(STATUS), nullable=False),
    sa.Column("status_at", UtcDateTime, nullable=False),
    sa.Column("tracking_url", sa.String(URL), nullable=True),
    sa.Column("label_url", sa.String(URL), nullable=True),
    sa.Column("manifest_url", sa.String(URL), nullable=True),
    sa.Column("pickup", Json, nullable=False),
    sa.Column("dropoff", Json, nullable=False),
    sa.Column("parcels", Json, nullable=False),
    sa.Column("quoted_amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(CURRENCY), nullable=False),
    sa.Column("eta", UtcDateTime, nullable=False),
    sa.Column("deliver_by", UtcDateTime, nullable=True),
    sa.Column("cost_amount_minor", sa.BigInteger, nullable=True),
    sa.Column("cost_currency", sa.String(CURRENCY), nullable=True),
    sa.Column("cost_components", Json, nullable=True),
    sa.Column("cost_captured_at", UtcDateTime, nullable=True),
    sa.Column("proof", Json, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_carrier_jobs_idempotency"),
    sa.Index("ix_carrier_jobs_tenant_task", "tenant_id", "task_id"),
)

# Every failed carrier call (and, for the webhook helpers, every vendor callback): the audit.
carrier_callbacks = sa.Table(
    "carrier_callbacks",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(IDENT), nullable=True),
    sa.Column("partner_id", sa.String(ULID), nullable=True),
    sa.Column("provider_code", sa.String(WORD), nullable=False),
    sa.Column("operation", sa.String(WORD), nullable=False),
    sa.Column("kind", sa.String(WORD), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=True),
    sa.Column("detail", sa.String(TEXT), nullable=False),
    sa.Column("payload", Json, nullable=True),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Index("ix_carrier_callbacks_partner", "partner_id", "occurred_at"),
)

# What past jobs taught about a partner: the reliability part of the rate-shop score.
carrier_stats = sa.Table(
    "carrier_stats",
    metadata,
    sa.Column(
        "partner_id",
        sa.String(ULID),
        sa.ForeignKey("carrier_partners.partner_id"),
        primary_key=True,
    ),
    sa.Column("delivered", sa.BigInteger, nullable=False),
    sa.Column("on_time", sa.BigInteger, nullable=False),
    sa.Column("failed", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# A label the carrier itself returned at booking (karrio carriers): kept, since some
# carriers hand it out once. Jobs without one get ours, rendered on request.
carrier_labels = sa.Table(
    "carrier_labels",
    metadata,
    sa.Column("job_id", sa.String(ULID), sa.ForeignKey("carrier_jobs.job_id"), primary_key=True),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("fetched_at", UtcDateTime, nullable=False),
)
