"""outbox: claims, storage commitment; instances: purged by retention

Revision ID: 0006_outbox
Revises: 0005_flow
Create Date: 2026-12-02 02:00:00

- ``outbox.claimed_until``: a delivery run's claim on the row (the probe's prompt retry leaves claimed rows alone);
- ``outbox.commitment_uid`` / ``outbox.stored_at``: the Storage Commitment transaction the row waits for, and
  when the destination answered its C-STORE (the row is delivered only when committed);
- ``instances.purged_at``: the instance's file was deleted by the retention policy (the row stays: the study,
  its series and what noduled reported stay in the index; prior lookup fetches purged images again).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_outbox"
down_revision = "0005_flow"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("commitment_uid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outbox_commitment_uid", ["commitment_uid"], unique=False)
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("purged_at")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_commitment_uid")
        batch_op.drop_column("stored_at")
        batch_op.drop_column("commitment_uid")
        batch_op.drop_column("claimed_until")
