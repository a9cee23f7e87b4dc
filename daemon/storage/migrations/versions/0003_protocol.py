"""assessments: the protocol used (name, version) and the audit protocol's category (recorded, not reported)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        # rows written before 0003 were NLCSP assessments
        batch_op.add_column(sa.Column("protocol", sa.String(length=16), server_default="nlcsp", nullable=False))
        batch_op.add_column(sa.Column("protocol_version", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("audit_protocol", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("audit_category", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("audit_assessment_json", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_column("audit_assessment_json")
        batch_op.drop_column("audit_category")
        batch_op.drop_column("audit_protocol")
        batch_op.drop_column("protocol_version")
        batch_op.drop_column("protocol")
