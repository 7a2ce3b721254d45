"""Streams: arrays in zarr, tables as Parquet fragments, data retired after a grace period.

Revision ID: 0004
Revises: 0002

A node's ``data_file`` becomes ``data_location`` (an array's storage), and a
table's single Parquet file becomes the one fragment of its partition 0
(Parquet files stay where they are). Arrays stored by earlier versions as
``.npy`` files are converted to zarr by the server at start-up
(``CatalogStore.recover``), which needs the data directory.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fragments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "node_id",
            sa.Integer,
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("location", sa.Text, nullable=False),
    )
    op.create_index("ix_fragments_node", "fragments", ["node_id", "partition", "id"])
    op.create_table(
        "upload_blocks",
        sa.Column(
            "node_id",
            sa.Integer,
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("block", sa.String(255), primary_key=True),
    )
    op.create_table(
        "retired_data",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("retired_at", sa.Float, nullable=False),
    )
    op.create_index("ix_retired_data_time", "retired_data", ["retired_at"])
    # Plain ALTER TABLE (SQLite 3.25+ and PostgreSQL): a batch copy of the nodes
    # table would cascade-delete its rows through the self-referencing key.
    op.execute("ALTER TABLE nodes RENAME COLUMN data_file TO data_location")
    op.add_column(
        "nodes", sa.Column("announced", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.execute(
        "UPDATE nodes SET announced = (structure_family = 'container' OR data_location IS NOT NULL)"
    )
    op.execute(
        "INSERT INTO fragments (node_id, partition, location) "
        "SELECT id, 0, data_location FROM nodes "
        "WHERE structure_family = 'table' AND data_location IS NOT NULL"
    )
    op.execute("UPDATE nodes SET data_location = NULL WHERE structure_family = 'table'")


def downgrade() -> None:
    raise NotImplementedError("hookbook does not downgrade data layouts")
