"""nodule_observations.volume_convention: the boundary convention of the recorded volume

Revision ID: 0007_volume_convention
Revises: 0006_outbox
Create Date: 2026-12-02 07:20:00

From this version the reported volume is in the radiologists' outline convention (segmentation.types
RADIOLOGISTS_OUTLINE); rows written before hold the partial-volume volume and are marked so, which keeps a
later round from reading the 20-35 % between the two as growth (the comparison then uses the diameter).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_volume_convention"
down_revision = "0006_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodule_observations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("volume_convention", sa.String(length=24), nullable=True))
    op.execute("UPDATE nodule_observations SET volume_convention = 'partial-volume' WHERE volume_mm3 IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("nodule_observations", schema=None) as batch_op:
        batch_op.drop_column("volume_convention")
