"""Webhooks, their deliveries (the outbox) and every attempt.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from hookbook.db import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("node_path", sa.Text, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret_ciphertext", sa.Text),
        sa.Column("events", sa.JSON),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("time_created", UTCDateTime, nullable=False),
        sa.Column("time_updated", UTCDateTime, nullable=False),
        sa.UniqueConstraint("node_path", "url", name="uq_webhooks_node_url"),
    )
    op.create_index("ix_webhooks_node_path", "webhooks", ["node_path"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "webhook_id",
            sa.Integer,
            sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_row_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error_detail", sa.Text),
        sa.Column("next_attempt_at", sa.Float),
        sa.Column("lease_token", sa.String(32)),
        sa.Column("redelivery_of", sa.Integer),
        sa.Column("time_created", UTCDateTime, nullable=False),
        sa.Column("delivered_at", UTCDateTime),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["next_attempt_at"])
    op.create_index("ix_deliveries_webhook", "deliveries", ["webhook_id", "id"])
    op.create_index("ix_deliveries_outcome", "deliveries", ["outcome"])
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "delivery_id",
            sa.Integer,
            sa.ForeignKey("deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("response_excerpt", sa.Text),
        sa.Column("address", sa.String(64)),
    )
    op.create_index("ix_attempts_delivery", "attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("attempts")
    op.drop_table("deliveries")
    op.drop_table("webhooks")
