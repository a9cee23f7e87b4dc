"""The screening registry's records: participants, exams (with dose), outcomes -- writes and the export/audit reads.

* :func:`upsert_participants` (the participant file; idempotent by Patient ID + issuer; an empty cell
  never erases a stored value) and :func:`participant_from_dicom` (sex, birth date, Smoking Status
  (0010,21A0), Patient's Size / Weight where the participant file has not said);
* :func:`participant_overrides`: the participant's own family history and emphysema for PanCan;
* :func:`exam_dose`: the study's Radiation Dose SRs and the screening series' CT headers -> the exam's
  dose (CTDIvol of the screening series, DLP total, kVp, mAs, pitch, scan length) and every event;
* :func:`record_exam`: the exam record of one assessment (called by the pipeline right after the
  assessment is recorded, in the same transaction, and by the cohort generator the same way);
* :func:`import_outcomes` / :func:`add_outcome`: follow-up and diagnoses linked to a participant and exam;
* :func:`export_records` / :func:`audit_records`: what the exports and the audit read (opted-out
  participants are left out here, so no output can carry them).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update

from daemon.registry.csvfiles import Row, eligible_nlcsp
from daemon.registry.measures import ExamRecord, OutcomeRecord
from daemon.registry.pseudonym import participant_key
from daemon.registry.records import ExportExam, ExportNodule, indication
from daemon.storage.schema import (
    assessments,
    dose_events,
    exams,
    instances,
    nodule_observations,
    outbox,
    outcomes,
    participants,
    patients,
    series,
    studies,
)
from dicom_sr.dose import (
    DOSE_SR_CLASSES,
    DoseReportError,
    IrradiationEvent,
    ct_image_exposure,
    read_dose_report,
    screening_events,
)

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
PARTICIPANT_FIELDS = (
    "sex",
    "birth_date",
    "smoking_status",
    "pack_years",
    "years_since_quit",
    "family_history_lung_cancer",
    "emphysema",
    "asymptomatic",
    "shared_decision_making",
    "cessation_counselling",
    "consent",
    "opt_out_date",
    "height_m",
    "weight_kg",
)
OPTED_OUT = "opted-out"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RegistryError(ValueError):
    """A registry record cannot be written as asked; the message says why (naming the row when from a file)."""


# ------------------------------------------------------------------ participants
@dataclass(frozen=True)
class ImportSummary:
    rows: int
    inserted: int
    updated: int
    unchanged: int
    dry_run: bool


def _upsert_participant(
    conn: Connection, patient_id: str, issuer: str, values: dict[str, Any], source: str, *, only_unknown: bool = False
) -> str:
    row = conn.execute(
        select(participants).where(participants.c.patient_id == patient_id, participants.c.issuer == issuer)
    ).first()
    now = utcnow()
    if row is None:
        conn.execute(
            insert(participants),
            {
                "patient_id": patient_id,
                "issuer": issuer,
                "updated_at": now,
                "sources_json": json.dumps({k: source for k in sorted(values)}),
                **values,
            },
        )
        return "inserted"
    current = row._mapping
    changes = {k: v for k, v in values.items() if current[k] != v and not (only_unknown and current[k] is not None)}
    if not changes:
        return "unchanged"
    sources = json.loads(current["sources_json"] or "{}")
    sources.update({k: source for k in changes})
    conn.execute(
        update(participants).where(participants.c.id == current["id"]),
        {"updated_at": now, "sources_json": json.dumps(sources, sort_keys=True), **changes},
    )
    return "updated"


def upsert_participants(
    engine: Engine, rows: Sequence[Row], *, dry_run: bool = False, source: str = "participant-file"
) -> ImportSummary:
    """Insert or update each participant of the file (in one transaction; ``dry_run``: then roll back)."""
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for r in rows:
                counts[_upsert_participant(conn, r.patient_id, r.issuer, r.values, source)] += 1
        except BaseException:
            trans.rollback()
            raise
        if dry_run:
            trans.rollback()
        else:
            trans.commit()
    return ImportSummary(len(rows), counts["inserted"], counts["updated"], counts["unchanged"], dry_run)


def _da(value: object) -> dt.date | None:
    text = str(value or "")
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _float(value: object) -> float | None:
    try:
        return float(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def participant_values_from_dicom(ds: Dataset) -> dict[str, Any]:
    """What a CT header says about the participant (DICOM Patient module / Patient Study module)."""
    values: dict[str, Any] = {}
    sex = str(ds.get("PatientSex") or "").strip().upper()
    if sex in ("F", "M", "O"):
        values["sex"] = sex
    if (birth := _da(ds.get("PatientBirthDate"))) is not None:
        values["birth_date"] = birth
    if str(ds.get("SmokingStatus") or "").strip().upper() == "YES":  # (0010,21A0): NO does not say never or former
        values["smoking_status"] = "current"
    height = _float(ds.get("PatientSize"))  # metres
    if height is not None and 0.5 < height < 2.6:
        values["height_m"] = height
    weight = _float(ds.get("PatientWeight"))
    if weight is not None and 1 < weight < 400:
        values["weight_kg"] = weight
    return values


def participant_from_dicom(conn: Connection, ds: Dataset) -> None:
    """Fill what the participant file has not said from the CT header (never overwrites)."""
    patient_id = str(ds.get("PatientID") or "").strip()
    if not patient_id:
        return
    values = participant_values_from_dicom(ds)
    if values:
        _upsert_participant(
            conn, patient_id[:64], str(ds.get("IssuerOfPatientID") or "")[:64], values, "dicom", only_unknown=True
        )


def participant_overrides(engine: Engine, patient_id: str, issuer: str) -> dict[str, Any]:
    """The participant's own PanCan inputs when known (family history, emphysema)."""
    if not patient_id.strip():
        return {}
    with engine.connect() as conn:
        row = conn.execute(
            select(participants.c.family_history_lung_cancer, participants.c.emphysema).where(
                participants.c.patient_id == patient_id, participants.c.issuer == issuer
            )
        ).first()
    if row is None:
        return {}
    return {k: bool(v) for k, v in row._mapping.items() if v is not None}


# ------------------------------------------------------------------ dose
@dataclass(frozen=True)
class DoseEventRow:
    source_uid: str
    source: str
    event_index: int
    event: IrradiationEvent
    screening: bool


@dataclass(frozen=True)
class ExamDose:
    """The exam's acquisition and dose (None = not known)."""

    series_uid: str | None = None
    scanner_manufacturer: str | None = None
    scanner_model: str | None = None
    acquisition_protocol: str | None = None
    kvp: float | None = None
    exposure_mas: float | None = None
    pitch_factor: float | None = None
    slice_width_mm: float | None = None
    scan_length_mm: float | None = None
    ctdivol_mgy: float | None = None
    dlp_total_mgycm: float | None = None
    dose_source: str | None = None
    events: tuple[DoseEventRow, ...] = ()


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def dose_from_datasets(
    series_uid: str | None, ct_headers: Sequence[Dataset], dose_reports: Sequence[Dataset]
) -> ExamDose:
    """The exam dose from the screening series' CT headers and the study's dose SRs (pure)."""
    images = [ct_image_exposure(ds) for ds in ct_headers]
    z = sorted(float(ds.ImagePositionPatient[2]) for ds in ct_headers if ds.get("ImagePositionPatient"))
    first = images[0] if images else None
    slice_width = first.slice_thickness_mm if first else None
    image_length = (z[-1] - z[0] + (slice_width or 0.0)) if len(z) > 1 else None
    rows: list[DoseEventRow] = []
    if series_uid and images:
        rows.append(
            DoseEventRow(
                series_uid,
                "ct-image",
                0,
                IrradiationEvent(
                    event_uid=None,
                    acquisition_protocol=first.protocol if first else None,
                    ctdivol_mgy=_mean(i.ctdivol_mgy for i in images),
                    kvp=first.kvp if first else None,
                    pitch_factor=first.pitch_factor if first else None,
                    scanning_length_mm=image_length,
                ),
                True,
            )
        )
    series_event_uids = sorted({i.irradiation_event_uid for i in images if i.irradiation_event_uid})
    screening: list[IrradiationEvent] = []
    dlp_by_event: dict[str, float] = {}
    totals: list[float] = []
    for ds in dose_reports:
        try:
            report = read_dose_report(ds)
        except DoseReportError as exc:
            log.warning("dose SR %s not read: %s", ds.get("SOPInstanceUID"), exc)
            continue
        chosen = {id(e) for e in screening_events(report, series_event_uids)} if report.kind == "ct" else set()
        for i, e in enumerate(report.events):
            rows.append(
                DoseEventRow(
                    report.sop_instance_uid,
                    "ct-dose-sr" if report.kind == "ct" else "xray-dose-sr",
                    i,
                    e,
                    id(e) in chosen,
                )
            )
            if id(e) in chosen:
                screening.append(e)
            if e.dlp_mgycm is not None:
                dlp_by_event[e.event_uid or f"{report.sop_instance_uid}/{i}"] = e.dlp_mgycm
        if report.dlp_total_mgycm is not None:
            totals.append(report.dlp_total_mgycm)
    sr_ctdivol = _mean(e.ctdivol_mgy for e in screening)
    image_ctdivol = _mean(i.ctdivol_mgy for i in images)
    dlp_total = totals[0] if len(totals) == 1 else (sum(dlp_by_event.values()) if dlp_by_event else None)
    spiral = screening[0] if screening else None
    return ExamDose(
        series_uid=series_uid,
        scanner_manufacturer=first.manufacturer if first else None,
        scanner_model=first.model if first else None,
        acquisition_protocol=(spiral.acquisition_protocol if spiral else None) or (first.protocol if first else None),
        kvp=(first.kvp if first else None) or (spiral.kvp if spiral else None),
        exposure_mas=(first.exposure_mas if first else None) or (spiral.exposure_mas if spiral else None),
        pitch_factor=(first.pitch_factor if first else None) or (spiral.pitch_factor if spiral else None),
        slice_width_mm=slice_width,
        scan_length_mm=(sum(e.scanning_length_mm for e in screening if e.scanning_length_mm) or None)
        if screening
        else image_length,
        ctdivol_mgy=sr_ctdivol if sr_ctdivol is not None else image_ctdivol,
        dlp_total_mgycm=dlp_total,
        dose_source="ct-dose-sr" if sr_ctdivol is not None else ("ct-image" if image_ctdivol is not None else None),
        events=tuple(rows),
    )


def exam_dose(
    engine: Engine,
    archive_dir: Path,
    study_uid: str,
    series_uid: str | None,
    ct_headers: Sequence[Dataset] | None = None,
) -> ExamDose:
    """Read the screening series' headers (unless given) and the study's dose SRs from the archive."""
    q = (
        select(instances.c.path, instances.c.sop_class_uid, series.c.series_uid)
        .select_from(
            instances.join(series, series.c.id == instances.c.series_pk).join(
                studies, studies.c.id == series.c.study_pk
            )
        )
        .where(
            studies.c.study_uid == study_uid,
            or_(instances.c.sop_class_uid.in_(DOSE_SR_CLASSES), series.c.series_uid == (series_uid or "")),
        )
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    ct: list[Dataset] = list(ct_headers) if ct_headers is not None else []
    reports = []
    for r in rows:
        path = archive_dir / r.path
        if r.sop_class_uid in DOSE_SR_CLASSES:
            reports.append(dcmread(path))
        elif r.sop_class_uid == CT_IMAGE_STORAGE and ct_headers is None:
            ct.append(dcmread(path, stop_before_pixels=True))
    return dose_from_datasets(series_uid, ct, reports)


def record_analysed_exam(
    engine: Engine,
    archive_dir: Path,
    study_uid: str,
    assessment: Any,
    report_sop_uid: str,
    study_datasets: Sequence[Dataset],
) -> ExamDose:
    """The pipeline's registry write after an analysis: the participant from the CT header (where the
    participant file has not said), the exam's dose from its dose SRs and screening series, the exam record."""
    series_uid = assessment.series_uid
    headers = [ds for ds in study_datasets if str(ds.get("SeriesInstanceUID", "")) == (series_uid or "")]
    dose = exam_dose(engine, archive_dir, study_uid, series_uid, headers or None)
    with engine.begin() as conn:
        if headers:
            participant_from_dicom(conn, headers[0])
        record_exam(conn, study_uid, assessment, report_sop_uid, dose=dose)
    return dose


def study_participant_overrides(engine: Engine, study_uid: str) -> dict[str, Any]:
    """:func:`participant_overrides` of the study's patient."""
    with engine.connect() as conn:
        row = conn.execute(
            select(patients.c.patient_id, patients.c.issuer)
            .select_from(studies.join(patients, patients.c.id == studies.c.patient_pk))
            .where(studies.c.study_uid == study_uid)
        ).first()
    return participant_overrides(engine, row.patient_id or "", row.issuer or "") if row is not None else {}


# ------------------------------------------------------------------ exams
def _finding_counts(assessment: Any) -> dict[str, int]:
    found = [f for f in assessment.findings if f.measurement is not None]
    composition = [f for f in found if f.characterization.composition is not None]
    return {
        "nodules": len(found),
        "seeds_without_nodule": sum(1 for f in assessment.findings if f.measurement is None),
        "volumetry_unreliable": sum(1 for f in found if f.measurement.quality.volumetry_unreliable),
        "reader_composition": sum(1 for f in composition if f.characterization.composition.origin == "reader"),
    }


def record_exam(
    conn: Connection,
    study_uid: str,
    assessment: Any,  # dicom_sr.findings.ExamAssessment
    report_sop_uid: str,
    *,
    dose: ExamDose | None = None,
    analysed_at: dt.datetime | None = None,
    received_at: dt.datetime | None = None,
    radiologist: str | None = None,
) -> None:
    """Insert or replace the exam record of ``study_uid`` from its newest assessment.

    The exam's protocol is the one recorded with the assessment (``assessment.protocol``; the audit
    protocol's category, when one was computed alongside, is read from ``assessments`` by the exports).
    ``radiologist``: the reading radiologist; default the reader named by the seeds."""
    dose = dose or ExamDose()
    patient_pk = conn.execute(select(studies.c.patient_pk).where(studies.c.study_uid == study_uid)).scalar_one_or_none()
    if received_at is None:
        received_at = conn.execute(
            select(func.min(instances.c.received_at))
            .select_from(
                instances.join(series, series.c.id == instances.c.series_pk).join(
                    studies, studies.c.id == series.c.study_pk
                )
            )
            .where(studies.c.study_uid == study_uid)
        ).scalar_one_or_none()
    compared = [c.prior_study_date for f in assessment.findings for c in f.comparisons]
    prior = max(compared) if compared else None
    if prior is None and patient_pk is not None:
        prior = conn.execute(
            select(func.max(exams.c.exam_date)).where(
                exams.c.patient_pk == patient_pk, exams.c.exam_date < assessment.exam_date
            )
        ).scalar_one_or_none()
    readers = (
        [radiologist]
        if radiologist
        else [f.seed.reader for f in assessment.findings if f.seed is not None and f.seed.reader]
    )
    participant = assessment.participant
    values: dict[str, Any] = {
        "patient_pk": patient_pk,
        "report_sop_uid": report_sop_uid,
        "exam_date": assessment.exam_date,
        "screening_round": assessment.screening_round,
        "protocol": assessment.protocol,
        "category": assessment.category,
        "additional_findings": int(bool(assessment.additional_findings)),
        "follow_up_months": assessment.follow_up_months,
        "due_date": assessment.due_date,
        "prior_exam_date": prior,
        "comparison_made": int(bool(compared)),
        "series_uid": dose.series_uid or assessment.series_uid,
        "scanner_manufacturer": dose.scanner_manufacturer,
        "scanner_model": dose.scanner_model,
        "acquisition_protocol": (dose.acquisition_protocol or "")[:64] or None,
        "kvp": dose.kvp,
        "exposure_mas": dose.exposure_mas,
        "pitch_factor": dose.pitch_factor,
        "slice_width_mm": dose.slice_width_mm,
        "scan_length_mm": dose.scan_length_mm,
        "ctdivol_mgy": dose.ctdivol_mgy,
        "dlp_total_mgycm": dose.dlp_total_mgycm,
        "dose_source": dose.dose_source,
        "radiologist": readers[0][:64] if readers else None,
        "participant_sources_json": json.dumps(participant.sources, sort_keys=True)
        if participant is not None
        else None,
        "received_at": received_at,
        "analysed_at": analysed_at or utcnow(),
        **_finding_counts(assessment),
    }
    existing = conn.execute(select(exams.c.id).where(exams.c.study_uid == study_uid)).scalar_one_or_none()
    if existing is None:
        conn.execute(insert(exams), {"study_uid": study_uid, **values})
    else:
        conn.execute(update(exams).where(exams.c.id == existing), values)
    record_dose_events(conn, study_uid, dose.events)


def record_dose_events(conn: Connection, study_uid: str, events: Sequence[DoseEventRow]) -> None:
    """Every event once (by source object and index)."""
    for r in events:
        known = conn.execute(
            select(dose_events.c.id).where(
                dose_events.c.source_uid == r.source_uid, dose_events.c.event_index == r.event_index
            )
        ).first()
        e = r.event
        values = dict(
            study_uid=study_uid,
            source=r.source,
            event_uid=e.event_uid,
            acquisition_protocol=(e.acquisition_protocol or "")[:64] or None,
            target_region=e.target_region,
            acquisition_type=e.acquisition_type,
            ctdivol_mgy=e.ctdivol_mgy,
            dlp_mgycm=e.dlp_mgycm,
            scanning_length_mm=e.scanning_length_mm,
            kvp=e.kvp,
            exposure_mas=e.exposure_mas,
            pitch_factor=e.pitch_factor,
            phantom=e.phantom,
            screening=int(r.screening),
        )
        if known is None:
            conn.execute(insert(dose_events), {"source_uid": r.source_uid, "event_index": r.event_index, **values})
        else:
            conn.execute(update(dose_events).where(dose_events.c.id == known.id), values)


# ------------------------------------------------------------------ outcomes
def _participant_pk(conn: Connection, patient_id: str, issuer: str) -> int | None:
    pk = conn.execute(
        select(participants.c.id).where(participants.c.patient_id == patient_id, participants.c.issuer == issuer)
    ).scalar_one_or_none()
    if pk is not None:
        return int(pk)
    known = conn.execute(
        select(patients.c.id).where(patients.c.patient_id == patient_id, patients.c.issuer == issuer)
    ).first()
    if known is None:
        return None
    conn.execute(
        insert(participants).values(patient_id=patient_id, issuer=issuer, updated_at=utcnow(), sources_json="{}")
    )
    return _participant_pk(conn, patient_id, issuer)


def _exam_of(conn: Connection, patient_id: str, issuer: str, values: dict[str, Any], where: str) -> str | None:
    base = (
        select(exams.c.study_uid, exams.c.exam_date)
        .select_from(
            exams.join(studies, studies.c.study_uid == exams.c.study_uid).join(
                patients, patients.c.id == exams.c.patient_pk
            )
        )
        .where(patients.c.patient_id == patient_id, patients.c.issuer == issuer)
    )
    if values.get("study_uid"):
        row = conn.execute(base.where(exams.c.study_uid == values["study_uid"])).first()
        if row is None:
            raise RegistryError(f"{where}: study_uid {values['study_uid']} is not a screening exam of this participant")
        return str(row.study_uid)
    if values.get("accession_number"):
        row = conn.execute(base.where(studies.c.accession_number == values["accession_number"])).first()
        if row is None:
            raise RegistryError(
                f"{where}: accession_number {values['accession_number']!r} is not a screening exam of this participant"
            )
        return str(row.study_uid)
    row = conn.execute(
        base.where(exams.c.exam_date <= values["outcome_date"]).order_by(exams.c.exam_date.desc()).limit(1)
    ).first()
    return str(row.study_uid) if row is not None else None


def _add_outcome(
    conn: Connection, patient_id: str, issuer: str, values: dict[str, Any], source: str, where: str
) -> str:
    pk = _participant_pk(conn, patient_id, issuer)
    if pk is None:
        raise RegistryError(
            f"{where}: no participant or patient with patient_id {patient_id!r}"
            f"{f' and issuer {issuer!r}' if issuer else ''} is known (import the participant first)"
        )
    study_uid = _exam_of(conn, patient_id, issuer, values, where)
    record = {k: values.get(k) for k in ("tissue_diagnosis", "histology", "stage", "tnm", "tnm_edition")}
    key = and_(
        outcomes.c.participant_pk == pk,
        outcomes.c.outcome_date == values["outcome_date"],
        outcomes.c.outcome_type == values["outcome_type"],
    )
    existing = conn.execute(select(outcomes).where(key)).first()
    if existing is None:
        conn.execute(
            insert(outcomes),
            {
                "participant_pk": pk,
                "study_uid": study_uid,
                "outcome_date": values["outcome_date"],
                "outcome_type": values["outcome_type"],
                "source": source,
                "created_at": utcnow(),
                **record,
            },
        )
        return "inserted"
    changes = {
        k: v for k, v in {**record, "study_uid": study_uid}.items() if existing._mapping[k] != v and v is not None
    }
    if not changes:
        return "unchanged"
    conn.execute(update(outcomes).where(outcomes.c.id == existing.id).values(**changes))
    return "updated"


def import_outcomes(engine: Engine, rows: Sequence[Row], *, dry_run: bool = False) -> ImportSummary:
    """Every outcome of the file (idempotent by participant, date and type); all or nothing."""
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    errors: list[str] = []
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for r in rows:
                try:
                    counts[_add_outcome(conn, r.patient_id, r.issuer, r.values, "outcome-file", f"row {r.row}")] += 1
                except RegistryError as exc:
                    errors.append(str(exc))
        except BaseException:
            trans.rollback()
            raise
        if errors or dry_run:
            trans.rollback()
        else:
            trans.commit()
    if errors:
        raise RegistryError(f"{len(errors)} problem(s), nothing imported:\n" + "\n".join(errors[:20]))
    return ImportSummary(len(rows), counts["inserted"], counts["updated"], counts["unchanged"], dry_run)


def add_outcome(engine: Engine, patient_id: str, issuer: str, values: dict[str, Any]) -> str:
    with engine.begin() as conn:
        return _add_outcome(conn, patient_id, issuer, values, "cli", "outcome")


# ------------------------------------------------------------------ reads for export and audit
def _age(birth: dt.date | None, on: dt.date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _exam_rows(conn: Connection, until: dt.date) -> list[Any]:
    q = (
        select(
            exams,
            patients.c.patient_id,
            patients.c.issuer,
            patients.c.name,
            patients.c.birth_date.label("dicom_birth_date"),
            patients.c.sex.label("dicom_sex"),
            studies.c.accession_number,
            # the assessment the exam record was made from: its protocol version and the audit protocol's category
            assessments.c.protocol_version.label("a_protocol_version"),
            assessments.c.audit_protocol.label("a_audit_protocol"),
            assessments.c.audit_category.label("a_audit_category"),
            *[participants.c[f].label(f"p_{f}") for f in PARTICIPANT_FIELDS],
        )
        .select_from(
            exams.join(patients, patients.c.id == exams.c.patient_pk)
            .join(studies, studies.c.study_uid == exams.c.study_uid)
            .outerjoin(assessments, assessments.c.report_sop_uid == exams.c.report_sop_uid)
            .outerjoin(
                participants,
                and_(participants.c.patient_id == patients.c.patient_id, participants.c.issuer == patients.c.issuer),
            )
        )
        .where(exams.c.exam_date <= until)
        .order_by(exams.c.patient_pk, exams.c.exam_date, exams.c.id)
    )
    return list(conn.execute(q))


@functools.lru_cache(maxsize=65536)
def _pseudonym(patient_id: str, issuer: str, key: str) -> str:
    return participant_key(patient_id, issuer, key)


def category_in(row: Any, protocol: str) -> str | None:
    """The exam's category in ``protocol``: the reported one when the exam was assessed with it, else the
    audit protocol's recorded category when that protocol was computed alongside, else None."""
    if row.protocol == protocol:
        return str(row.category) if row.category is not None else None
    if row.a_audit_protocol == protocol:
        return str(row.a_audit_category) if row.a_audit_category is not None else None
    return None


def _key(row: Any, key: str, identified: bool) -> str:
    return str(row.patient_id) if identified else _pseudonym(row.patient_id or "", row.issuer or "", key)


@dataclass
class RegistryRead:
    exams: list[Any] = field(default_factory=list)
    opted_out_exams: int = 0


def _read(conn: Connection, until: dt.date) -> RegistryRead:
    out = RegistryRead()
    for row in _exam_rows(conn, until):
        if row.p_consent == OPTED_OUT:
            out.opted_out_exams += 1
            continue
        out.exams.append(row)
    return out


def export_records(
    engine: Engine,
    *,
    key: str,
    period_from: dt.date,
    period_to: dt.date,
    identified: bool = False,
    facility_id: str = "",
) -> tuple[list[ExportExam], int]:
    """The exams dated within the period (opted-out participants excluded) and how many were excluded."""
    with engine.connect() as conn:
        read = _read(conn, period_to)
        in_period = [r for r in read.exams if period_from <= r.exam_date <= period_to]
        excluded = conn.execute(
            select(func.count())
            .select_from(
                exams.join(patients, patients.c.id == exams.c.patient_pk).join(
                    participants,
                    and_(
                        participants.c.patient_id == patients.c.patient_id, participants.c.issuer == patients.c.issuer
                    ),
                )
            )
            .where(
                participants.c.consent == OPTED_OUT, exams.c.exam_date >= period_from, exams.c.exam_date <= period_to
            )
        ).scalar_one()
        nodules: dict[str, list[ExportNodule]] = defaultdict(list)
        if in_period:
            q = (
                select(nodule_observations)
                .select_from(
                    nodule_observations.join(exams, exams.c.report_sop_uid == nodule_observations.c.report_sop_uid)
                )
                .where(
                    exams.c.exam_date >= period_from,
                    exams.c.exam_date <= period_to,
                    nodule_observations.c.derived == 0,
                    nodule_observations.c.study_uid == exams.c.study_uid,
                )
                .order_by(nodule_observations.c.id)
            )
            for n in conn.execute(q):
                nodules[n.report_sop_uid].append(
                    ExportNodule(
                        n.tracking_id,
                        n.tracking_uid,
                        n.volume_mm3,
                        n.mean_diameter_mm,
                        n.composition,
                        n.status,
                        n.category,
                        n.error,
                    )
                )
    previous: dict[int, Any] = {}
    last_by_patient: dict[int, Any] = {}
    for r in read.exams:
        previous[r.id] = last_by_patient.get(r.patient_pk)
        last_by_patient[r.patient_pk] = r
    out = []
    for r in in_period:
        prev = previous[r.id]
        birth = r.p_birth_date or r.dicom_birth_date
        smoking = r.p_smoking_status
        out.append(
            ExportExam(
                exam_id=r.id,
                participant_key=_key(r, key, False),
                study_uid=r.study_uid,
                exam_date=r.exam_date,
                facility_id=facility_id,
                patient_id=r.patient_id if identified else None,
                issuer=r.issuer if identified else None,
                patient_name=r.name if identified else None,
                birth_date=birth if identified else None,
                accession_number=r.accession_number if identified else None,
                sex=r.p_sex or r.dicom_sex,
                age_years=_age(birth, r.exam_date),
                smoking_status=smoking,
                pack_years=r.p_pack_years,
                years_since_quit=r.p_years_since_quit,
                family_history_lung_cancer=r.p_family_history_lung_cancer,
                emphysema=r.p_emphysema,
                shared_decision_making=r.p_shared_decision_making,
                cessation_counselling=r.p_cessation_counselling,
                height_m=r.p_height_m,
                weight_kg=r.p_weight_kg,
                eligible=eligible_nlcsp(
                    _age(birth, r.exam_date), smoking, r.p_pack_years, r.p_years_since_quit, r.p_asymptomatic
                ),
                indication=indication(
                    prev.category if prev else None, prev.follow_up_months if prev else None, prev is None
                ),
                scanner_manufacturer=r.scanner_manufacturer,
                scanner_model=r.scanner_model,
                kvp=r.kvp,
                exposure_mas=r.exposure_mas,
                pitch_factor=r.pitch_factor,
                slice_width_mm=r.slice_width_mm,
                scan_length_mm=r.scan_length_mm,
                ctdivol_mgy=r.ctdivol_mgy,
                dlp_total_mgycm=r.dlp_total_mgycm,
                dose_source=r.dose_source,
                prior_exam_date=r.prior_exam_date or (prev.exam_date if prev else None),
                comparison_made=bool(r.comparison_made) if r.comparison_made is not None else None,
                protocol=r.protocol,
                protocol_version=r.a_protocol_version or ("v2022" if r.protocol == "lung-rads-2022" else ""),
                lung_rads_category=category_in(r, "lung-rads-2022"),
                nlcsp_category=category_in(r, "nlcsp"),
                category=r.category,
                additional_findings=bool(r.additional_findings),
                follow_up_months=r.follow_up_months,
                due_date=r.due_date,
                radiologist=r.radiologist,
                nodules=tuple(nodules.get(r.report_sop_uid or "", ())),
            )
        )
    return out, int(excluded)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def audit_records(
    engine: Engine, *, key: str, as_of: dt.date, identified: bool = False, protocol: str = "nlcsp"
) -> tuple[list[ExamRecord], list[OutcomeRecord]]:
    """Every exam up to ``as_of`` of the participants who have not opted out, and their outcomes; each exam's
    category is its category in ``protocol`` (:func:`category_in`; None when not assessed with it)."""
    with engine.connect() as conn:
        read = _read(conn, as_of)
        # every delivered object (a dictionary lookup per exam: joining on report_sop_uid costs a scan per row)
        delivered_at = {
            uid: at
            for uid, at in conn.execute(
                select(outbox.c.sop_instance_uid, func.max(outbox.c.delivered_at))
                .where(outbox.c.state == "delivered")
                .group_by(outbox.c.sop_instance_uid)
            )
        }
        out_rows = conn.execute(
            select(
                outcomes,
                participants.c.patient_id,
                participants.c.issuer,
                participants.c.consent,
                exams.c.id.label("exam_id"),
            ).select_from(
                outcomes.join(participants, participants.c.id == outcomes.c.participant_pk).outerjoin(
                    exams, exams.c.study_uid == outcomes.c.study_uid
                )
            )
        ).all()
    records = [
        ExamRecord(
            exam_id=r.id,
            participant_key=_key(r, key, identified),
            exam_date=r.exam_date,
            category=category_in(r, protocol),
            additional_findings=bool(r.additional_findings),
            follow_up_months=r.follow_up_months,
            due_date=r.due_date,
            ctdivol_mgy=r.ctdivol_mgy,
            dlp_total_mgycm=r.dlp_total_mgycm,
            scanner=" ".join(x for x in (r.scanner_manufacturer, r.scanner_model) if x) or None,
            protocol=r.acquisition_protocol,
            radiologist=r.radiologist,
            received_at=_aware(r.received_at),
            analysed_at=_aware(r.analysed_at),
            delivered_at=_aware(delivered_at.get(r.report_sop_uid)),
            nodules=r.nodules,
            seeds_without_nodule=r.seeds_without_nodule,
            volumetry_unreliable=r.volumetry_unreliable,
            reader_composition=r.reader_composition,
            smoking_status=r.p_smoking_status,
        )
        for r in read.exams
    ]
    outs = [
        OutcomeRecord(
            participant_key=_key(o, key, identified),
            outcome_date=o.outcome_date,
            outcome_type=o.outcome_type,
            tissue_diagnosis=o.tissue_diagnosis,
            exam_id=o.exam_id,
        )
        for o in out_rows
        if o.consent != OPTED_OUT
    ]
    return records, outs
