"""Which tenants a hub serves: a tenant may create windows only on hubs granted to it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

A hub at a delivery site can serve several tenants (retailers, carriers), so the grant is a
table of (hub, tenant) pairs rather than a column on the hub.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create hub_tenants."""
    op.create_table(
        "hub_tenants",
        sa.Column("hub_id", sa.String(64), sa.ForeignKey("hubs.hub_id"), primary_key=True),
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop hub_tenants."""
    op.drop_table("hub_tenants")
