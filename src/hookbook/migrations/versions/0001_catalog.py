"""The catalog: nodes and the events they record.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from hookbook.db import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("nodes.id", ondelete="CASCADE")),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("structure_family", sa.String(16), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("specs", sa.JSON, nullable=False),
        sa.Column("structure", sa.JSON),
        sa.Column("data_file", sa.Text),
        sa.Column("stream_closed", sa.Boolean, nullable=False),
        sa.Column("time_created", UTCDateTime, nullable=False),
        sa.Column("time_updated", UTCDateTime, nullable=False),
        sa.UniqueConstraint("parent_id", "key", name="uq_nodes_parent_key"),
    )
    op.create_index("ix_nodes_parent", "nodes", ["parent_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("time_created", UTCDateTime, nullable=False),
    )
    op.create_index("ix_events_time", "events", ["time_created"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("nodes")
