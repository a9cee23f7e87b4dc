"""Longitudinal writes: each assessment and every nodule observation, into the index.

The record a programme follows its participants by: one ``assessments`` row per SR noduled
wrote, one ``nodule_observations`` row per nodule and exam (measured now, or re-measured on a
prior CT noduled had no record of: ``derived``).  Idempotent per SR.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from daemon.analysis.chain import AnalysisResult
from daemon.analysis.protocol import ProtocolAssessment
from daemon.storage.schema import assessments, nodule_observations, studies
from dicom_sr.findings import ExamAssessment


def record_assessment(
    engine: Engine, study_uid: str, result: AnalysisResult, *, conn: Connection | None = None
) -> None:
    """The assessment and every nodule, into the index (idempotent per SR); inside ``conn``'s
    transaction when given (the one that also creates the outbox rows and marks the study done)."""

    def write(c: Connection) -> None:
        write_assessment(
            c,
            study_uid,
            result.assessment,
            result.assessment_json,
            str(result.report.SOPInstanceUID),
            str(result.seg.SOPInstanceUID) if result.seg is not None else None,
            audit=result.audit,
        )

    if conn is None:
        with engine.begin() as own:
            write(own)
    else:
        write(conn)


def write_assessment(
    conn: Connection,
    study_uid: str,
    a: ExamAssessment,
    assessment_json: dict[str, Any],
    sr_uid: str,
    seg_uid: str | None,
    *,
    created_at: dt.datetime | None = None,
    audit: ProtocolAssessment | None = None,
) -> bool:
    """:func:`record_assessment` on an open transaction, from the assessment itself (the registry's
    cohort generator writes through here too); False when this SR is recorded already.  ``a.protocol`` is the
    protocol reported; ``audit`` the audit protocol's assessment computed alongside (recorded, not reported)."""
    if conn.execute(select(assessments.c.id).where(assessments.c.report_sop_uid == sr_uid)).first():
        return False
    patient_pk = conn.execute(select(studies.c.patient_pk).where(studies.c.study_uid == study_uid)).scalar_one_or_none()
    conn.execute(
        insert(assessments),
        dict(
            study_uid=study_uid,
            report_sop_uid=sr_uid,
            seg_sop_uid=seg_uid,
            exam_date=a.exam_date,
            screening_round=a.screening_round,
            category=a.category,
            additional_findings=int(a.additional_findings),
            management=a.management,
            follow_up_months=a.follow_up_months,
            due_date=a.due_date,
            decisive_tracking_uid=a.decisive_tracking_uid,
            assessment_json=json.dumps(assessment_json, sort_keys=True),
            created_at=created_at or dt.datetime.now(dt.UTC),
            protocol=a.protocol,
            protocol_version=a.protocol_version or None,
            audit_protocol=audit.protocol if audit is not None else None,
            audit_category=audit.category if audit is not None else None,
            audit_assessment_json=json.dumps(audit.assessment_json, sort_keys=True) if audit is not None else None,
        ),
    )
    for f in a.findings:
        _record_prior_time_points(conn, f, patient_pk, sr_uid)
        m = f.measurement
        c = f.characterization.composition
        centroid = m.centroid_lps_mm if m is not None else (None, None, None)
        conn.execute(
            insert(nodule_observations),
            dict(
                report_sop_uid=sr_uid,
                study_uid=study_uid,
                patient_pk=patient_pk,
                tracking_uid=f.tracking_uid,
                tracking_id=f.tracking_id,
                exam_date=a.exam_date,
                volume_mm3=m.volume_mm3 if m else None,
                volume_convention=m.volume_convention if m else None,
                mean_diameter_mm=m.mean_diameter_mm if m else None,
                max_axial_diameter_mm=m.max_axial_diameter_mm if m else None,
                solid_volume_mm3=m.solid_volume_mm3 if m else None,
                composition=str(c.value) if c is not None else None,
                status=f.status,
                category=f.category,
                centroid_x_mm=centroid[0],
                centroid_y_mm=centroid[1],
                centroid_z_mm=centroid[2],
                derived=0,
                error=f.error,
            ),
        )
    return True


def _record_prior_time_points(conn, finding, patient_pk, sr_uid: str) -> None:  # type: ignore[no-untyped-def]
    """The nodule at earlier time points noduled had no record of (re-measured on the prior CT):
    into the longitudinal record, marked derived."""
    for c in finding.comparisons:
        known = conn.execute(
            select(nodule_observations.c.id).where(
                nodule_observations.c.tracking_uid == finding.tracking_uid,
                nodule_observations.c.study_uid == c.prior_study_uid,
            )
        ).first()
        if known is not None or c.prior_measurement is None:
            continue
        pm = c.prior_measurement
        conn.execute(
            insert(nodule_observations).values(
                report_sop_uid=sr_uid,
                study_uid=c.prior_study_uid,
                patient_pk=patient_pk,
                tracking_uid=finding.tracking_uid,
                tracking_id=finding.tracking_id,
                exam_date=c.prior_study_date,
                volume_mm3=pm.volume_mm3,
                volume_convention=pm.volume_convention,
                mean_diameter_mm=pm.mean_diameter_mm,
                max_axial_diameter_mm=pm.max_axial_diameter_mm,
                solid_volume_mm3=pm.solid_volume_mm3,
                composition=None,
                status=None,
                category=c.prior_category,
                centroid_x_mm=pm.centroid_lps_mm[0],
                centroid_y_mm=pm.centroid_lps_mm[1],
                centroid_z_mm=pm.centroid_lps_mm[2],
                derived=1,
                error=None,
            )
        )
