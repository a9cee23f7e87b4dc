"""``analyze_study(study_uid)``: the node's analysis of one archived study (DESIGN §1).

The thin I/O shell around :func:`daemon.analysis.chain.analyze`: it reads the
study's CT images and seed objects from the archive, runs the pure stages,
stores the SR and SEG in the archive (so they are indexed like any received
instance), records the assessment and every nodule in the index (the
longitudinal record), and queues both objects for delivery.

Idempotent: the SR and SEG UIDs are derived from the study and its seed
objects, so running the same analysis twice stores, records and delivers the
same objects once.
"""

from __future__ import annotations

import io
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Connection, Engine

from daemon.analysis.chain import AnalysisInputs, AnalysisResult, SiteDefaults, analyze, build_extras
from daemon.analysis.comparison import PriorExam
from daemon.analysis.findings import MeasureMap
from daemon.analysis.priors import select_priors
from daemon.ops import metrics
from daemon.settings import PACSSettings
from daemon.storage.archive import Archive
from daemon.storage.longitudinal import record_assessment
from daemon.storage.queries import (
    StudyFiles,
    best_ct_series_paths,
    earlier_studies,
    predecessor_report,
    reported_nodules,
    study_files,
)
from daemon.storage.registry import record_analysed_exam, study_participant_overrides
from daemon.workflow import state
from daemon.workflow.preload import LoadedPriors, Preloader
from daemon.workflow.priors import fetch_or_wait

log = logging.getLogger(__name__)


class PermanentError(Exception):
    """The study cannot be analysed as it is; retrying will not help."""


@dataclass
class NodeContext:
    """What a running analysis needs from the node."""

    engine: Engine
    archive: Archive
    site: SiteDefaults
    # (sop_uid, study_uid, relative path, connection): outbox rows, in the transaction that records the assessment
    enqueue_delivery: Callable[[str, str, str, Connection], None] | None = None
    lookback_years: float = 10.0
    max_priors: int = 4
    screening_description_regex: str = r"(?i)screen|ldct|low[ -]?dose|nlcsp|lung ca"
    pacs: PACSSettings | None = None  # where priors are queried and retrieved from
    ae_title: str = "NODULED"  # ours: calling AE and C-MOVE destination
    protocol: str = "nlcsp"  # [analysis] protocol: the one the reports carry
    audit_protocol: str = ""  # [analysis] audit_protocol: computed alongside, recorded, not reported
    key_images: bool = True  # [report] key_images: send a Secondary Capture key-image series too
    pdf_report: bool = True  # [report] pdf: and an Encapsulated PDF of the report
    preloader: Preloader | None = None  # stages 1-3 computed during the study-complete wait ([analysis] preload)
    measure_map: MeasureMap | None = None  # how the seeds are measured ([analysis] processes)
    wake_delivery: Callable[[], None] | None = None  # the outbox sends at once (its rows are committed)


def seed_objects(paths: list[Path]) -> list[Dataset]:
    """The seed objects among ``paths`` (SR/GSPS that carry marks or reader labels).

    An unreadable candidate is a :class:`PermanentError` (retrying reads the same bytes).
    """
    from dicom_sr.seeds import is_seed_object

    out: list[Dataset] = []
    for path in paths:
        try:
            ds = dcmread(path)
        except OSError:
            raise  # the archive's disk: may pass, retried
        except Exception as exc:  # not DICOM, truncated, malformed: the same on every retry
            raise PermanentError(
                f"seed object {path.name} is not readable DICOM: {type(exc).__name__}: {exc}"
            ) from None
        if is_seed_object(ds):
            out.append(ds)
    return out


def _store(ctx: NodeContext, ds: Dataset) -> str:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    result = ctx.archive.store(buf.getvalue(), calling_ae=None)
    return ctx.archive.relative_path(result.study_uid, result.series_uid, result.sop_instance_uid)


def prior_exams(ctx: NodeContext, study_uid: str, loaded: LoadedPriors | None = None) -> list[PriorExam]:
    """The patient's earlier CT exams in the archive, with what noduled reported on them.

    Same patient = same Patient ID and issuer (never an empty Patient ID);
    within ``lookback_years``; at most ``max_priors`` (the earliest, which
    note 6 compares against, and the most recent ones: :func:`select_priors`).
    ``loaded``: exams loaded ahead (:func:`load_priors_ahead`), used when they were loaded from
    the same files.
    """
    return [exam for exam, _ in _prior_exams_and_files(ctx, study_uid, loaded or {})]


def _prior_exams_and_files(
    ctx: NodeContext, study_uid: str, loaded: LoadedPriors
) -> list[tuple[PriorExam, tuple[str, ...]]]:
    rows = select_priors(earlier_studies(ctx.engine, study_uid, ctx.lookback_years), ctx.max_priors)
    screening = re.compile(ctx.screening_description_regex)
    out = []
    for row in rows:
        paths = best_ct_series_paths(ctx.engine, ctx.archive, row.study_uid)
        reported = reported_nodules(ctx.engine, ctx.archive, row.study_uid)
        if not paths and not reported:
            continue
        files = tuple(map(str, paths))
        exam = PriorExam(
            study_uid=row.study_uid,
            exam_date=row.study_date,
            reported=reported,
            pre_screening=not screening.search(row.description or ""),
        )
        ahead = loaded.get(row.study_uid)
        if ahead is not None and ahead[0] == files:
            _, done = ahead
            exam = replace(exam, ct_datasets=done.ct_datasets, image=done.image, lungs=done.lungs)
        else:
            read = ctx.preloader.read_study(row.study_uid, paths) if ctx.preloader else map(dcmread, paths)
            exam = replace(exam, ct_datasets=tuple(read))
        out.append((exam, files))
    return out


def load_priors_ahead(ctx: NodeContext, study_uid: str) -> LoadedPriors:
    """The priors :func:`prior_exams` gives the analysis of ``study_uid``, their series loaded and
    lung-masked now (e.g. as soon as they are retrieved, while the study is being segmented).
    Nothing for a study without seed objects yet (it is not analysed now)."""
    from daemon.analysis.comparison import load_prior

    if not study_files(ctx.engine, ctx.archive, study_uid).seed_paths:
        return {}
    return {
        exam.study_uid: (files, load_prior(exam))
        for exam, files in _prior_exams_and_files(ctx, study_uid, {})
        if exam.ct_datasets
    }


def analyze_study(ctx: NodeContext, study_uid: str, *, require_seeds: bool = True) -> AnalysisResult | None:
    """Analyse ``study_uid`` from the archive; None when its seeds were analysed already.

    Raises :class:`PermanentError` (with the reason in words) for a study that
    cannot be analysed; other exceptions are transient (the job is retried).
    """
    try:
        return _analyze_study(ctx, study_uid, require_seeds=require_seeds)
    finally:  # taken by the analysis, or not needed: not held any longer
        if ctx.preloader is not None:
            ctx.preloader.discard(study_uid)


def _analyze_study(ctx: NodeContext, study_uid: str, *, require_seeds: bool) -> AnalysisResult | None:
    files = study_files(ctx.engine, ctx.archive, study_uid)
    if not files.ct_paths:
        raise PermanentError("the study has no CT images")
    fingerprint = state.study_fingerprint(files.candidate_uids, files.ct_uids)
    if state.is_analysed(ctx.engine, study_uid, fingerprint):
        log.info("study %s: seeds already analysed, nothing to do", study_uid)
        return None
    seeds = seed_objects(files.seed_paths)
    if not seeds:
        if require_seeds:
            state.awaiting_seeds(
                ctx.engine,
                study_uid,
                fingerprint,
                f"no seed object among {len(files.seed_paths)} SR/GSPS objects"
                if files.seed_paths
                else "no seed object yet",
            )
            return None
        raise PermanentError(
            "no seeds: noduled measures the nodules a reader marks; mark them (SR or GSPS) or label the exam 'no-nodules'"
        )
    try:
        state.claim(ctx.engine, study_uid, fingerprint)
    except state.AlreadyAnalysed:
        log.info("study %s: analysed already by another job, nothing to do", study_uid)
        return None
    with _Heartbeat(ctx.engine, study_uid):
        return _analyse_claimed(ctx, study_uid, files, seeds, fingerprint)


class _Heartbeat:
    """Renews the analysis lease every :data:`state.HEARTBEAT` while the analysis runs, so a
    worker that dies loses the study within :data:`state.LEASE` and another one takes it."""

    def __init__(self, engine: Engine, study_uid: str) -> None:
        self.engine, self.study_uid = engine, study_uid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{study_uid[-8:]}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(state.HEARTBEAT.total_seconds()):
            try:
                if not state.renew(self.engine, self.study_uid):
                    return
            except Exception as exc:  # the database away for a moment: the next beat tries again
                log.warning("study %s: lease not renewed (%s: %s)", self.study_uid, type(exc).__name__, exc)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _analyse_claimed(
    ctx: NodeContext, study_uid: str, files: StudyFiles, seeds: list[Dataset], fingerprint: str
) -> AnalysisResult:
    from daemon.analysis.errors import AnalysisError
    from dicom_sr.report import ReportError
    from dicom_sr.seeds import SeedError
    from dicom_sr.seg import SegmentationError
    from segmentation.types import SeriesError

    try:
        t_fetch = time.perf_counter()
        # retrieved (and loaded) while the study arrived: not asked for twice
        loaded = ctx.preloader.wait_prefetch(study_uid) if ctx.preloader is not None else None
        notes = fetch_or_wait(
            ctx.engine,
            ctx.archive,
            ctx.pacs,
            study_uid,
            calling_ae=ctx.ae_title,
            lookback_years=ctx.lookback_years,
            max_priors=ctx.max_priors,
        )
        metrics.STAGE_SECONDS.labels("fetch_priors").observe(time.perf_counter() - t_fetch)
        t_read = time.perf_counter()
        preloaded = ctx.preloader.take(study_uid, files.ct_paths + files.seed_paths) if ctx.preloader else None
        datasets = preloaded.datasets if preloaded is not None else [dcmread(p) for p in files.ct_paths]
        metrics.STAGE_SECONDS.labels("read" if preloaded is None else "preload_wait").observe(
            time.perf_counter() - t_read
        )
        t_priors = time.perf_counter()
        priors = prior_exams(ctx, study_uid, loaded)
        metrics.STAGE_SECONDS.labels("read_priors").observe(time.perf_counter() - t_priors)
        result = analyze(
            AnalysisInputs(
                study_datasets=datasets,
                seed_objects=seeds,
                site=ctx.site,
                predecessor=predecessor_report(ctx.engine, ctx.archive, study_uid),
                priors=priors,
                notes=notes,
                protocol=ctx.protocol,
                audit_protocol=ctx.audit_protocol,
                participant_overrides=study_participant_overrides(ctx.engine, study_uid),  # PanCan: their own answers
                key_images=False,  # rendered after the SR is on its way (the SR does not reference them)
                pdf_report=False,
            ),
            prepared=preloaded.prepared if preloaded is not None else None,
            measure_map=ctx.measure_map,
        )
    except (AnalysisError, SeriesError, SeedError, ReportError, SegmentationError) as exc:
        raise PermanentError(str(exc)) from None
    for stage, seconds in result.timings_s.items():
        metrics.STAGE_SECONDS.labels(stage).observe(seconds)
        log.debug("study %s: stage %s took %.3f s", study_uid, stage, seconds)

    t_store = time.perf_counter()
    seg_path = _store(ctx, result.seg) if result.seg is not None else None
    sr_path = _store(ctx, result.report)
    # one transaction: the assessment and the SR's and SEG's outbox rows, recorded together or not at all;
    # the study stays "running" (its lease held) until the key images and PDF are queued too, so a crash in
    # between analyses it again: the same UIDs, the rows already there, nothing sent twice
    with ctx.engine.begin() as conn:
        record_assessment(ctx.engine, study_uid, result, conn=conn)
        if ctx.enqueue_delivery is not None:
            if result.seg is not None and seg_path is not None:
                ctx.enqueue_delivery(str(result.seg.SOPInstanceUID), study_uid, seg_path, conn)
            ctx.enqueue_delivery(str(result.report.SOPInstanceUID), study_uid, sr_path, conn)
    if ctx.wake_delivery is not None:
        ctx.wake_delivery()  # the SEG, then the SR, go now
    metrics.STAGE_SECONDS.labels("store").observe(time.perf_counter() - t_store)
    try:
        t_extras = time.perf_counter()
        extras = build_extras(
            result.assessment, result.ct_datasets, key_images=ctx.key_images, pdf_report=ctx.pdf_report
        )
        metrics.STAGE_SECONDS.labels("extras").observe(time.perf_counter() - t_extras)
    except Exception as exc:  # pictures of the report: the report itself is in the SR
        log.error("study %s: key images / PDF not rendered: %s: %s", study_uid, type(exc).__name__, exc)
        extras = ()
    result = replace(result, extra_objects=extras)
    key_paths = [(str(ds.SOPInstanceUID), _store(ctx, ds)) for ds in result.extra_objects]
    with ctx.engine.begin() as conn:
        if ctx.enqueue_delivery is not None:
            for sop_uid, path in key_paths:
                ctx.enqueue_delivery(sop_uid, study_uid, path, conn)
        state.done_now(
            conn,
            study_uid,
            fingerprint,
            report_sop_uid=str(result.report.SOPInstanceUID),
            seg_sop_uid=str(result.seg.SOPInstanceUID) if result.seg is not None else None,
            now=state.utcnow(),
            # `noduled status` shows it: a marked nodule could not be measured (report incomplete)
            note=next((n for n in result.assessment.notes if n.startswith("incomplete:")), None),
        )
    try:
        record_analysed_exam(
            ctx.engine, ctx.archive.root, study_uid, result.assessment, str(result.report.SOPInstanceUID), datasets
        )
    except Exception as exc:  # the report goes out regardless; the registry record is retried by a re-analysis
        log.error("study %s: the registry exam record was not written: %s", study_uid, exc)
    log.info(
        "study %s analysed: category %s%s, %d nodules, %.1f s",
        study_uid,
        result.assessment.category,
        "A" if result.assessment.additional_findings else "",
        len(result.assessment.findings),
        sum(result.timings_s.values()),
    )
    return result
