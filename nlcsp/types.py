"""Plain data of the NLCSP protocol engine: the case (input) and the assessment (output).

Standard-library dataclasses only (frozen); units in every name; no rounding here
(rounding happens at presentation, in :mod:`nlcsp.cases` and :func:`nlcsp.categorize.explain`).
The JSON spelling of these objects is ``noduled.case/2`` (``/1`` accepted) and ``noduled.assessment/1``
(see :mod:`nlcsp.cases`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

ScreeningRound = Literal["baseline", "follow-up"]
Sex = Literal["F", "M"]
Composition = Literal["solid", "part-solid", "non-solid"]
Airway = Literal["subsegmental", "subsegmental-secretions", "segmental-or-proximal", "segmental-or-proximal-secretions"]
Cyst = Literal["thin-walled", "thick-walled", "multilocular"]
CystChange = Literal[
    "growing-cystic-component",
    "newly-multilocular",
    "growing-wall",
    "growing-multilocular",
    "increased-loculation-or-opacity",
]
GrowthStatus = Literal["baseline", "new", "growing", "slowly-growing", "stable", "decreased"]

COMPOSITIONS: tuple[str, ...] = ("solid", "part-solid", "non-solid")
AIRWAYS: tuple[str, ...] = (
    "subsegmental",
    "subsegmental-secretions",
    "segmental-or-proximal",
    "segmental-or-proximal-secretions",
)
CYSTS: tuple[str, ...] = ("thin-walled", "thick-walled", "multilocular")
CYST_CHANGES: tuple[str, ...] = (
    "growing-cystic-component",
    "newly-multilocular",
    "growing-wall",
    "growing-multilocular",
    "increased-loculation-or-opacity",
)
CATEGORIES: tuple[str, ...] = ("0", "1", "2", "3", "4", "5", "6")
LUNG_RADS_CATEGORIES: tuple[str, ...] = ("0", "1", "2", "3", "4A", "4B", "4X")


@dataclass(frozen=True)
class Participant:
    """The PanCan participant inputs (note 3b: family history = parent, sibling or child)."""

    age_years: float | None = None
    sex: Sex | None = None
    family_history_lung_cancer: bool = False
    emphysema: bool = False


@dataclass(frozen=True)
class ExamFindings:
    """Exam-level reader findings (notes 8, 13, 15) and optional extras.

    ``nodule_count`` overrides the PanCan nodule count (note 3c) when the reader
    counted visible nodules not listed in the case; ``infection_follow_up_months``
    is the 1-3 month interval the reader stipulates for Category 0 (note 8a).
    """

    infection_or_inflammation: bool = False
    suspicious_features: bool = False
    actionable_additional_findings: bool = False
    nodule_count: int | None = None
    infection_follow_up_months: int | None = None
    # read by lungrads only (the case schema is shared; nlcsp ignores them):
    prior_ct_being_located: bool = False  # Lung-RADS 0: prior chest CT being located for comparison
    lungs_not_evaluable: bool = False  # Lung-RADS 0: part or all of the lungs cannot be evaluated
    significant_findings: tuple[str, ...] = ()  # Lung-RADS S: the significant non-lung-cancer findings, in words


@dataclass(frozen=True)
class Prior:
    """The same nodule on an earlier CT (screening LDCT, or pre-screening CT when ``pre_screening``)."""

    date: dt.date
    volume_mm3: float | None = None
    mean_diameter_mm: float | None = None
    category: str | None = None  # NLCSP category reported then ("0".."6")
    pre_screening: bool = False
    # noduled.case/2: what note 6 and the part-solid rows need of a prior measured elsewhere
    composition: Composition | None = None
    solid_component_volume_mm3: float | None = None
    solid_component_mean_diameter_mm: float | None = None
    max_axial_diameter_mm: float | None = None
    lung_rads_category: str | None = None  # Lung-RADS v2022 category reported then (read by lungrads only)


@dataclass(frozen=True)
class Nodule:
    """One nodule (or airway nodule, or pulmonary cyst) of the current exam."""

    id: str
    composition: Composition | None = None
    volume_mm3: float | None = None
    mean_diameter_mm: float | None = None
    max_axial_diameter_mm: float | None = None
    solid_component_volume_mm3: float | None = None
    solid_component_mean_diameter_mm: float | None = None
    upper_lobe: bool = False
    spiculated: bool = False
    benign_calcification: bool = False
    fat: bool = False
    juxtapleural_typical: bool = False
    airway: Airway | None = None
    cyst: Cyst | None = None
    cyst_change: CystChange | None = None
    cyst_fluid_containing: bool = False  # note 11g
    cyst_multiple: bool = False  # note 11h: one of multiple cysts
    proven_benign: bool = False  # note 14
    additional_suspicious_features: bool = False  # Lung-RADS 4X features on this nodule (read by lungrads only)
    priors: tuple[Prior, ...] = ()
    index: int = 0  # position in the case's "nodules" list (for field paths in messages)


@dataclass(frozen=True)
class Case:
    """One exam to be categorized (``noduled.case/1``)."""

    exam_date: dt.date
    screening_round: ScreeningRound
    participant: Participant = field(default_factory=Participant)
    exam_findings: ExamFindings = field(default_factory=ExamFindings)
    nodules: tuple[Nodule, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. unknown keys that were ignored


@dataclass(frozen=True)
class NoduleAssessment:
    """The category of one nodule, with the row or note that decided it."""

    id: str
    category: str | None  # None: not classified (note 11a, 11g, 11h)
    status: GrowthStatus
    rule: str
    volume_change_pct: float | None = None
    vdt_days: float | None = None
    diameter_change_mm: float | None = None
    comparison_date: dt.date | None = None
    pancan_risk_pct: float | None = None
    previous_category: str | None = None
    previous_category_date: dt.date | None = None  # the prior time point the previous category belongs to
    previous_category_derived: bool = False  # derived by noduled (INTERPRETATION C2), not reported then
    derived_prior_categories: tuple[tuple[dt.date, str], ...] = ()  # (date, category) of priors never assessed
    stable_since: dt.date | None = None
    stable_months: float | None = None
    reasons: tuple[str, ...] = ()  # every step of the reasoning, for --explain
    consider_referral: bool = False  # Category 5 of a stable previous Category 5/6 lesion (note 7)


@dataclass(frozen=True)
class Assessment:
    """The NLCSP assessment of one exam (``noduled.assessment/1``)."""

    exam_date: dt.date
    screening_round: ScreeningRound
    category: str  # "0".."6"
    additional_findings: bool  # the A flag (note 15)
    descriptor: str
    management: str
    follow_up_months: int | None
    due_date: dt.date | None
    rule: str  # what decided the exam category (note 1, 8, 13 ...)
    decisive_nodule_id: str | None
    nodules: tuple[NoduleAssessment, ...]
    screen_result: Literal["negative", "positive", "neither"] = "neither"  # note 4
    notes: tuple[str, ...] = ()
