"""shared configuration: what noduled serve publishes for its workers (destinations, PACS, protocol)

Revision ID: 0005_flow
Revises: 0004_registry
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_flow"
down_revision = "0004_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_config",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shared_config")),
    )


def downgrade() -> None:
    op.drop_table("shared_config")
