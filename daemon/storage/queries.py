"""Read queries on the index (and the archived files they point to) that the workflow asks.

The study's CT images and seed candidates, the patient's earlier studies, what noduled reported
on them, the report a new analysis replaces.  Reads only; the writes are in
:mod:`daemon.storage.longitudinal` (records) and :mod:`daemon.workflow.state` (analysis state).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Connection, Engine, Row, func, select

from daemon.analysis.comparison import PriorNodule
from daemon.analysis.dicomvalues import to_float
from daemon.analysis.priors import PriorSeries, PriorStudy, keep_study, lookback_window
from daemon.analysis.series import best_ct_series, orientation_is_axial
from daemon.analysis.sop_classes import CT_IMAGE_STORAGE, OUR_MANUFACTURER, SEED_CLASSES, is_seed_candidate
from daemon.storage.archive import Archive
from daemon.storage.schema import analyses, assessments, instances, nodule_observations, patients, series, studies
from segmentation.types import PARTIAL_VOLUME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyFiles:
    ct_paths: list[Path]
    seed_paths: list[Path]  # SR / GSPS not written by noduled
    candidate_uids: tuple[str, ...]  # their SOP Instance UIDs (what the stability check fingerprints)
    ct_uids: tuple[str, ...] = ()  # the CT images' SOP Instance UIDs (late slices change the fingerprint too)


def study_files(engine: Engine, archive: Archive, study_uid: str) -> StudyFiles:
    """The study's CT images and candidate seed objects, from the index."""
    q = (
        select(instances.c.path, instances.c.sop_class_uid, instances.c.sop_instance_uid, series.c.manufacturer)
        .select_from(
            instances.join(series, series.c.id == instances.c.series_pk).join(
                studies, studies.c.id == series.c.study_pk
            )
        )
        .where(studies.c.study_uid == study_uid, instances.c.purged_at.is_(None))  # purged: no file (retention)
        .order_by(instances.c.path)
    )
    ct, seeds, uids, ct_uids = [], [], [], []
    with engine.connect() as conn:
        for row in conn.execute(q):
            if row.sop_class_uid == CT_IMAGE_STORAGE:
                ct.append(archive.path_of(row.path))
                ct_uids.append(row.sop_instance_uid)
            elif is_seed_candidate(row.sop_class_uid, row.manufacturer):
                seeds.append(archive.path_of(row.path))
                uids.append(row.sop_instance_uid)
    return StudyFiles(ct, seeds, tuple(uids), tuple(ct_uids))


@dataclass(frozen=True)
class StudyPatient:
    """Who the study belongs to and when it was queued (the keys of a prior search)."""

    patient_id: str
    issuer: str
    study_date: dt.date | None
    queued_at: dt.datetime | None


def study_patient(engine: Engine, study_uid: str) -> StudyPatient | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(patients.c.patient_id, patients.c.issuer, studies.c.study_date, analyses.c.queued_at)
            .select_from(
                studies.join(patients, patients.c.id == studies.c.patient_pk).outerjoin(
                    analyses, analyses.c.study_uid == studies.c.study_uid
                )
            )
            .where(studies.c.study_uid == study_uid)
        ).first()
    if row is None:
        return None
    return StudyPatient(row.patient_id or "", row.issuer or "", row.study_date, row.queued_at)


@dataclass(frozen=True)
class EarlierStudy:
    study_uid: str
    study_date: dt.date
    description: str | None


def _dated_study_of_a_patient(conn: Connection, study_uid: str) -> Row[Any, Any, Any] | None:
    """(patient_pk, study_date) of ``study_uid``; None without a StudyDate or a Patient ID (no order, no patient)."""
    current = conn.execute(
        select(studies.c.patient_pk, studies.c.study_date, patients.c.patient_id)
        .select_from(studies.join(patients, patients.c.id == studies.c.patient_pk))
        .where(studies.c.study_uid == study_uid)
    ).first()
    if current is None or current.study_date is None or not (current.patient_id or "").strip():
        return None
    return current


def earlier_studies(engine: Engine, study_uid: str, lookback_years: float) -> list[EarlierStudy]:
    """The patient's earlier studies in the index within the look-back window, oldest first.

    Same patient = same Patient ID and issuer (never an empty Patient ID).
    """
    with engine.connect() as conn:
        current = _dated_study_of_a_patient(conn, study_uid)
        if current is None:
            return []
        first, last = lookback_window(current.study_date, lookback_years)
        rows = conn.execute(
            select(studies.c.study_uid, studies.c.study_date, studies.c.description)
            .where(
                studies.c.patient_pk == current.patient_pk, studies.c.study_date <= last, studies.c.study_date >= first
            )
            .order_by(studies.c.study_date)
        ).all()
    return [EarlierStudy(r.study_uid, r.study_date, r.description) for r in rows]


def has_later_study(engine: Engine, study_uid: str) -> bool:
    """The index holds a study of the same patient (Patient ID and issuer) dated after ``study_uid``."""
    with engine.connect() as conn:
        current = _dated_study_of_a_patient(conn, study_uid)
        if current is None:
            return False
        later = conn.execute(
            select(studies.c.id)
            .where(studies.c.patient_pk == current.patient_pk, studies.c.study_date > current.study_date)
            .limit(1)
        ).first()
    return later is not None


def best_ct_series_paths(engine: Engine, archive: Archive, study_uid: str) -> list[Path]:
    """The images of a study's CT series best suited for comparison (:func:`daemon.analysis.series.best_ct_series`)."""
    q = (
        select(
            series.c.series_uid,
            series.c.description,
            series.c.slice_thickness_mm,
            series.c.image_orientation,
            series.c.convolution_kernel,
            series.c.manufacturer,
            instances.c.path,
        )
        .select_from(
            instances.join(series, series.c.id == instances.c.series_pk).join(
                studies, studies.c.id == series.c.study_pk
            )
        )
        .where(
            studies.c.study_uid == study_uid,
            instances.c.sop_class_uid == CT_IMAGE_STORAGE,
            instances.c.purged_at.is_(None),
        )
    )
    headers: dict[str, PriorSeries] = {}
    paths: dict[str, list[Path]] = {}
    with engine.connect() as conn:
        for row in conn.execute(q):
            if row.series_uid not in headers:
                iop = tuple(
                    v for v in (to_float(t) for t in (row.image_orientation or "").split("\\")) if v is not None
                )
                headers[row.series_uid] = PriorSeries(
                    row.series_uid,
                    "CT",
                    row.description,
                    row.slice_thickness_mm,
                    None,
                    row.manufacturer,
                    row.convolution_kernel,
                    iop or None,
                )
            paths.setdefault(row.series_uid, []).append(archive.path_of(row.path))
    candidates = tuple(
        replace(s, n_instances=len(paths[uid]))
        for uid, s in headers.items()
        if orientation_is_axial(s.image_orientation) is not False
    )
    best = best_ct_series(PriorStudy(study_uid, None, None, ("CT",), "index", candidates))
    return paths[best.series_uid] if best is not None else []


def predecessor_report(engine: Engine, archive: Archive, study_uid: str) -> Dataset | None:
    """noduled's earlier SR of this study (the one a new analysis replaces), or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(instances.c.path)
            .select_from(analyses.join(instances, instances.c.sop_instance_uid == analyses.c.report_sop_uid))
            .where(analyses.c.study_uid == study_uid)
        ).first()
    return dcmread(archive.path_of(row.path)) if row else None


def reported_nodules(engine: Engine, archive: Archive, study_uid: str) -> tuple[PriorNodule, ...]:
    """The nodules of noduled's newest report of a study."""
    with engine.connect() as conn:
        sr = conn.execute(
            select(assessments.c.report_sop_uid)
            .where(assessments.c.study_uid == study_uid)
            .order_by(assessments.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if sr is None:
            return _reported_in_archived_sr(engine, archive, study_uid)
        rows = conn.execute(select(nodule_observations).where(nodule_observations.c.report_sop_uid == sr)).all()
    return tuple(
        PriorNodule(
            tracking_uid=r.tracking_uid,
            tracking_id=r.tracking_id,
            volume_mm3=r.volume_mm3,
            volume_convention=r.volume_convention or PARTIAL_VOLUME,
            mean_diameter_mm=r.mean_diameter_mm,
            category=r.category,
            centroid_lps_mm=(r.centroid_x_mm, r.centroid_y_mm, r.centroid_z_mm)
            if r.centroid_x_mm is not None
            else None,
        )
        for r in rows
        if r.error is None
    )


def _reported_in_archived_sr(engine: Engine, archive: Archive, study_uid: str) -> tuple[PriorNodule, ...]:
    """Nodules of noduled's newest SR of a study that the index has no record of (e.g. retrieved
    from PACS by a freshly installed node): read back from the SR itself."""
    from dicom_sr.read_report import read_report

    q = (
        select(instances.c.path)
        .select_from(
            instances.join(series, series.c.id == instances.c.series_pk).join(
                studies, studies.c.id == series.c.study_pk
            )
        )
        .where(
            studies.c.study_uid == study_uid,
            func.lower(func.trim(series.c.manufacturer)) == OUR_MANUFACTURER,  # is_noduled_object, in SQL
            instances.c.sop_class_uid.in_(SEED_CLASSES),
        )
    )
    with engine.connect() as conn:
        paths = [archive.path_of(r.path) for r in conn.execute(q)]
    reports = [c for c in (read_report(dcmread(p)) for p in paths) if c.assessment is not None]
    if not reports:
        return ()
    newest = max(reports, key=lambda c: (c.content_date or dt.date.min, c.sop_instance_uid))
    return tuple(
        PriorNodule.of_finding(f)
        for f in newest.assessment.findings  # type: ignore[union-attr]
        if f.measurement is not None
    )


def priors_in_index(
    engine: Engine, *, patient_id: str, issuer: str, before: dt.date, lookback_years: float = 10
) -> list[PriorStudy]:
    """Earlier studies of the patient already in the archive, newest first.

    A study counts when its StudyDate lies in the look-back window before
    ``before`` and it holds CT or an SR/SEG written by noduled.  ``issuer`` is
    the Issuer of Patient ID as indexed ("" when the objects carry none).
    Studies without a StudyDate are left out (their order is unknown).
    """
    first, last = lookback_window(before, lookback_years)
    counts = (
        # instances whose file the retention policy deleted do not count: the PACS gives them again
        select(instances.c.series_pk, func.count().label("n"))
        .where(instances.c.purged_at.is_(None))
        .group_by(instances.c.series_pk)
        .subquery()
    )
    q = (
        select(
            studies.c.study_uid,
            studies.c.study_date,
            studies.c.description.label("study_description"),
            series.c.series_uid,
            series.c.modality,
            series.c.description,
            series.c.slice_thickness_mm,
            series.c.manufacturer,
            series.c.convolution_kernel,
            func.coalesce(counts.c.n, 0).label("n"),
        )
        .select_from(
            patients.join(studies, studies.c.patient_pk == patients.c.id)
            .join(series, series.c.study_pk == studies.c.id)
            .outerjoin(counts, counts.c.series_pk == series.c.id)
        )
        .where(
            patients.c.patient_id == patient_id,
            patients.c.issuer == (issuer or ""),
            studies.c.study_date >= first,
            studies.c.study_date <= last,
        )
        .order_by(studies.c.study_date.desc(), studies.c.study_uid, series.c.series_number, series.c.series_uid)
    )
    grouped: dict[str, tuple[dt.date | None, str | None, list[PriorSeries]]] = {}
    with engine.connect() as conn:
        for row in conn.execute(q):
            entry = grouped.setdefault(row.study_uid, (row.study_date, row.study_description, []))
            if not row.n:
                continue  # every file of the series purged: not held
            entry[2].append(
                PriorSeries(
                    series_uid=row.series_uid,
                    modality=(row.modality or "").upper(),
                    description=row.description,
                    slice_thickness_mm=row.slice_thickness_mm,
                    n_instances=int(row.n),
                    manufacturer=row.manufacturer,
                    convolution_kernel=row.convolution_kernel,
                )
            )
    result = []
    for uid, (date, description, study_series) in grouped.items():
        if not keep_study((), study_series):
            continue
        modalities = tuple(sorted({s.modality for s in study_series if s.modality}))
        result.append(PriorStudy(uid, date, description, modalities, "index", tuple(study_series)))
    log.debug("index holds %d prior studies before %s", len(result), before)
    return result
