"""``analyze_study(study_uid)``: the node's analysis of one archived study (DESIGN §1).

The thin I/O shell around :func:`daemon.analysis.analyze`: it reads the
study's CT images and seed objects from the archive, runs the pure stages,
stores the SR and SEG in the archive (so they are indexed like any received
instance), records the assessment and every nodule in the index (the
longitudinal record), and queues both objects for delivery.

Idempotent: the SR and SEG UIDs are derived from the study and its seed
objects, so running the same analysis twice stores, records and delivers the
same objects once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Engine, insert, or_, select, update

from daemon import metrics
from daemon.analysis import AnalysisInputs, AnalysisResult, SiteDefaults, analyze
from daemon.comparison import PriorExam, PriorNodule
from daemon.archive import Archive
from daemon.settings import PACSSettings
from daemon.schema import analyses, assessments, instances, nodule_observations, patients, series, studies

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SEED_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
)
OUR_MANUFACTURER = "noduled"


class PermanentError(Exception):
    """The study cannot be analysed as it is; retrying will not help."""


class StudyBusy(Exception):
    """Another worker is analysing the study right now (try again later)."""


class WaitingForPriors(Exception):
    """The PACS could not give the priors; the study waits (the monitor queues it again)."""


LEASE = dt.timedelta(minutes=15)  # longer than any analysis; a dead worker's study is taken over after it


@dataclass
class NodeContext:
    """What a running analysis needs from the node."""

    engine: Engine
    archive: Archive
    site: SiteDefaults
    enqueue_delivery: Callable[[str, str, str], None] | None = None  # (sop_uid, study_uid, relative path)
    lookback_years: float = 10.0
    max_priors: int = 4
    screening_description_regex: str = r"(?i)screen|ldct|low[ -]?dose|nlcsp|lung ca"
    pacs: PACSSettings | None = None  # where priors are queried and retrieved from
    ae_title: str = "NODULED"  # ours: calling AE and C-MOVE destination


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class StudyFiles:
    ct_paths: list[Path]
    seed_paths: list[Path]  # SR / GSPS not written by noduled
    candidate_uids: tuple[str, ...]  # their SOP Instance UIDs (what the stability check fingerprints)


def study_files(engine: Engine, archive: Archive, study_uid: str) -> StudyFiles:
    """The study's CT images and candidate seed objects, from the index."""
    q = (
        select(instances.c.path, instances.c.sop_class_uid, instances.c.sop_instance_uid, series.c.manufacturer)
        .select_from(instances.join(series, series.c.id == instances.c.series_pk).join(studies, studies.c.id == series.c.study_pk))
        .where(studies.c.study_uid == study_uid)
        .order_by(instances.c.path)
    )
    ct, seeds, uids = [], [], []
    with engine.connect() as conn:
        for row in conn.execute(q):
            if row.sop_class_uid == CT_IMAGE_STORAGE:
                ct.append(archive.path_of(row.path))
            elif is_seed_candidate(row.sop_class_uid, row.manufacturer):
                seeds.append(archive.path_of(row.path))
                uids.append(row.sop_instance_uid)
    return StudyFiles(ct, seeds, tuple(uids))


def is_seed_candidate(sop_class_uid: str, manufacturer: str | None) -> bool:
    """An SR or GSPS not written by noduled: it may carry the reader's seeds."""
    return sop_class_uid in SEED_CLASSES and (manufacturer or "").strip().lower() != OUR_MANUFACTURER


def candidates_fingerprint(sop_uids) -> str:  # type: ignore[no-untyped-def]
    """Identifies the set of seed candidates of a study; a new one means re-analysis."""
    return hashlib.sha256("\n".join(sorted(sop_uids)).encode()).hexdigest()[:32]


def seed_objects(paths: list[Path]) -> list[Dataset]:
    """The seed objects among ``paths`` (SR/GSPS that carry marks or reader labels)."""
    from dicom_sr.seeds import is_seed_object

    out = []
    for path in paths:
        ds = dcmread(path)
        if is_seed_object(ds):
            out.append(ds)
    return out


def claim_study(engine: Engine, study_uid: str, fingerprint: str) -> None:
    """Take the study's analysis lease (one analysis per study at a time), or raise :class:`StudyBusy`."""
    now = utcnow()
    with engine.begin() as conn:
        free = or_(analyses.c.state != "running", analyses.c.lease_until.is_(None), analyses.c.lease_until < now)
        taken = conn.execute(
            update(analyses)
            .where(analyses.c.study_uid == study_uid, free)
            .values(state="running", started_at=now, lease_until=now + LEASE, seeds_fingerprint=fingerprint,
                    attempts=analyses.c.attempts + 1, reason=None, updated_at=now)
        ).rowcount
        if not taken:
            exists = conn.execute(select(analyses.c.id).where(analyses.c.study_uid == study_uid)).first()
            if exists is None:
                conn.execute(insert(analyses).values(study_uid=study_uid, state="running", started_at=now, lease_until=now + LEASE,
                                                     seeds_fingerprint=fingerprint, attempts=1, updated_at=now))
                return
            raise StudyBusy(study_uid)


def _set_state(engine: Engine, study_uid: str, **values) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(update(analyses).where(analyses.c.study_uid == study_uid).values(updated_at=utcnow(), **values))


def _store(ctx: NodeContext, ds: Dataset) -> str:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    result = ctx.archive.store(buf.getvalue(), calling_ae=None)
    return ctx.archive.relative_path(result.study_uid, result.series_uid, result.sop_instance_uid)


def _predecessor(ctx: NodeContext, study_uid: str) -> Dataset | None:
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(instances.c.path)
            .select_from(analyses.join(instances, instances.c.sop_instance_uid == analyses.c.report_sop_uid))
            .where(analyses.c.study_uid == study_uid)
        ).first()
    return dcmread(ctx.archive.path_of(row.path)) if row else None


def _fetch_priors(ctx: NodeContext, study_uid: str) -> list[str]:
    """Retrieve the patient's priors the PACS holds and the archive does not; notes for the report.

    When the PACS cannot give them, the study waits (:class:`WaitingForPriors`)
    unless it has waited ``report_without_priors_after_min`` already: then
    the report goes out without them and says so.
    """
    from daemon.priors import PriorsUnavailable, fetch_missing_priors

    if ctx.pacs is None:
        return []
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(patients.c.patient_id, patients.c.issuer, studies.c.study_date, analyses.c.queued_at, analyses.c.state)
            .select_from(studies.join(patients, patients.c.id == studies.c.patient_pk).outerjoin(analyses, analyses.c.study_uid == studies.c.study_uid))
            .where(studies.c.study_uid == study_uid)
        ).first()
    if row is None or row.study_date is None:
        return []
    try:
        fetch_missing_priors(
            ctx.pacs, engine=ctx.engine, calling_ae=ctx.ae_title, patient_id=row.patient_id or "", issuer=row.issuer or "",
            before=row.study_date, store=lambda data: ctx.archive.store(data, calling_ae=ctx.pacs.ae_title),  # type: ignore[union-attr]
            lookback_years=ctx.lookback_years, max_studies=ctx.max_priors,
        )
    except PriorsUnavailable as exc:
        waited_min = 0.0
        if row.queued_at is not None:
            queued = row.queued_at if row.queued_at.tzinfo else row.queued_at.replace(tzinfo=dt.timezone.utc)
            waited_min = (utcnow() - queued).total_seconds() / 60
        limit = ctx.pacs.report_without_priors_after_min
        if limit and waited_min >= limit:
            why = str(exc).removeprefix("waiting for prior study from PACS: ")
            log.warning("study %s: reporting without priors after %.1f min: %s", study_uid, waited_min, why)
            return [f"Reported without prior comparison: the PACS did not give the prior studies within the site's limit"
                    f" of {limit:g} min (waited {waited_min:.1f} min; {why})"]
        _set_state(ctx.engine, study_uid, state="waiting-priors", reason=str(exc), lease_until=None)
        raise WaitingForPriors(str(exc)) from None
    return []


def prior_exams(ctx: NodeContext, study_uid: str) -> list[PriorExam]:
    """The patient's earlier CT exams in the archive, with what noduled reported on them.

    Same patient = same Patient ID and issuer (never an empty Patient ID);
    within ``lookback_years``; at most ``max_priors`` (the earliest, which
    note 6 compares against, and the most recent ones).
    """
    with ctx.engine.connect() as conn:
        current = conn.execute(
            select(studies.c.patient_pk, studies.c.study_date, patients.c.patient_id)
            .select_from(studies.join(patients, patients.c.id == studies.c.patient_pk))
            .where(studies.c.study_uid == study_uid)
        ).first()
        if current is None or current.study_date is None or not (current.patient_id or "").strip():
            return []
        since = current.study_date - dt.timedelta(days=round(365.25 * ctx.lookback_years))
        rows = conn.execute(
            select(studies.c.study_uid, studies.c.study_date, studies.c.description)
            .where(studies.c.patient_pk == current.patient_pk, studies.c.study_date < current.study_date, studies.c.study_date >= since)
            .order_by(studies.c.study_date)
        ).all()
    if len(rows) > ctx.max_priors:
        rows = [rows[0], *rows[-(ctx.max_priors - 1):]]
    screening = re.compile(ctx.screening_description_regex)
    out = []
    for row in rows:
        paths = _best_ct_series(ctx, row.study_uid)
        reported = _reported_nodules(ctx, row.study_uid)
        if not paths and not reported:
            continue
        out.append(
            PriorExam(
                study_uid=row.study_uid,
                exam_date=row.study_date,
                ct_datasets=tuple(dcmread(p) for p in paths),
                reported=reported,
                pre_screening=not screening.search(row.description or ""),
            )
        )
    return out


def _best_ct_series(ctx: NodeContext, study_uid: str) -> list[Path]:
    """The thinnest axial CT series of a study (most images on a tie)."""
    q = (
        select(series.c.series_uid, series.c.slice_thickness_mm, series.c.image_orientation, instances.c.path)
        .select_from(instances.join(series, series.c.id == instances.c.series_pk).join(studies, studies.c.id == series.c.study_pk))
        .where(studies.c.study_uid == study_uid, instances.c.sop_class_uid == CT_IMAGE_STORAGE)
    )
    by_series: dict[str, tuple[float, list[Path]]] = {}
    with ctx.engine.connect() as conn:
        for row in conn.execute(q):
            iop = [float(v) for v in (row.image_orientation or "").split("\\") if v.strip()]
            if len(iop) == 6 and abs(iop[0] * iop[4] - iop[1] * iop[3]) < 0.9:
                continue  # not axial
            entry = by_series.setdefault(row.series_uid, (row.slice_thickness_mm or 99.0, []))
            entry[1].append(ctx.archive.path_of(row.path))
    if not by_series:
        return []
    _, paths = min(by_series.values(), key=lambda e: (e[0], -len(e[1])))
    return paths


def _reported_nodules(ctx: NodeContext, study_uid: str) -> tuple[PriorNodule, ...]:
    """The nodules of noduled's newest report of a study."""
    with ctx.engine.connect() as conn:
        sr = conn.execute(
            select(assessments.c.report_sop_uid).where(assessments.c.study_uid == study_uid).order_by(assessments.c.id.desc()).limit(1)
        ).scalar_one_or_none()
        if sr is None:
            return _reported_in_archived_sr(ctx, study_uid)
        rows = conn.execute(select(nodule_observations).where(nodule_observations.c.report_sop_uid == sr)).all()
    return tuple(
        PriorNodule(
            tracking_uid=r.tracking_uid,
            tracking_id=r.tracking_id,
            volume_mm3=r.volume_mm3,
            mean_diameter_mm=r.mean_diameter_mm,
            category=r.category,
            centroid_lps_mm=(r.centroid_x_mm, r.centroid_y_mm, r.centroid_z_mm) if r.centroid_x_mm is not None else None,
        )
        for r in rows
        if r.error is None
    )


def _reported_in_archived_sr(ctx: NodeContext, study_uid: str) -> tuple[PriorNodule, ...]:
    """Nodules of noduled's newest SR of a study that the index has no record of (e.g. retrieved
    from PACS by a freshly installed node): read back from the SR itself."""
    from dicom_sr.read_report import read_report

    q = (
        select(instances.c.path)
        .select_from(instances.join(series, series.c.id == instances.c.series_pk).join(studies, studies.c.id == series.c.study_pk))
        .where(studies.c.study_uid == study_uid, series.c.manufacturer == OUR_MANUFACTURER, instances.c.sop_class_uid.in_(SEED_CLASSES))
    )
    with ctx.engine.connect() as conn:
        paths = [ctx.archive.path_of(r.path) for r in conn.execute(q)]
    reports = [c for c in (read_report(dcmread(p)) for p in paths) if c.assessment is not None]
    if not reports:
        return ()
    newest = max(reports, key=lambda c: (c.content_date or dt.date.min, c.sop_instance_uid))
    return tuple(
        PriorNodule(
            tracking_uid=f.tracking_uid,
            tracking_id=f.tracking_id,
            volume_mm3=f.measurement.volume_mm3,
            mean_diameter_mm=f.measurement.mean_diameter_mm,
            category=f.category,
            centroid_lps_mm=f.measurement.centroid_lps_mm,
        )
        for f in newest.assessment.findings  # type: ignore[union-attr]
        if f.measurement is not None
    )


def _record(ctx: NodeContext, study_uid: str, result: AnalysisResult) -> None:
    """The assessment and every nodule, into the index (idempotent per SR)."""
    a = result.assessment
    sr_uid = str(result.report.SOPInstanceUID)
    with ctx.engine.begin() as conn:
        if conn.execute(select(assessments.c.id).where(assessments.c.report_sop_uid == sr_uid)).first():
            return
        patient_pk = conn.execute(select(studies.c.patient_pk).where(studies.c.study_uid == study_uid)).scalar_one_or_none()
        conn.execute(
            insert(assessments).values(
                study_uid=study_uid,
                report_sop_uid=sr_uid,
                seg_sop_uid=str(result.seg.SOPInstanceUID) if result.seg is not None else None,
                exam_date=a.exam_date,
                screening_round=a.screening_round,
                category=a.category,
                additional_findings=int(a.additional_findings),
                management=a.management,
                follow_up_months=a.follow_up_months,
                due_date=a.due_date,
                decisive_tracking_uid=a.decisive_tracking_uid,
                assessment_json=json.dumps(result.assessment_json, sort_keys=True),
                created_at=utcnow(),
            )
        )
        for f in a.findings:
            _record_prior_time_points(conn, f, patient_pk, sr_uid)
            m = f.measurement
            c = f.characterization.composition
            centroid = m.centroid_lps_mm if m is not None else (None, None, None)
            conn.execute(
                insert(nodule_observations).values(
                    report_sop_uid=sr_uid,
                    study_uid=study_uid,
                    patient_pk=patient_pk,
                    tracking_uid=f.tracking_uid,
                    tracking_id=f.tracking_id,
                    exam_date=a.exam_date,
                    volume_mm3=m.volume_mm3 if m else None,
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
                )
            )


def _record_prior_time_points(conn, finding, patient_pk, sr_uid: str) -> None:  # type: ignore[no-untyped-def]
    """The nodule at earlier time points noduled had no record of (re-measured on the prior CT):
    into the longitudinal record, marked derived."""
    for c in finding.comparisons:
        known = conn.execute(
            select(nodule_observations.c.id).where(
                nodule_observations.c.tracking_uid == finding.tracking_uid, nodule_observations.c.study_uid == c.prior_study_uid
            )
        ).first()
        if known is not None or c.prior_measurement is None:
            continue
        pm = c.prior_measurement
        conn.execute(
            insert(nodule_observations).values(
                report_sop_uid=sr_uid, study_uid=c.prior_study_uid, patient_pk=patient_pk,
                tracking_uid=finding.tracking_uid, tracking_id=finding.tracking_id, exam_date=c.prior_study_date,
                volume_mm3=pm.volume_mm3, mean_diameter_mm=pm.mean_diameter_mm, max_axial_diameter_mm=pm.max_axial_diameter_mm,
                solid_volume_mm3=pm.solid_volume_mm3, composition=None, status=None, category=c.prior_category,
                centroid_x_mm=pm.centroid_lps_mm[0], centroid_y_mm=pm.centroid_lps_mm[1], centroid_z_mm=pm.centroid_lps_mm[2],
                derived=1, error=None,
            )
        )


def analyze_study(ctx: NodeContext, study_uid: str, *, require_seeds: bool = True) -> AnalysisResult | None:
    """Analyse ``study_uid`` from the archive; None when its seeds were analysed already.

    Raises :class:`PermanentError` (with the reason in words) for a study that
    cannot be analysed; other exceptions are transient (the job is retried).
    """
    from daemon.analysis import AnalysisError
    from dicom_sr.report import ReportError
    from dicom_sr.seeds import SeedError
    from dicom_sr.seg import SegmentationError
    from segmentation.types import SeriesError

    files = study_files(ctx.engine, ctx.archive, study_uid)
    if not files.ct_paths:
        raise PermanentError("the study has no CT images")
    fingerprint = candidates_fingerprint(files.candidate_uids)
    with ctx.engine.connect() as conn:
        row = conn.execute(select(analyses).where(analyses.c.study_uid == study_uid)).first()
    if row is not None and row.state == "done" and row.analysed_fingerprint == fingerprint:
        log.info("study %s: seeds already analysed, nothing to do", study_uid)
        return None
    seeds = seed_objects(files.seed_paths)
    if not seeds:
        if require_seeds:
            _set_state(
                ctx.engine, study_uid, state="awaiting-seeds", seeds_fingerprint=fingerprint,
                reason=f"no seed object among {len(files.seed_paths)} SR/GSPS objects" if files.seed_paths else "no seed object yet",
            )
            return None
        raise PermanentError(
            "no seeds: noduled measures the nodules a reader marks; mark them (SR or GSPS) or label the exam 'no-nodules'"
        )
    claim_study(ctx.engine, study_uid, fingerprint)
    try:
        t_fetch = time.perf_counter()
        notes = _fetch_priors(ctx, study_uid)
        metrics.STAGE_SECONDS.labels("fetch_priors").observe(time.perf_counter() - t_fetch)
        datasets = [dcmread(p) for p in files.ct_paths]
        result = analyze(
            AnalysisInputs(
                study_datasets=datasets,
                seed_objects=seeds,
                site=ctx.site,
                predecessor=_predecessor(ctx, study_uid),
                priors=prior_exams(ctx, study_uid),
                notes=notes,
            )
        )
    except (AnalysisError, SeriesError, SeedError, ReportError, SegmentationError) as exc:
        raise PermanentError(str(exc)) from None
    for stage, seconds in result.timings_s.items():
        metrics.STAGE_SECONDS.labels(stage).observe(seconds)
        log.debug("study %s: stage %s took %.3f s", study_uid, stage, seconds)

    seg_path = _store(ctx, result.seg) if result.seg is not None else None
    sr_path = _store(ctx, result.report)
    _record(ctx, study_uid, result)
    if ctx.enqueue_delivery is not None:
        if result.seg is not None and seg_path is not None:
            ctx.enqueue_delivery(str(result.seg.SOPInstanceUID), study_uid, seg_path)
        ctx.enqueue_delivery(str(result.report.SOPInstanceUID), study_uid, sr_path)
    _set_state(
        ctx.engine,
        study_uid,
        state="done",
        finished_at=utcnow(),
        lease_until=None,
        analysed_fingerprint=fingerprint,
        report_sop_uid=str(result.report.SOPInstanceUID),
        seg_sop_uid=str(result.seg.SOPInstanceUID) if result.seg is not None else None,
        reason=None,
    )
    log.info(
        "study %s analysed: category %s%s, %d nodules, %.1f s",
        study_uid,
        result.assessment.category,
        "A" if result.assessment.additional_findings else "",
        len(result.assessment.findings),
        sum(result.timings_s.values()),
    )
    return result

