"""screening registry: participants, exams, dose_events, outcomes (additive)

Revision ID: 0004_registry
Revises: 0003
Create Date: 2026-12-02 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_registry"
down_revision = "0003"
branch_labels = None
depends_on = None

UID = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("issuer", sa.String(length=64), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=True),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("smoking_status", sa.String(length=16), nullable=True),
        sa.Column("pack_years", sa.Float(), nullable=True),
        sa.Column("years_since_quit", sa.Float(), nullable=True),
        sa.Column("family_history_lung_cancer", sa.Integer(), nullable=True),
        sa.Column("emphysema", sa.Integer(), nullable=True),
        sa.Column("asymptomatic", sa.Integer(), nullable=True),
        sa.Column("shared_decision_making", sa.Integer(), nullable=True),
        sa.Column("cessation_counselling", sa.Integer(), nullable=True),
        sa.Column("consent", sa.String(length=16), nullable=True),
        sa.Column("opt_out_date", sa.Date(), nullable=True),
        sa.Column("height_m", sa.Float(), nullable=True),
        sa.Column("weight_kg", sa.Float(), nullable=True),
        sa.Column("sources_json", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
        sa.UniqueConstraint("patient_id", "issuer", name="uq_participants_patient_id_issuer"),
    )
    op.create_table(
        "exams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=True),
        sa.Column("report_sop_uid", UID, nullable=True),
        sa.Column("exam_date", sa.Date(), nullable=True),
        sa.Column("screening_round", sa.String(length=16), nullable=True),
        sa.Column("protocol", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=2), nullable=True),
        sa.Column("additional_findings", sa.Integer(), nullable=False),
        sa.Column("follow_up_months", sa.Integer(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("prior_exam_date", sa.Date(), nullable=True),
        sa.Column("comparison_made", sa.Integer(), nullable=True),
        sa.Column("series_uid", UID, nullable=True),
        sa.Column("scanner_manufacturer", sa.String(length=64), nullable=True),
        sa.Column("scanner_model", sa.String(length=64), nullable=True),
        sa.Column("acquisition_protocol", sa.String(length=64), nullable=True),
        sa.Column("kvp", sa.Float(), nullable=True),
        sa.Column("exposure_mas", sa.Float(), nullable=True),
        sa.Column("pitch_factor", sa.Float(), nullable=True),
        sa.Column("slice_width_mm", sa.Float(), nullable=True),
        sa.Column("scan_length_mm", sa.Float(), nullable=True),
        sa.Column("ctdivol_mgy", sa.Float(), nullable=True),
        sa.Column("dlp_total_mgycm", sa.Float(), nullable=True),
        sa.Column("dose_source", sa.String(length=16), nullable=True),
        sa.Column("radiologist", sa.String(length=64), nullable=True),
        sa.Column("nodules", sa.Integer(), nullable=False),
        sa.Column("seeds_without_nodule", sa.Integer(), nullable=False),
        sa.Column("volumetry_unreliable", sa.Integer(), nullable=False),
        sa.Column("reader_composition", sa.Integer(), nullable=False),
        sa.Column("participant_sources_json", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["patient_pk"], ["patients.id"], name=op.f("fk_exams_patient_pk_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exams")),
        sa.UniqueConstraint("study_uid", name=op.f("uq_exams_study_uid")),
    )
    with op.batch_alter_table("exams", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exams_exam_date"), ["exam_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_exams_patient_pk"), ["patient_pk"], unique=False)

    op.create_table(
        "dose_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_uid", UID, nullable=False),
        sa.Column("source_uid", UID, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("event_index", sa.Integer(), nullable=False),
        sa.Column("event_uid", UID, nullable=True),
        sa.Column("acquisition_protocol", sa.String(length=64), nullable=True),
        sa.Column("target_region", sa.String(length=64), nullable=True),
        sa.Column("acquisition_type", sa.String(length=64), nullable=True),
        sa.Column("ctdivol_mgy", sa.Float(), nullable=True),
        sa.Column("dlp_mgycm", sa.Float(), nullable=True),
        sa.Column("scanning_length_mm", sa.Float(), nullable=True),
        sa.Column("kvp", sa.Float(), nullable=True),
        sa.Column("exposure_mas", sa.Float(), nullable=True),
        sa.Column("pitch_factor", sa.Float(), nullable=True),
        sa.Column("phantom", sa.String(length=64), nullable=True),
        sa.Column("screening", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dose_events")),
        sa.UniqueConstraint("source_uid", "event_index", name="uq_dose_events_source_uid_event_index"),
    )
    with op.batch_alter_table("dose_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dose_events_study_uid"), ["study_uid"], unique=False)

    op.create_table(
        "outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_pk", sa.Integer(), nullable=False),
        sa.Column("study_uid", UID, nullable=True),
        sa.Column("outcome_date", sa.Date(), nullable=False),
        sa.Column("outcome_type", sa.String(length=16), nullable=False),
        sa.Column("tissue_diagnosis", sa.String(length=40), nullable=True),
        sa.Column("histology", sa.String(length=128), nullable=True),
        sa.Column("stage", sa.String(length=8), nullable=True),
        sa.Column("tnm", sa.String(length=32), nullable=True),
        sa.Column("tnm_edition", sa.String(length=8), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_pk"], ["participants.id"], name=op.f("fk_outcomes_participant_pk_participants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint(
            "participant_pk",
            "outcome_date",
            "outcome_type",
            name="uq_outcomes_participant_pk_outcome_date_outcome_type",
        ),
    )
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outcomes_participant_pk"), ["participant_pk"], unique=False)


def downgrade() -> None:
    op.drop_table("outcomes")
    op.drop_table("dose_events")
    op.drop_table("exams")
    op.drop_table("participants")
