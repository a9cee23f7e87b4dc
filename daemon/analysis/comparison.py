"""Prior comparison: find each current nodule on the patient's earlier CT (a pure stage).

For every prior exam (oldest first) the prior CT is registered to the current
one (:func:`segmentation.register.register`), each current nodule's centroid
is mapped into the prior and re-segmented there with the same algorithm
(:func:`segmentation.register.find_in_prior`), so that volumes at both time
points come from one method.  Where noduled reported on a prior exam, its
nodules are matched first (:func:`segmentation.register.match_nodules`): a
matched nodule keeps its tracking UID and identifier for the life of the
programme, and a reported nodule with no current match is "resolved".

The result feeds the protocol engine (``priors`` of each nodule in the
``noduled.case/1`` document) and the SR (``PriorComparison``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydicom.dataset import Dataset

from daemon.analysis.identity import assign_identities
from dicom_sr.findings import NoduleFinding, PriorComparison
from lungrads.types import NoduleResult
from nlcsp import types as nl
from segmentation.types import RADIOLOGISTS_OUTLINE, NoduleMeasurement

#: the volume convention this version reports (segmentation.nodule.reported_in_readers_convention)
REPORTED_CONVENTION = RADIOLOGISTS_OUTLINE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriorNodule:
    """A nodule noduled reported on an earlier exam (from the index)."""

    tracking_uid: str
    tracking_id: str
    volume_mm3: float | None
    mean_diameter_mm: float | None
    category: str | None
    centroid_lps_mm: tuple[float, float, float] | None
    # the convention of volume_mm3 (segmentation.types); an index row or SR of a version before the switch
    # to the radiologists' outline says PARTIAL_VOLUME, and its volume is then not compared (diameter only)
    volume_convention: str = RADIOLOGISTS_OUTLINE

    @classmethod
    def of_finding(cls, f: NoduleFinding) -> PriorNodule:
        """The nodule as a later round knows it from noduled's report (a finding with a measurement)."""
        m = f.measurement
        if m is None:
            raise ValueError(f"{f.tracking_id} has no measurement")
        return cls(
            tracking_uid=f.tracking_uid,
            tracking_id=f.tracking_id,
            volume_mm3=m.volume_mm3,
            mean_diameter_mm=m.mean_diameter_mm,
            category=f.category,
            centroid_lps_mm=m.centroid_lps_mm,
            volume_convention=m.volume_convention,
        )


@dataclass(frozen=True)
class PriorExam:
    """An earlier CT exam of the same patient."""

    study_uid: str
    exam_date: dt.date
    ct_datasets: tuple[Dataset, ...] = ()  # its CT series; empty: only reported values can be used
    reported: tuple[PriorNodule, ...] = ()  # what noduled reported on it, if it did
    pre_screening: bool = False  # a CT before the screening programme (note 7)
    # its CT series loaded and its lung mask, when computed ahead (:func:`load_prior`); else from ct_datasets
    image: Any = field(default=None, compare=False, repr=False)
    lungs: Any = field(default=None, compare=False, repr=False)


def load_prior(exam: PriorExam) -> PriorExam:
    """``exam`` with its CT series loaded and lung-masked (what the comparison does first), e.g. while
    the current study is still being segmented; unchanged when its series cannot be loaded (the
    comparison then says why)."""
    from segmentation.types import SeriesError

    if not exam.ct_datasets or exam.image is not None:
        return exam
    try:
        image, lungs = _image_and_lungs(exam)
    except SeriesError:
        return exam
    return replace(exam, image=image, lungs=lungs)


def _image_and_lungs(exam: PriorExam) -> tuple[Any, Any]:
    """``exam``'s CT series as a volume and its lung mask: as loaded ahead, else loaded now (SeriesError)."""
    from segmentation.io import load_series
    from segmentation.lungs import lung_mask

    if exam.image is not None:
        return exam.image, exam.lungs
    image = load_series(list(exam.ct_datasets)).image
    return image, lung_mask(image)


@dataclass(frozen=True)
class PriorObservation:
    """One current nodule on one prior exam."""

    exam: PriorExam
    measurement: NoduleMeasurement | None  # re-measured on the prior CT
    reported: PriorNodule | None  # the same nodule in noduled's report of that exam

    @property
    def volume_mm3(self) -> float | None:
        """The prior volume growth is computed from: in the convention this version reports, or None.

        A volume of the other convention differs by a blurred-edge shell (20-35 % on real nodules), which
        would read as growth or shrinkage: such a prior is compared by its mean diameter only."""
        if self.measurement is not None:
            m = self.measurement
            reliable = not m.quality.volumetry_unreliable and m.volume_convention == REPORTED_CONVENTION
            return m.volume_mm3 if reliable else None
        r = self.reported
        return r.volume_mm3 if r is not None and r.volume_convention == REPORTED_CONVENTION else None

    @property
    def mean_diameter_mm(self) -> float | None:
        if self.measurement is not None:
            return self.measurement.mean_diameter_mm
        return self.reported.mean_diameter_mm if self.reported is not None else None


@dataclass
class ComparisonResult:
    findings: list[NoduleFinding]
    history: dict[str, list[PriorObservation]] = field(
        default_factory=dict
    )  # tracking_id -> observations, oldest first
    notes: list[str] = field(default_factory=list)


def compare_with_priors(
    image: Any, lungs: Any, findings: Sequence[NoduleFinding], priors: Sequence[PriorExam]
) -> ComparisonResult:
    """Every current finding on every prior exam, and identities carried over from earlier reports."""
    from segmentation.register import RegistrationError, find_in_prior, match_nodules, register
    from segmentation.types import SeriesError

    findings = list(findings)
    measured = [i for i, f in enumerate(findings) if f.measurement is not None]
    observations: dict[int, list[PriorObservation]] = {i: [] for i in measured}
    identity: dict[int, PriorNodule] = {}  # current index -> reported prior nodule (newest report wins)
    notes: list[str] = []
    last_reported: tuple[PriorExam, list[int]] | None = None  # the newest report, and its nodules not matched
    for exam in sorted(priors, key=lambda e: e.exam_date):
        when = exam.exam_date.isoformat()
        registration = prior_image = prior_lungs = None
        if exam.ct_datasets:
            try:
                prior_image, prior_lungs = _image_and_lungs(exam)
                registration = register(image, prior_image, current_lungs=lungs, prior_lungs=prior_lungs)
            except (SeriesError, RegistrationError) as exc:
                notes.append(f"prior CT of {when} (study {exam.study_uid}) could not be compared: {exc}")
                registration = None
        matched_reported: dict[int, PriorNodule] = {}
        unmatched: list[int] = []
        if exam.reported and registration is not None:
            reported = [p for p in exam.reported if p.centroid_lps_mm is not None]
            matches = match_nodules(
                [findings[i].measurement.centroid_lps_mm for i in measured],  # type: ignore[union-attr]
                [p.centroid_lps_mm for p in reported if p.centroid_lps_mm is not None],
                registration,
            )
            for m in matches:
                if m.status == "matched":
                    matched_reported[measured[m.current_index]] = reported[m.prior_index]  # type: ignore[index]
                elif m.status == "resolved":
                    unmatched.append(m.prior_index)  # type: ignore[arg-type]
            last_reported = (exam, unmatched) if exam.reported else last_reported
            identity.update(matched_reported)
        elif exam.reported:
            notes.append(f"noduled's report of {when} could not be matched: its CT is not available for registration")
        for i in measured:
            m_current = findings[i].measurement
            measurement = None
            if registration is not None and prior_image is not None:
                mapped = registration.current_to_prior(m_current.centroid_lps_mm)  # type: ignore[union-attr]
                measurement = find_in_prior(
                    prior_image,
                    mapped,
                    prior_lungs=prior_lungs,
                    # the physical volume: find_in_prior compares the candidates' partial volumes with it
                    expected_volume_mm3=m_current.partial_volume_mm3 or m_current.volume_mm3,  # type: ignore[union-attr]
                )
            reported_here = matched_reported.get(i)
            if measurement is not None or reported_here is not None:
                observations[i].append(PriorObservation(exam, measurement, reported_here))
    # identities (daemon.analysis.identity): a matched nodule keeps its tracking UID and identifier;
    # new ones are numbered after all others
    if identity or any(e.reported for e in priors):
        findings = assign_identities(
            findings,
            {i: (p.tracking_id, p.tracking_uid) for i, p in identity.items()},
            (p.tracking_id for e in priors for p in e.reported),
        )
    if last_reported is not None:
        exam, unmatched = last_reported
        reported = [p for p in exam.reported if p.centroid_lps_mm is not None]
        for k in unmatched:
            p = reported[k]
            notes.append(f"{p.tracking_id} of {exam.exam_date.isoformat()} is not seen on this exam (resolved)")
    history = {findings[i].tracking_id: obs for i, obs in observations.items()}
    return ComparisonResult(findings=findings, history=history, notes=notes)


def case_priors(observations: Sequence[PriorObservation]) -> tuple[nl.Prior, ...]:
    """The priors of one nodule in the protocol engine's case, oldest first."""
    out = []
    for o in observations:
        volume, diameter = o.volume_mm3, o.mean_diameter_mm
        if volume is None and diameter is None:
            continue
        out.append(
            nl.Prior(
                date=o.exam.exam_date,
                volume_mm3=volume,
                mean_diameter_mm=diameter,
                category=o.reported.category if o.reported is not None else None,
                pre_screening=o.exam.pre_screening,
            )
        )
    return tuple(sorted(out, key=lambda p: p.date))


def prior_comparisons(
    finding: NoduleFinding,
    observations: Sequence[PriorObservation],
    exam_date: dt.date,
    assessed: nl.NoduleAssessment | NoduleResult,
) -> tuple[PriorComparison, ...]:
    """The SR's comparisons of one nodule: change against every prior, the protocol's comparison study marked."""
    from nlcsp.growth import percent_volume_change, volume_doubling_time_days

    m = finding.measurement
    comparison_date = assessed.comparison_date
    # Lung-RADS names only the comparison's previous category, not every prior's
    derived_categories = dict(assessed.derived_prior_categories) if isinstance(assessed, nl.NoduleAssessment) else {}
    out = []
    for o in observations:
        category = o.reported.category if o.reported is not None else None
        derived = False
        if category is None and o.exam.exam_date in derived_categories:
            # never reported by noduled: the protocol engine derived this time point's category (C2)
            category, derived = derived_categories[o.exam.exam_date], True
        days = (exam_date - o.exam.exam_date).days
        # the reported volumes of both time points, as the protocol engine's growth uses them (case_priors):
        # one change per nodule, on the radiologist's screen and in the category
        v1 = o.volume_mm3
        v2 = m.volume_mm3 if m is not None and not m.quality.volumetry_unreliable else None
        if m is not None and m.volume_convention != REPORTED_CONVENTION:
            v2 = None
        change = percent_volume_change(v1, v2) if v1 and v2 else None
        vdt = volume_doubling_time_days(v1, v2, days) if v1 and v2 and days > 0 and v1 != v2 else None
        d1 = o.mean_diameter_mm
        is_comparison = comparison_date == o.exam.exam_date
        out.append(
            PriorComparison(
                prior_study_uid=o.exam.study_uid,
                prior_study_date=o.exam.exam_date,
                prior_measurement=o.measurement,
                days_between=days,
                volume_change_pct=change,
                vdt_days=vdt if vdt is None or abs(vdt) != float("inf") else None,
                diameter_change_mm=(m.mean_diameter_mm - d1) if m is not None and d1 is not None else None,
                growth_status=assessed.status if is_comparison else None,
                prior_category=category,
                prior_category_derived=derived,
                is_comparison_study=is_comparison,
            )
        )
    return tuple(out)
