"""analysis state, assessments, nodule observations, outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:53:47.733888
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("seeds_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("analysed_fingerprint", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("report_sop_uid", sa.String(length=64), nullable=True),
        sa.Column("seg_sop_uid", sa.String(length=64), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyses")),
        sa.UniqueConstraint("study_uid", name=op.f("uq_analyses_study_uid")),
    )
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.create_index("ix_analyses_state", ["state"], unique=False)

    op.create_table(
        "assessments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("report_sop_uid", sa.String(length=64), nullable=False),
        sa.Column("seg_sop_uid", sa.String(length=64), nullable=True),
        sa.Column("exam_date", sa.Date(), nullable=True),
        sa.Column("screening_round", sa.String(length=16), nullable=True),
        sa.Column("category", sa.String(length=2), nullable=False),
        sa.Column("additional_findings", sa.Integer(), nullable=False),
        sa.Column("management", sa.Text(), nullable=True),
        sa.Column("follow_up_months", sa.Integer(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("decisive_tracking_uid", sa.String(length=64), nullable=True),
        sa.Column("assessment_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assessments")),
        sa.UniqueConstraint("report_sop_uid", name=op.f("uq_assessments_report_sop_uid")),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assessments_study_uid"), ["study_uid"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("destination", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("sop_instance_uid", "destination", name="uq_outbox_sop_instance_uid_destination"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_state_next_attempt_at", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "nodule_observations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_sop_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=True),
        sa.Column("tracking_uid", sa.String(length=64), nullable=False),
        sa.Column("tracking_id", sa.String(length=64), nullable=False),
        sa.Column("exam_date", sa.Date(), nullable=True),
        sa.Column("volume_mm3", sa.Float(), nullable=True),
        sa.Column("mean_diameter_mm", sa.Float(), nullable=True),
        sa.Column("max_axial_diameter_mm", sa.Float(), nullable=True),
        sa.Column("solid_volume_mm3", sa.Float(), nullable=True),
        sa.Column("composition", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=True),
        sa.Column("category", sa.String(length=2), nullable=True),
        sa.Column("centroid_x_mm", sa.Float(), nullable=True),
        sa.Column("centroid_y_mm", sa.Float(), nullable=True),
        sa.Column("centroid_z_mm", sa.Float(), nullable=True),
        sa.Column("derived", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patients.id"], name=op.f("fk_nodule_observations_patient_pk_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodule_observations")),
    )
    with op.batch_alter_table("nodule_observations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nodule_observations_patient_pk"), ["patient_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_nodule_observations_report_sop_uid"), ["report_sop_uid"], unique=False)
        batch_op.create_index(batch_op.f("ix_nodule_observations_tracking_uid"), ["tracking_uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nodule_observations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nodule_observations_tracking_uid"))
        batch_op.drop_index(batch_op.f("ix_nodule_observations_report_sop_uid"))
        batch_op.drop_index(batch_op.f("ix_nodule_observations_patient_pk"))

    op.drop_table("nodule_observations")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_state_next_attempt_at")

    op.drop_table("outbox")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessments_study_uid"))

    op.drop_table("assessments")
    with op.batch_alter_table("analyses", schema=None) as batch_op:
        batch_op.drop_index("ix_analyses_state")

    op.drop_table("analyses")
