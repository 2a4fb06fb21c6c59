"""Carriers: partners, offers, jobs, the failure audit and reliability stats.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Written by hand with portable Core types; cloud_sync/store/carrier_schema.py declares the same.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

TIME = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PARTNER_FK = "carrier_partners.partner_id"


def _partners() -> None:
    op.create_table(
        "carrier_partners",
        sa.Column("partner_id", sa.String(26), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("provider_code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("credentials", sa.String(8192), nullable=True),
        sa.Column("credentials_kid", sa.String(64), nullable=True),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_carrier_partners_tenant", "carrier_partners", ["tenant_id", "status"])


def _offers() -> None:
    op.create_table(
        "marketplace_offers",
        sa.Column("offer_id", sa.String(26), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("partner_id", sa.String(26), sa.ForeignKey(PARTNER_FK), nullable=False),
        sa.Column("provider_code", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("eta", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("carrier_quote_id", sa.String(128), nullable=True),
        sa.Column("raw", JSON, nullable=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("score_parts", JSON, nullable=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index(
        "ix_marketplace_offers_tenant_task", "marketplace_offers", ["tenant_id", "task_id"]
    )


def _jobs() -> None:
    op.create_table(
        "carrier_jobs",
        sa.Column("job_id", sa.String(26), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
        sa.Column("partner_id", sa.String(26), sa.ForeignKey(PARTNER_FK), nullable=False),
        sa.Column(
            "offer_id",
            sa.String(26),
            sa.ForeignKey("marketplace_offers.offer_id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("provider_code", sa.String(64), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("carrier_job_id", sa.String(128), nullable=True),
        sa.Column("tracking_number", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_at", TIME, nullable=False),
        sa.Column("tracking_url", sa.String(2048), nullable=True),
        sa.Column("label_url", sa.String(2048), nullable=True),
        sa.Column("manifest_url", sa.String(2048), nullable=True),
        sa.Column("pickup", JSON, nullable=False),
        sa.Column("dropoff", JSON, nullable=False),
        sa.Column("parcels", JSON, nullable=False),
        sa.Column("quoted_amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("eta", TIME, nullable=False),
        sa.Column("deliver_by", TIME, nullable=True),
        sa.Column("cost_amount_minor", sa.BigInteger, nullable=True),
        sa.Column("cost_currency", sa.String(3), nullable=True),
        sa.Column("cost_components", JSON, nullable=True),
        sa.Column("cost_captured_at", TIME, nullable=True),
        sa.Column("proof", JSON, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_carrier_jobs_idempotency"),
    )
    op.create_index("ix_carrier_jobs_tenant_task", "carrier_jobs", ["tenant_id", "task_id"])


def _audit() -> None:
    op.create_table(
        "carrier_callbacks",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(128), nullable=True),
        sa.Column("partner_id", sa.String(26), nullable=True),
        sa.Column("provider_code", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=True),
        sa.Column("detail", sa.String(512), nullable=False),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("occurred_at", TIME, nullable=False),
    )
    op.create_index(
        "ix_carrier_callbacks_partner", "carrier_callbacks", ["partner_id", "occurred_at"]
    )
    op.create_table(
        "carrier_stats",
        sa.Column("partner_id", sa.String(26), sa.ForeignKey(PARTNER_FK), primary_key=True),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("on_time", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )


def _labels() -> None:
    op.create_table(
        "carrier_labels",
        sa.Column("job_id", sa.String(26), sa.ForeignKey("carrier_jobs.job_id"), primary_key=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("fetched_at", TIME, nullable=False),
    )


def upgrade() -> None:
    """Create the carrier tables."""
    _partners()
    _offers()
    _jobs()
    _audit()
    _labels()


def downgrade() -> None:
    """Drop the carrier tables, children first."""
    for table in (
        "carrier_labels",
        "carrier_stats",
        "carrier_callbacks",
        "carrier_jobs",
        "marketplace_offers",
        "carrier_partners",
    ):
        op.drop_table(table)
