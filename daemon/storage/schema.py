"""The index database schema (SQLAlchemy Core).

The archive's files are the record; the index says what is in them so that
later stages can find a patient's studies, a study's series and a series'
instances without opening files.  Schema changes go through Alembic
migrations in ``daemon/migrations/versions`` (the model here and the newest
migration must agree; ``tests/test_schema.py`` checks it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from daemon.storage.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

UID = String(64)

patients = Table(
    "patients",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", String(64), nullable=False),  # (0010,0020), may be "" when absent
    Column("issuer", String(64), nullable=False, default=""),  # (0010,0021)
    Column("name", String(324)),  # kept for the operator's views only; never logged
    Column("birth_date", Date),
    Column("sex", String(16)),
    UniqueConstraint("patient_id", "issuer", name="uq_patients_patient_id_issuer"),
)

studies = Table(
    "studies",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", UID, nullable=False, unique=True),
    Column("patient_pk", Integer, ForeignKey("patients.id"), nullable=False, index=True),
    Column("study_date", Date),
    Column("study_time", String(16)),
    Column("accession_number", String(16)),
    Column("description", String(64)),
    Column("patient_age", String(4)),  # (0010,1010) as sent, e.g. "062Y"
)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("series_uid", UID, nullable=False, unique=True),
    Column("study_pk", Integer, ForeignKey("studies.id"), nullable=False, index=True),
    Column("modality", String(16)),
    Column("series_number", Integer),
    Column("description", String(64)),
    Column("frame_of_reference_uid", UID),
    Column("slice_thickness_mm", Float),
    Column("convolution_kernel", String(64)),
    Column("image_orientation", String(128)),  # "1\\0\\0\\0\\1\\0" as sent
    Column("ctdivol_mgy", Float),
    Column("manufacturer", String(64)),
)

instances = Table(
    "instances",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sop_instance_uid", UID, nullable=False, unique=True),
    Column("series_pk", Integer, ForeignKey("series.id"), nullable=False),
    Column("sop_class_uid", UID, nullable=False),
    Column("instance_number", Integer),
    Column("transfer_syntax_uid", UID, nullable=False),
    Column("path", Text, nullable=False),  # relative to the archive directory
    Column("size_bytes", BigInteger, nullable=False),
    Column("calling_ae", String(16)),
    Column("received_at", UTCDateTime(), nullable=False),  # when a study was last touched is derived from these
    # the file was deleted by the retention policy ([storage] retention_days, high-water mark); the row stays,
    # so the study stays in the index, and readers of files skip it (a prior is fetched from the PACS again)
    Column("purged_at", UTCDateTime()),
    Index("ix_instances_series_pk", "series_pk"),
)

# ----------------------------------------------------------------- analysis
# One row per study the node has seen with CT: where its analysis stands.
# state: "awaiting-seeds" | "queued" | "running" | "done" | "failed"
analyses = Table(
    "analyses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", UID, nullable=False, unique=True),
    Column("state", String(24), nullable=False),
    Column("reason", Text),  # why it failed / what it waits for, in words
    Column("seeds_fingerprint", String(64)),  # the seed objects the queued/running analysis uses
    Column("analysed_fingerprint", String(64)),  # the seed objects of the last finished analysis
    Column("attempts", Integer, nullable=False, default=0),
    Column("report_sop_uid", UID),  # the newest SR of this study
    Column("seg_sop_uid", UID),
    Column("queued_at", UTCDateTime()),
    Column("started_at", UTCDateTime()),
    Column("lease_until", UTCDateTime()),  # a running analysis owns the study until then
    Column("finished_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index("ix_analyses_state", "state"),
)

# Every assessment the node reported (one per SR; re-analyses add rows).
assessments = Table(
    "assessments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", UID, nullable=False, index=True),
    Column("report_sop_uid", UID, nullable=False, unique=True),
    Column("seg_sop_uid", UID),
    Column("exam_date", Date),
    Column("screening_round", String(16)),
    Column("category", String(2), nullable=False),
    Column("additional_findings", Integer, nullable=False, default=0),
    Column("management", Text),
    Column("follow_up_months", Integer),
    Column("due_date", Date),
    Column("decisive_tracking_uid", UID),
    Column("assessment_json", Text, nullable=False),  # noduled.assessment/1 document
    Column("created_at", UTCDateTime(), nullable=False),
    # the protocol of ``category`` ("nlcsp" | "lung-rads-2022") and its version ("v2022"; "" for NLCSP)
    Column("protocol", String(16), nullable=False, server_default="nlcsp"),
    Column("protocol_version", String(16)),
    # [analysis] audit_protocol: its category and document, recorded alongside, never reported
    Column("audit_protocol", String(16)),
    Column("audit_category", String(2)),
    Column("audit_assessment_json", Text),
)

# The longitudinal record: each nodule (tracking UID) at each time point.
nodule_observations = Table(
    "nodule_observations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("report_sop_uid", UID, nullable=False, index=True),
    Column("study_uid", UID, nullable=False),
    Column("patient_pk", Integer, ForeignKey("patients.id"), index=True),
    Column("tracking_uid", UID, nullable=False, index=True),
    Column("tracking_id", String(64), nullable=False),
    Column("exam_date", Date),
    Column("volume_mm3", Float),
    Column("volume_convention", String(24)),  # segmentation.types: "radiologists-outline" | "partial-volume"
    Column("mean_diameter_mm", Float),
    Column("max_axial_diameter_mm", Float),
    Column("solid_volume_mm3", Float),
    Column("composition", String(16)),
    Column("status", String(24)),
    Column("category", String(2)),
    Column("centroid_x_mm", Float),
    Column("centroid_y_mm", Float),
    Column("centroid_z_mm", Float),
    Column("derived", Integer, nullable=False, default=0),  # 1 = category derived, not reported then
    Column("error", Text),
)

# ----------------------------------------------------------------- delivery
# One row per (object, destination). state: "pending" | "delivered" | "expired"; a pending row with a
# commitment_uid was stored (C-STORE answered at stored_at) and waits for the destination's Storage Commitment
# report until next_attempt_at, then it is sent again.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sop_instance_uid", UID, nullable=False),
    Column("study_uid", UID, nullable=False),
    Column("path", Text, nullable=False),  # relative to the archive directory
    Column("destination", String(128), nullable=False),  # "AE@host:port"
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Column("last_error", Text),
    Column("claimed_until", UTCDateTime()),  # a delivery run holds the row until then
    Column("commitment_uid", UID),  # Transaction UID of the Storage Commitment request the row waits for
    Column("stored_at", UTCDateTime()),  # when the destination answered the C-STORE
    Index("ix_outbox_commitment_uid", "commitment_uid"),
    UniqueConstraint("sop_instance_uid", "destination", name="uq_outbox_sop_instance_uid_destination"),
    Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
)

# ----------------------------------------------------------------- screening registry (issue 16)
# The participant as the screening programme knows them (participant file, DICOM where present).
# Flags are 1 / 0 / NULL (unknown).  consent: "consented" | "opted-out" | "unknown"; an opted-out
# participant is never exported and never appears in an audit.
participants = Table(
    "participants",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("patient_id", String(64), nullable=False),
    Column("issuer", String(64), nullable=False, default=""),
    Column("sex", String(1)),
    Column("birth_date", Date),
    Column("smoking_status", String(16)),  # current | former | never | unknown
    Column("pack_years", Float),
    Column("years_since_quit", Float),
    Column("family_history_lung_cancer", Integer),
    Column("emphysema", Integer),
    Column("asymptomatic", Integer),
    Column("shared_decision_making", Integer),
    Column("cessation_counselling", Integer),
    Column("consent", String(16)),
    Column("opt_out_date", Date),
    Column("height_m", Float),
    Column("weight_kg", Float),
    Column("sources_json", Text),  # field -> "participant-file" | "dicom" | "cli"
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("patient_id", "issuer", name="uq_participants_patient_id_issuer"),
)

# One row per screening exam (study) noduled assessed: the registry's exam record.
exams = Table(
    "exams",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", UID, nullable=False, unique=True),
    Column("patient_pk", Integer, ForeignKey("patients.id"), index=True),
    Column("report_sop_uid", UID),  # the newest assessment (SR) this record reflects
    Column("exam_date", Date, index=True),
    Column("screening_round", String(16)),  # baseline | follow-up (the protocol's)
    Column("protocol", String(16), nullable=False, default="nlcsp"),
    Column("category", String(2)),
    Column("additional_findings", Integer, nullable=False, default=0),
    Column("follow_up_months", Integer),
    Column("due_date", Date),
    Column("prior_exam_date", Date),
    Column("comparison_made", Integer),
    Column("series_uid", UID),  # the CT series analysed (the screening series)
    Column("scanner_manufacturer", String(64)),
    Column("scanner_model", String(64)),
    Column("acquisition_protocol", String(64)),
    Column("kvp", Float),
    Column("exposure_mas", Float),
    Column("pitch_factor", Float),
    Column("slice_width_mm", Float),
    Column("scan_length_mm", Float),
    Column("ctdivol_mgy", Float),  # of the screening series (mean over its irradiation events)
    Column("dlp_total_mgycm", Float),  # the dose SR's DLP total (whole study)
    Column("dose_source", String(16)),  # "ct-dose-sr" | "ct-image"
    Column("radiologist", String(64)),  # the reader who marked the seeds
    Column("nodules", Integer, nullable=False, default=0),
    Column("seeds_without_nodule", Integer, nullable=False, default=0),
    Column("volumetry_unreliable", Integer, nullable=False, default=0),
    Column("reader_composition", Integer, nullable=False, default=0),
    Column("participant_sources_json", Text),  # PanCan inputs: field -> "participant-file" | "site-config" | ...
    Column("received_at", UTCDateTime()),
    Column("analysed_at", UTCDateTime()),
)

# Every irradiation event of every dose object (Radiation Dose SR) and CT image series of a study.
dose_events = Table(
    "dose_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", UID, nullable=False, index=True),
    Column("source_uid", UID, nullable=False),  # dose SR SOP Instance UID, or the CT series UID
    Column("source", String(16), nullable=False),  # "ct-dose-sr" | "xray-dose-sr" | "ct-image"
    Column("event_index", Integer, nullable=False),
    Column("event_uid", UID),
    Column("acquisition_protocol", String(64)),
    Column("target_region", String(64)),
    Column("acquisition_type", String(64)),
    Column("ctdivol_mgy", Float),
    Column("dlp_mgycm", Float),
    Column("scanning_length_mm", Float),
    Column("kvp", Float),
    Column("exposure_mas", Float),
    Column("pitch_factor", Float),
    Column("phantom", String(64)),
    Column("screening", Integer, nullable=False, default=0),  # 1 = an event of the screening series
    UniqueConstraint("source_uid", "event_index", name="uq_dose_events_source_uid_event_index"),
)

# Follow-up procedures and diagnoses, linked to a participant and the exam they follow.
outcomes = Table(
    "outcomes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("participant_pk", Integer, ForeignKey("participants.id"), nullable=False, index=True),
    Column("study_uid", UID),  # the screening exam it follows
    Column("outcome_date", Date, nullable=False),
    Column("outcome_type", String(16), nullable=False),
    Column("tissue_diagnosis", String(40)),
    Column("histology", String(128)),
    Column("stage", String(8)),
    Column("tnm", String(32)),
    Column("tnm_edition", String(8)),
    Column("source", String(16), nullable=False),  # "outcome-file" | "cli"
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint(
        "participant_pk", "outcome_date", "outcome_type", name="uq_outcomes_participant_pk_outcome_date_outcome_type"
    ),
)

# The configuration ``noduled serve`` publishes for its workers (daemon/workflow/shared_config.py):
# one row per section ("destinations", "pacs", "site", "analysis"), the value as JSON.
shared_config = Table(
    "shared_config",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value_json", Text, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
