"""The analysis of one exam as a chain of pure stages (DESIGN §1, stages 1-6).

``analyze(inputs) -> AnalysisResult`` takes DICOM datasets already in memory
and returns the assessment, the SR and the SEG; it does no network and no
database I/O, so ``noduled analyze`` (folders) and the node's pipeline
(:mod:`daemon.pipeline`, archive + index) run exactly the same code.

Stages: seeds (read the reader's marks) -> load (CT series -> volume) ->
segment (measure + characterize every seed) -> priors (register each prior
CT, find and re-measure every nodule on it; :mod:`daemon.comparison`) ->
assess (NLCSP) -> report (TID 1500 SR + SEG).  Each stage's duration is in ``AnalysisResult.timings_s``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from daemon.comparison import ComparisonResult, PriorExam, case_priors, compare_with_priors, prior_comparisons
from dicom_sr.findings import ExamAssessment, NoduleFinding, Participant, ReaderAttributes, Seed

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SAME_NODULE_MM = 3.0  # two seeds whose nodules' centroids are this close mark the same nodule


class AnalysisError(ValueError):
    """The exam cannot be analysed; the message says why (the study is marked failed)."""


@dataclass(frozen=True)
class SiteDefaults:
    """Participant facts the CT headers do not carry (DESIGN §7 [site])."""

    family_history_lung_cancer: bool = False
    emphysema: bool = False


@dataclass(frozen=True)
class AnalysisInputs:
    study_datasets: Sequence[Dataset]  # every CT image of the study (pixels for the analysed series at least)
    seed_objects: Sequence[Dataset | dict]  # SR / GSPS datasets, or JSON seed documents
    site: SiteDefaults = SiteDefaults()
    predecessor: Dataset | None = None  # our earlier SR of this study, replaced by this one
    screening_round: str | None = None  # None: follow-up when a prior screening exam is given, else baseline
    participant_overrides: dict[str, Any] = field(default_factory=dict)  # age_years, sex, family history, emphysema
    priors: Sequence[PriorExam] = ()  # earlier CT exams of the patient (daemon.comparison)
    notes: Sequence[str] = ()  # said in the report (e.g. "reported without priors: ...")


@dataclass(frozen=True)
class AnalysisResult:
    assessment: ExamAssessment
    case_json: dict[str, Any]  # noduled.case/1 given to the protocol engine (reproducible with `noduled categorize`)
    assessment_json: dict[str, Any]  # noduled.assessment/1
    report: Dataset
    seg: Dataset | None
    seeds_fingerprint: str
    timings_s: dict[str, float]


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


def seeds_fingerprint(seed_objects: Sequence[Dataset | dict]) -> str:
    """Identifies a set of seed objects: a new or changed seed object -> a new fingerprint."""
    keys = []
    for obj in seed_objects:
        if isinstance(obj, Dataset):
            keys.append(str(obj.get("SOPInstanceUID", "")))
        else:
            import json

            keys.append(hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest())
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:32]


def _merge_exam_flags(flags: ReaderAttributes, more: ReaderAttributes) -> ReaderAttributes:
    names = ("infection_or_inflammation", "suspicious_features", "actionable_additional_findings", "no_nodules")
    return replace(flags, **{n: bool(getattr(flags, n)) or bool(getattr(more, n)) for n in names})


def _series_of_seeds(seeds: Sequence[Seed], ct_by_series: dict[str, list[Dataset]]) -> str:
    """The CT series the seeds were drawn on, else the thinnest axial series."""
    votes: dict[str, int] = {}
    for seed in seeds:
        if seed.series_uid in ct_by_series:
            votes[seed.series_uid] = votes.get(seed.series_uid, 0) + 1
    if votes:
        return max(votes, key=lambda uid: (votes[uid], len(ct_by_series[uid])))

    def thickness(uid: str) -> tuple[float, int]:
        ds = ct_by_series[uid][0]
        try:
            t = float(ds.get("SliceThickness") or 99)
        except (TypeError, ValueError):
            t = 99.0
        return (t, -len(ct_by_series[uid]))

    axial = [uid for uid, images in ct_by_series.items() if _is_axial(images[0])]
    if not axial:
        raise AnalysisError("the study has no axial CT series to analyse")
    return min(axial, key=thickness)


def _is_axial(ds: Dataset) -> bool:
    iop = [float(v) for v in (ds.get("ImageOrientationPatient") or [])]
    if len(iop) != 6:
        return False
    normal_z = iop[0] * iop[4] - iop[1] * iop[3]
    return abs(normal_z) > 0.9


def participant_from_headers(ct: Dataset, site: SiteDefaults, overrides: dict[str, Any]) -> Participant:
    """Age and sex from the CT header; family history and emphysema from the site defaults."""
    sources: dict[str, str] = {}
    age: int | None = None
    text = str(ct.get("PatientAge") or "").strip().upper()
    if len(text) == 4 and text[:3].isdigit() and text[3] == "Y":
        age, sources["age_years"] = int(text[:3]), "ct-header PatientAge"
    else:
        birth, study = str(ct.get("PatientBirthDate") or ""), str(ct.get("StudyDate") or "")
        try:
            b = dt.datetime.strptime(birth[:8], "%Y%m%d").date()
            s = dt.datetime.strptime(study[:8], "%Y%m%d").date()
            age = s.year - b.year - ((s.month, s.day) < (b.month, b.day))
            sources["age_years"] = "ct-header PatientBirthDate"
        except ValueError:
            pass
    sex_raw = str(ct.get("PatientSex") or "").strip().upper()
    sex = sex_raw if sex_raw in ("F", "M") else None
    if sex:
        sources["sex"] = "ct-header PatientSex"
    values: dict[str, Any] = {
        "age_years": age,
        "sex": sex,
        "family_history_lung_cancer": site.family_history_lung_cancer,
        "emphysema": site.emphysema,
    }
    sources.setdefault("family_history_lung_cancer", "site-config")
    sources.setdefault("emphysema", "site-config")
    for key, value in overrides.items():
        if key in values and value is not None:
            values[key] = value
            sources[key] = "participant-file"
    return Participant(sources=sources, **values)


def _tracking_uid(study_uid: str, seed: Seed, centroid: Sequence[float] | None) -> str:
    where = centroid if centroid is not None else seed.position_lps_mm
    return generate_uid(entropy_srcs=[study_uid, "noduled-nodule", ",".join(f"{v:.0f}" for v in where)])


def _distance_mm(a: Sequence[float], b: Sequence[float]) -> float:
    return sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)) ** 0.5


def _inside(finding: NoduleFinding, position: Sequence[float], volume_index: Callable) -> bool:
    m = finding.measurement
    if m is None or m.mask is None:
        return False
    k, j, i = volume_index(position)
    z0, y0, x0 = m.mask.origin_index_zyx
    dz, dy, dx = k - z0, j - y0, i - x0
    shape = m.mask.mask.shape
    return 0 <= dz < shape[0] and 0 <= dy < shape[1] and 0 <= dx < shape[2] and bool(m.mask.mask[dz, dy, dx])


# --------------------------------------------------------------------------- stages
def read_all_seeds(seed_objects: Sequence[Dataset | dict], images: dict[str, Dataset]) -> tuple[list[Seed], ReaderAttributes]:
    """Stage 1: every seed of every seed object, and the exam-level reader flags."""
    from dicom_sr.seeds import read_exam_labels, read_seeds

    seeds: list[Seed] = []
    flags = ReaderAttributes()
    for obj in seed_objects:
        seeds.extend(s for s in read_seeds(obj, images=images) if not s.attributes.no_nodules)
        flags = _merge_exam_flags(flags, read_exam_labels(obj))
    for s in seeds:
        flags = _merge_exam_flags(flags, s.attributes)
    return seeds, flags


def segment_seeds(image, seeds: Sequence[Seed], study_uid: str, previous: Sequence[NoduleFinding] = (), lungs=None) -> list[NoduleFinding]:  # type: ignore[no-untyped-def]
    """Stage 3: one finding per nodule; seeds on an already-found nodule are merged into it.

    Tracking identity: a nodule of the report this one replaces keeps its
    tracking UID and identifier; new nodules get the next "Nodule N".
    """
    from segmentation.characterize import characterize, merge_reader_attributes
    from segmentation.lungs import lung_mask
    from segmentation.nodule import segment_nodule
    from segmentation.types import Characterization, NoNoduleAtSeed

    lungs = lung_mask(image) if lungs is None else lungs

    def volume_index(position: Sequence[float]) -> tuple[int, int, int]:
        i, j, k = image.TransformPhysicalPointToIndex(tuple(float(v) for v in position))
        return k, j, i

    findings: list[NoduleFinding] = []
    used_ids = {f.tracking_id for f in previous}
    next_number = 1 + max((int(f.tracking_id.split()[-1]) for f in previous if f.tracking_id.split()[-1].isdigit()), default=0)
    for seed in seeds:
        same = next((f for f in findings if _inside(f, seed.position_lps_mm, volume_index)), None)
        if same is not None:
            merged = merge_reader_attributes(same.characterization, seed.attributes)
            findings[findings.index(same)] = replace(same, characterization=merged)
            continue
        try:
            m = segment_nodule(image, seed.position_lps_mm, lung_mask=lungs)
        except NoNoduleAtSeed as exc:
            m, error = None, str(exc)
        else:
            error = None
        if m is not None:
            twin = next((f for f in findings if f.measurement and _distance_mm(f.measurement.centroid_lps_mm, m.centroid_lps_mm) < SAME_NODULE_MM), None)
            if twin is not None:
                merged = merge_reader_attributes(twin.characterization, seed.attributes)
                findings[findings.index(twin)] = replace(twin, characterization=merged)
                continue
        centroid = m.centroid_lps_mm if m is not None else None
        match = None
        if centroid is not None:
            match = min(
                (p for p in previous if p.measurement is not None),
                key=lambda p: _distance_mm(p.measurement.centroid_lps_mm, centroid),  # type: ignore[union-attr]
                default=None,
            )
            if match is not None and _distance_mm(match.measurement.centroid_lps_mm, centroid) > max(SAME_NODULE_MM, m.mean_diameter_mm / 2):  # type: ignore[union-attr]
                match = None
        if match is not None:
            tracking_id, tracking_uid = match.tracking_id, match.tracking_uid
        else:
            while f"Nodule {next_number}" in used_ids:
                next_number += 1
            tracking_id, tracking_uid = f"Nodule {next_number}", _tracking_uid(study_uid, seed, centroid)
            used_ids.add(tracking_id)
        algorithm = characterize(image, m, lung_mask=lungs) if m is not None else Characterization()
        characterization = merge_reader_attributes(algorithm, seed.attributes)
        findings.append(
            NoduleFinding(
                tracking_id=tracking_id,
                tracking_uid=tracking_uid,
                seed=seed,
                measurement=m,
                characterization=characterization,
                error=error,
            )
        )
    return findings


def _value(characteristic) -> Any:  # type: ignore[no-untyped-def]
    return None if characteristic is None else characteristic.value


def case_for(
    findings: Sequence[NoduleFinding],
    *,
    exam_date: dt.date,
    screening_round: str,
    participant: Participant,
    flags: ReaderAttributes,
    history: dict[str, list] | None = None,
) -> dict[str, Any]:
    """Stage 5 input: the ``noduled.case/1`` document of this exam (``history``: prior observations by tracking id)."""
    nodules = []
    for f in findings:
        m, c = f.measurement, f.characterization
        if m is None:
            continue
        composition = _value(c.composition) or "solid"
        reliable = not m.quality.volumetry_unreliable
        juxtapleural = bool(_value(c.juxtapleural)) or bool(_value(c.perifissural))
        nodule: dict[str, Any] = {
            "id": f.tracking_id,  # "Nodule 1": unique in the exam, readable in the rules
            "composition": composition,
            "volume_mm3": m.volume_mm3 if reliable else None,
            "mean_diameter_mm": m.mean_diameter_mm,
            "max_axial_diameter_mm": m.max_axial_diameter_mm,
            "upper_lobe": bool(_value(c.upper_lobe)),
            "spiculated": bool(_value(c.spiculated)),
            "benign_calcification": bool(_value(c.benign_calcification)),
            "fat": bool(_value(c.fat)),
            # note 9: the criteria other than size (solid, smooth, oval/lentiform/triangular, pleural contact)
            "juxtapleural_typical": juxtapleural and composition == "solid" and not bool(_value(c.spiculated)),
            "airway": _value(c.airway),
            "cyst": _value(c.cyst),
            "priors": case_priors((history or {}).get(f.tracking_id, [])),
        }
        if composition == "part-solid":
            nodule["solid_component_volume_mm3"] = m.solid_volume_mm3 if reliable else None
            nodule["solid_component_mean_diameter_mm"] = m.solid_mean_diameter_mm
        nodules.append(nodule)
    return {
        "schema": "noduled.case/1",
        "exam_date": exam_date.isoformat(),
        "screening_round": screening_round,
        "participant": {
            "age_years": participant.age_years,
            "sex": participant.sex,
            "family_history_lung_cancer": participant.family_history_lung_cancer,
            "emphysema": participant.emphysema,
        },
        "exam_findings": {
            "infection_or_inflammation": bool(flags.infection_or_inflammation),
            "suspicious_features": bool(flags.suspicious_features),
            "actionable_additional_findings": bool(flags.actionable_additional_findings),
        },
        "nodules": nodules,
    }


def exam_assessment(
    assessment_json: dict[str, Any],
    findings: Sequence[NoduleFinding],
    *,
    study_uid: str,
    series_uid: str,
    participant: Participant,
    comparison: ComparisonResult | None = None,
) -> ExamAssessment:
    """Stage 5 output joined with the findings: the report's content."""
    by_id = {n["id"]: n for n in assessment_json["nodules"]}
    uid_of = {f.tracking_id: f.tracking_uid for f in findings}
    out = []
    for f in findings:
        n = by_id.get(f.tracking_id)
        if n is None:
            out.append(f)
            continue
        observations = comparison.history.get(f.tracking_id, []) if comparison is not None else []
        exam_date = dt.date.fromisoformat(assessment_json["exam_date"])
        out.append(
            replace(
                f,
                status=n["status"],
                pancan_risk_pct=n.get("pancan_risk_pct"),
                category=n["category"],
                rule=n["rule"],
                comparisons=prior_comparisons(f, observations, exam_date, n),
            )
        )
    due = assessment_json.get("due_date")
    return ExamAssessment(
        study_uid=study_uid,
        exam_date=dt.date.fromisoformat(assessment_json["exam_date"]),
        screening_round=assessment_json["screening_round"],
        category=assessment_json["category"],
        additional_findings=bool(assessment_json["additional_findings"]),
        descriptor=assessment_json["descriptor"],
        management=assessment_json["management"],
        follow_up_months=assessment_json["follow_up_months"],
        due_date=dt.date.fromisoformat(due) if due else None,
        decisive_tracking_uid=uid_of.get(assessment_json.get("decisive_nodule") or ""),
        findings=tuple(out),
        participant=participant,
        series_uid=series_uid,
        reasons=(assessment_json["rule"],),
        notes=tuple(assessment_json.get("notes") or ()) + tuple(comparison.notes if comparison is not None else ()),
    )


def _study_date(ct: Dataset) -> dt.date:
    text = str(ct.get("StudyDate") or "")
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        raise AnalysisError(f"study {ct.get('StudyInstanceUID')} has no valid StudyDate ({text!r}); the follow-up due date needs it") from None


# --------------------------------------------------------------------------- the chain
def analyze(inputs: AnalysisInputs) -> AnalysisResult:
    """Run stages 1-6 on one exam."""
    from dicom_sr.read_report import read_report
    from dicom_sr.report import build_report
    from dicom_sr.seg import build_segmentation
    from dicom_sr.seeds import image_headers
    from nlcsp.cases import CaseError, assessment_to_json, parse_case
    from nlcsp.categorize import assess
    from segmentation.io import load_series

    timer = _Timer()
    ct_images = [ds for ds in inputs.study_datasets if str(ds.get("SOPClassUID", "")) == CT_IMAGE_STORAGE]
    if not ct_images:
        raise AnalysisError("the study has no CT images")
    study_uid = str(ct_images[0].StudyInstanceUID)
    ct_by_series: dict[str, list[Dataset]] = {}
    for ds in ct_images:
        ct_by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)

    with timer.stage("seeds"):
        seeds, flags = read_all_seeds(inputs.seed_objects, image_headers(ct_images))
        if not seeds and not flags.no_nodules and inputs.seed_objects:
            raise AnalysisError("the seed objects mark no nodule and are not labelled 'no-nodules'")
    with timer.stage("load"):
        series_uid = _series_of_seeds(seeds, ct_by_series)
        loaded = load_series(ct_by_series[series_uid])
    ct0 = loaded.datasets[0]
    previous: list[NoduleFinding] = []
    if inputs.predecessor is not None:
        contents = read_report(inputs.predecessor)
        if contents.assessment is not None:
            previous = list(contents.assessment.findings)
    with timer.stage("segment"):
        from segmentation.lungs import lung_mask

        lungs = lung_mask(loaded.image)
        findings = segment_seeds(loaded.image, seeds, study_uid, previous, lungs=lungs)
    comparison = None
    if inputs.priors:
        with timer.stage("priors"):
            comparison = compare_with_priors(loaded.image, lungs, findings, inputs.priors)
            findings = comparison.findings
    with timer.stage("assess"):
        participant = participant_from_headers(ct0, inputs.site, inputs.participant_overrides)
        screening_round = inputs.screening_round or (
            "follow-up" if any(not p.pre_screening for p in inputs.priors) else "baseline"
        )
        case_json = case_for(
            findings, exam_date=_study_date(ct0), screening_round=screening_round, participant=participant, flags=flags,
            history=comparison.history if comparison is not None else None,
        )
        try:
            assessment_json = assessment_to_json(assess(parse_case(case_json)))
        except CaseError as exc:
            raise AnalysisError(f"the protocol engine refused the case: {exc}") from None
        assessment = exam_assessment(
            assessment_json, findings, study_uid=study_uid, series_uid=series_uid, participant=participant, comparison=comparison
        )
        if inputs.notes:
            assessment = replace(assessment, notes=assessment.notes + tuple(inputs.notes))
    fingerprint = seeds_fingerprint(inputs.seed_objects)
    with timer.stage("report"):
        report_series_uid = generate_uid(entropy_srcs=[study_uid, "noduled-report-series"])
        seg = None
        if any(f.measurement is not None and f.measurement.mask is not None for f in findings):
            seg = build_segmentation(
                findings,
                loaded.datasets,
                series_uid=generate_uid(entropy_srcs=[study_uid, "noduled-seg-series"]),
                instance_uid=generate_uid(entropy_srcs=[study_uid, "noduled-seg", fingerprint]),
            )
        report = build_report(
            assessment,
            loaded.datasets,
            seg=seg,
            predecessor=inputs.predecessor,
            series_uid=report_series_uid,
            instance_uid=generate_uid(entropy_srcs=[study_uid, "noduled-sr", fingerprint]),
        )
    return AnalysisResult(
        assessment=assessment,
        case_json=case_json,
        assessment_json=assessment_json,
        report=report,
        seg=seg,
        seeds_fingerprint=fingerprint,
        timings_s=timer.timings_s,
    )
