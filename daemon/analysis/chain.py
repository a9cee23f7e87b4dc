"""The analysis of one exam as a chain of pure stages (DESIGN §1, stages 1-6).

``analyze(inputs) -> AnalysisResult`` takes DICOM datasets already in memory
and returns the assessment, the SR and the SEG; it does no network and no
database I/O, so ``noduled analyze`` (folders) and the node's pipeline
(:mod:`daemon.workflow.study`, archive + index) run exactly the same code.

Stages: seeds (read the reader's marks; :mod:`daemon.analysis.findings`) -> load (CT series
chosen by :mod:`daemon.analysis.series` -> volume) -> segment (measure + characterize every seed,
tracking identity by :mod:`daemon.analysis.identity`) -> priors (register each prior
CT, find and re-measure every nodule on it; :mod:`daemon.analysis.comparison`) ->
assess (NLCSP or Lung-RADS v2022, through :mod:`daemon.analysis.protocol`) -> report (TID 1500 SR + SEG).  Each stage's duration is in ``AnalysisResult.timings_s``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from daemon.analysis.comparison import PriorExam, compare_with_priors
from daemon.analysis.errors import AnalysisError
from daemon.analysis.findings import read_all_seeds, segment_seeds
from daemon.analysis.plausibility import check_findings, check_slices
from daemon.analysis.protocol import (
    ProtocolAssessment,
    ProtocolError,
    SiteDefaults,
    assess_case,
    audit_case,
    build_case,
    case_to_json,
    exam_assessment,
    pancan_inputs_note,
    participant_from_headers,
    study_date,
)
from daemon.analysis.series import one_acquisition, series_of_seeds
from daemon.analysis.sop_classes import CT_IMAGE_STORAGE
from daemon.analysis.unmeasured import complete_or_partial, mark_unmeasured
from dicom_sr.findings import ExamAssessment, NoduleFinding
from nlcsp.types import ScreeningRound

__all__ = [
    "AnalysisError",
    "AnalysisInputs",
    "AnalysisResult",
    "PreparedSeries",
    "SiteDefaults",
    "analyze",
    "build_extras",
    "prepare",
    "prepare_key",
    "seeds_fingerprint",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisInputs:
    study_datasets: Sequence[Dataset]  # every CT image of the study (pixels for the analysed series at least)
    seed_objects: Sequence[Dataset | dict[str, Any]]  # SR / GSPS datasets, or JSON seed documents
    site: SiteDefaults = SiteDefaults()
    predecessor: Dataset | None = None  # our earlier SR of this study, replaced by this one
    screening_round: str | None = None  # None: follow-up when a prior screening exam is given, else baseline
    participant_overrides: dict[str, Any] = field(default_factory=dict)  # age_years, sex, family history, emphysema
    priors: Sequence[PriorExam] = ()  # earlier CT exams of the patient (daemon.analysis.comparison)
    notes: Sequence[str] = ()  # said in the report (e.g. "reported without priors: ...")
    protocol: str = "nlcsp"  # the protocol reported: "nlcsp" or "lung-rads-2022" ([analysis] protocol)
    audit_protocol: str = ""  # computed alongside and recorded, never reported ("" = none)
    key_images: bool = True  # also render the Secondary Capture key images ([report] key_images)
    pdf_report: bool = True  # and the Encapsulated PDF report ([report] pdf)


@dataclass(frozen=True)
class AnalysisResult:
    assessment: ExamAssessment
    case_json: dict[str, Any]  # noduled.case/2 given to the protocol engine (reproducible with `noduled categorize`)
    assessment_json: dict[str, Any]  # noduled.assessment/1 of ``assessment.protocol``
    report: Dataset
    seg: Dataset | None
    seeds_fingerprint: str
    timings_s: dict[str, float]
    audit: ProtocolAssessment | None = None  # the audit protocol's assessment (recorded, not reported)
    # for workstations that cannot show TID 1500: SC key images (dicom_sr.key_images), PDF (dicom_sr.pdf_report)
    extra_objects: tuple[Dataset, ...] = ()
    ct_datasets: tuple[Dataset, ...] = ()  # the analysed series' CT images (volume slice k = ct_datasets[k])


# --------------------------------------------------------------------------- helpers
class _Timer:
    def __init__(self) -> None:
        self.timings_s: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings_s[name] = self.timings_s.get(name, 0.0) + time.perf_counter() - t0


def seeds_fingerprint(seed_objects: Sequence[Dataset | dict[str, Any]]) -> str:
    """Identifies a set of seed objects: a new or changed seed object -> a new fingerprint."""
    keys = []
    for obj in seed_objects:
        if isinstance(obj, Dataset):
            keys.append(str(obj.get("SOPInstanceUID", "")))
        else:
            import json

            keys.append(hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest())
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def _who(ds: Dataset) -> tuple[str, str]:
    return str(ds.get("PatientID") or "").strip(), str(ds.get("IssuerOfPatientID") or "").strip()


def patient_hash(ds: Dataset) -> str:
    """A short hash of the Patient ID and issuer: names a patient in messages and logs without the ID itself."""
    pid, issuer = _who(ds)
    return hashlib.sha256(f"{pid}^{issuer}".encode()).hexdigest()[:10]


def _other_patient(ds: Dataset, ref: Dataset) -> bool:
    """Patient IDs differ, or both objects carry an issuer and the issuers differ (an empty ID is not compared)."""
    (pid, issuer), (ref_pid, ref_issuer) = _who(ds), _who(ref)
    return bool(pid and ref_pid) and (pid != ref_pid or bool(issuer and ref_issuer and issuer != ref_issuer))


def _check_same_patient(
    seed_objects: Sequence[Dataset | dict[str, Any]],
    ct: Dataset,
    ct_images: Sequence[Dataset] = (),
    priors: Sequence[PriorExam] = (),
) -> None:
    """Seed objects, CT images and priors must be of one patient (Patient ID + issuer) and the seed objects
    and CT of one study; any mismatch is an :class:`AnalysisError` naming both patients' hashes."""
    study_uid = str(ct.get("StudyInstanceUID", ""))
    for other in ct_images:
        if _other_patient(other, ct):
            raise AnalysisError(
                f"the study's CT images are of two patients (patient hashes {patient_hash(ct)} and {patient_hash(other)})"
            )
    for obj in seed_objects:
        if not isinstance(obj, Dataset):
            continue
        if _other_patient(obj, ct):
            raise AnalysisError(
                f"seed object {obj.get('SOPInstanceUID', '?')} belongs to another patient than the CT images"
                f" (Patient ID or issuer differ: patient hash {patient_hash(obj)}, the CT's {patient_hash(ct)})"
            )
        seed_study = str(obj.get("StudyInstanceUID", ""))
        if seed_study and study_uid and seed_study != study_uid:
            raise AnalysisError(
                f"seed object {obj.get('SOPInstanceUID', '?')} is of study {seed_study}, not of the CT's study {study_uid}"
            )
    for prior in priors:
        for ds in prior.ct_datasets[:1]:
            if _other_patient(ds, ct):
                raise AnalysisError(
                    f"prior study {prior.study_uid} belongs to another patient than the CT images"
                    f" (patient hash {patient_hash(ds)}, the CT's {patient_hash(ct)})"
                )


# --------------------------------------------------------------------------- the chain
@dataclass(frozen=True)
class PreparedSeries:
    """Stages 1-3 (seeds, load, segment) of one exam, computed ahead of :func:`analyze`.

    The workflow computes it while the study-complete wait runs (the association was released,
    the quiet time has not passed yet: :mod:`daemon.workflow.preload`); :func:`analyze` uses it
    when ``key`` equals :func:`prepare_key` of its own inputs (the same seed objects, CT images
    and predecessor) and computes the stages itself otherwise.  Pure data: no file, no connection.
    """

    key: str
    study_uid: str
    ct_images: tuple[Dataset, ...]
    series_uid: str
    loaded: Any  # segmentation.io.LoadedSeries
    lungs: Any  # the series lung mask (SimpleITK image)
    seeds: tuple[Any, ...]  # dicom_sr.findings.Seed
    flags: Any  # dicom_sr.findings.ReaderAttributes
    acquisition_note: str | None
    findings: tuple[NoduleFinding, ...]  # segmented and characterised, before the prior comparison
    timings_s: dict[str, float]


def _images_hash(ct_images: Sequence[Dataset]) -> str:
    return hashlib.sha256("\n".join(sorted(str(ds.SOPInstanceUID) for ds in ct_images)).encode()).hexdigest()[:32]


def _ct_images(study_datasets: Sequence[Dataset]) -> list[Dataset]:
    return [ds for ds in study_datasets if str(ds.get("SOPClassUID", "")) == CT_IMAGE_STORAGE]


def prepare_key(inputs: AnalysisInputs) -> str:
    """What stages 1-3 depend on: the seed objects, the CT images and the predecessor report."""
    predecessor = str(inputs.predecessor.get("SOPInstanceUID", "")) if inputs.predecessor is not None else ""
    return "/".join(
        (seeds_fingerprint(inputs.seed_objects), _images_hash(_ct_images(inputs.study_datasets)), predecessor)
    )


def prepare(inputs: AnalysisInputs, *, measure_map: Any = None) -> PreparedSeries:
    """Stages 1-3 of :func:`analyze`: read the seeds, load the CT series, segment every seed.

    ``measure_map``: how the seeds are measured (:func:`daemon.analysis.findings.segment_seeds`;
    None: one after the other in this process)."""
    from dicom_sr.read_report import read_report
    from dicom_sr.seeds import image_headers
    from segmentation.io import load_series

    timer = _Timer()
    ct_images = _ct_images(inputs.study_datasets)
    if not ct_images:
        raise AnalysisError("the study has no CT images")
    study_uid = str(ct_images[0].StudyInstanceUID)
    ct_by_series: dict[str, list[Dataset]] = {}
    for ds in ct_images:
        ct_by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)

    with timer.stage("seeds"):
        _check_same_patient(inputs.seed_objects, ct_images[0], ct_images, inputs.priors)
        seeds, flags = read_all_seeds(inputs.seed_objects, image_headers(ct_images))
        if not seeds and not flags.no_nodules and inputs.seed_objects:
            raise AnalysisError("the seed objects mark no nodule and are not labelled 'no-nodules'")
    with timer.stage("load"):
        series_uid = series_of_seeds(seeds, ct_by_series)
        series_images, acquisition_note = one_acquisition(ct_by_series[series_uid], seeds)
        loaded = load_series(series_images)
    previous: list[NoduleFinding] = []
    if inputs.predecessor is not None:
        contents = read_report(inputs.predecessor)
        if contents.assessment is not None:
            previous = list(contents.assessment.findings)
    with timer.stage("segment"):
        import SimpleITK as sitk

        from segmentation.production import series_lung_mask

        check_slices(sitk.GetArrayViewFromImage(loaded.image), list(loaded.datasets))
        lungs = series_lung_mask(loaded.image)
        findings = segment_seeds(loaded.image, seeds, study_uid, previous, lungs=lungs, measure_map=measure_map)
        check_findings(findings)
    return PreparedSeries(
        key=prepare_key(inputs),
        study_uid=study_uid,
        ct_images=tuple(ct_images),
        series_uid=series_uid,
        loaded=loaded,
        lungs=lungs,
        seeds=tuple(seeds),
        flags=flags,
        acquisition_note=acquisition_note,
        findings=tuple(findings),
        timings_s=timer.timings_s,
    )


def analyze(
    inputs: AnalysisInputs, *, prepared: PreparedSeries | None = None, measure_map: Any = None
) -> AnalysisResult:
    """Run stages 1-6 on one exam.

    ``prepared``: stages 1-3 computed ahead (:func:`prepare`); used when they were computed from the
    same seed objects, CT images and predecessor, else ignored.  Its stage timings are not in
    ``AnalysisResult.timings_s`` (they ran before this call; the caller records them as it sees fit).
    """
    from dicom_sr.report import build_report
    from dicom_sr.seg import build_segmentation

    timer = _Timer()
    if prepared is None or prepared.key != prepare_key(inputs):
        prepared = prepare(inputs, measure_map=measure_map)
        timer.timings_s.update(prepared.timings_s)
    else:  # computed without the priors: they must be of this patient too
        _check_same_patient((), prepared.ct_images[0], (), inputs.priors)
    ct_images = list(prepared.ct_images)
    study_uid, series_uid, loaded, lungs = prepared.study_uid, prepared.series_uid, prepared.loaded, prepared.lungs
    flags, acquisition_note, findings = prepared.flags, prepared.acquisition_note, list(prepared.findings)
    ct0 = loaded.datasets[0]
    comparison = None
    if inputs.priors:
        with timer.stage("priors"):
            comparison = compare_with_priors(loaded.image, lungs, findings, inputs.priors)
            findings = comparison.findings
    findings = mark_unmeasured(findings)  # a mark noduled could not measure stays in the report, saying so
    with timer.stage("assess"):
        participant = participant_from_headers(ct0, inputs.site, inputs.participant_overrides)
        screening_round: ScreeningRound
        if inputs.screening_round is None:
            screening_round = "follow-up" if any(not p.pre_screening for p in inputs.priors) else "baseline"
        elif inputs.screening_round in ("baseline", "follow-up"):
            screening_round = inputs.screening_round  # type: ignore[assignment]  # checked just above
        else:
            raise AnalysisError(f"screening round must be 'baseline' or 'follow-up' (got {inputs.screening_round!r})")
        case = build_case(
            findings,
            exam_date=study_date(ct0),
            screening_round=screening_round,
            participant=participant,
            flags=flags,
            history=comparison.history if comparison is not None else None,
        )
        try:
            assessed = assess_case(case, inputs.protocol)
        except ProtocolError as exc:
            raise AnalysisError(f"the protocol engine ({inputs.protocol}) refused the case: {exc}") from None
        audit = None
        if inputs.audit_protocol and inputs.audit_protocol != inputs.protocol:
            audit, audit_error = audit_case(case, inputs.audit_protocol)
            if audit_error is not None:
                log.warning("study %s: %s", study_uid, audit_error)
        # the edges: the case as the engine read it (`noduled categorize --protocol` reproduces the assessment)
        case_json, assessment_json = case_to_json(assessed.case), assessed.assessment_json
        assessment = exam_assessment(
            assessed,
            findings,
            study_uid=study_uid,
            series_uid=series_uid,
            participant=participant,
            comparison=comparison,
        )
        assessment = complete_or_partial(assessment, findings, nodules_in_case=len(case.nodules))
        # PanCan (NLCSP's risk model) read the participant's family history and emphysema: where they came from
        pancan = (pancan_inputs_note(participant),) if assessed.protocol == "nlcsp" else ()
        acquisition = (acquisition_note,) if acquisition_note else ()
        assessment = replace(assessment, notes=assessment.notes + pancan + acquisition + tuple(inputs.notes))
    fingerprint = seeds_fingerprint(inputs.seed_objects)
    # the CT images analysed, too: late slices make a new SR (referencing its predecessor), not the same one again
    images = _images_hash(ct_images)
    with timer.stage("report"):
        report_series_uid = generate_uid(entropy_srcs=[study_uid, "noduled-report-series"])
        seg = None
        if any(f.measurement is not None and f.measurement.mask is not None for f in findings):
            seg = build_segmentation(
                findings,
                list(loaded.datasets),
                series_uid=generate_uid(entropy_srcs=[study_uid, "noduled-seg-series"]),
                instance_uid=generate_uid(entropy_srcs=[study_uid, "noduled-seg", fingerprint, images]),
            )
        report = build_report(
            assessment,
            list(loaded.datasets),
            seg=seg,
            predecessor=inputs.predecessor,
            series_uid=report_series_uid,
            instance_uid=generate_uid(entropy_srcs=[study_uid, "noduled-sr", fingerprint, images]),
        )
        extra = build_extras(assessment, loaded.datasets, key_images=inputs.key_images, pdf_report=inputs.pdf_report)
    return AnalysisResult(
        assessment=assessment,
        case_json=case_json,
        assessment_json=assessment_json,
        report=report,
        seg=seg,
        seeds_fingerprint=fingerprint,
        timings_s=timer.timings_s,
        audit=audit,
        extra_objects=extra,
        ct_datasets=tuple(loaded.datasets),
    )


def build_extras(
    assessment: ExamAssessment, ct_datasets: Sequence[Dataset], *, key_images: bool = True, pdf_report: bool = True
) -> tuple[Dataset, ...]:
    """The objects for workstations that cannot show TID 1500: the SC key images and the PDF report.

    The SR does not reference them, so the workflow may render and deliver them after the SR
    (``AnalysisInputs(key_images=False, pdf_report=False)``, then this on ``AnalysisResult.ct_datasets``).
    """
    extra: list[Dataset] = []
    if key_images:
        from dicom_sr.key_images import build_key_images

        extra += build_key_images(assessment, ct_datasets)[0]
    if pdf_report:
        from dicom_sr.pdf_report import build_pdf_report

        extra.append(build_pdf_report(assessment, ct_datasets[0]))
    return tuple(extra)
