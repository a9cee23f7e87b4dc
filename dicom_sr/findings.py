"""Data contracts between the pipeline stages (DESIGN §3).

``Seed`` and ``ReaderAttributes`` come out of :mod:`dicom_sr.seeds`;
``NoduleFinding`` and ``ExamAssessment`` are what :mod:`dicom_sr.report`
writes and :mod:`dicom_sr.read_report` reads back.  Frozen dataclasses,
units in names, no rounding (rounding happens at presentation only).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

# one vocabulary: the protocol engine's (re-exported)
from nlcsp.types import Airway as Airway
from nlcsp.types import Composition as Composition
from nlcsp.types import Cyst as Cyst
from nlcsp.types import GrowthStatus as GrowthStatus
from segmentation.types import Characterization, NoduleMeasurement, Vec3

SeedSource = Literal["sr", "gsps", "json"]


@dataclass(frozen=True)
class ReaderAttributes:
    """What the radiologist asserted (DESIGN §6 labels); None = not said."""

    composition: Composition | None = None
    benign_calcification: bool | None = None
    fat: bool | None = None
    juxtapleural: bool | None = None
    perifissural: bool | None = None
    airway: Airway | None = None
    cyst: Cyst | None = None
    spiculated: bool | None = None
    # exam-level flags carried by any seed of the exam
    infection_or_inflammation: bool | None = None  # label "infection" -> Category 0
    suspicious_features: bool | None = None  # label "suspicious" -> Category 6
    actionable_additional_findings: bool | None = None  # label "additional" -> A
    no_nodules: bool | None = None  # label "no-nodules": read, no nodules


@dataclass(frozen=True)
class Seed:
    """A reader's mark on a nodule."""

    position_lps_mm: Vec3
    series_uid: str | None
    source: SeedSource
    label: str = ""
    reader: str | None = None
    attributes: ReaderAttributes = field(default_factory=ReaderAttributes)
    referenced_sop_instance_uid: str | None = None  # image the mark was drawn on, when known
    tracking_id: str | None = None  # as the viewer wrote it, when known
    tracking_uid: str | None = None  # as the viewer wrote it, when known
    seed_object_uid: str | None = None  # SOP Instance UID of the SR / GSPS it came from
    reader_diameter_mm: float | None = (
        None  # the reader's own length / diameter (mean of the axes given), when the seed carries one
    )


@dataclass(frozen=True)
class PriorComparison:
    """The same nodule on an earlier study."""

    prior_study_uid: str
    prior_study_date: dt.date
    prior_measurement: NoduleMeasurement | None
    days_between: int
    volume_change_pct: float | None
    vdt_days: float | None  # None when the volume did not change or is unknown
    diameter_change_mm: float | None
    growth_status: GrowthStatus | None
    prior_category: str | None = None  # NLCSP category at that time point ("0".."6")
    prior_category_derived: bool = False  # True when noduled derived it (not reported then)
    is_comparison_study: bool = False  # the one the growth status was measured against (note 6)


@dataclass(frozen=True)
class NoduleFinding:
    """One nodule in the current exam, measured, compared and categorized."""

    tracking_id: str  # "Nodule 1"
    tracking_uid: str  # stable across time points
    seed: Seed | None
    measurement: NoduleMeasurement | None  # None when no nodule was found at the seed
    characterization: Characterization = field(default_factory=Characterization)
    comparisons: tuple[PriorComparison, ...] = ()
    status: GrowthStatus | None = None
    pancan_risk_pct: float | None = None
    category: str | None = None  # "0".."6" (NLCSP) or a Lung-RADS category, the protocol of the assessment
    rule: str | None = None  # the protocol row or note that decided the category
    error: str | None = None  # e.g. "no nodule at seed (x, y, z)"


@dataclass(frozen=True)
class Participant:
    age_years: int | None
    sex: Literal["F", "M"] | None
    family_history_lung_cancer: bool
    emphysema: bool
    sources: dict[str, str] = field(default_factory=dict)  # field -> "ct-header" | "site-config" | "reader-label"


@dataclass(frozen=True)
class ExamAssessment:
    """The NLCSP assessment of one exam and every nodule in it."""

    study_uid: str
    exam_date: dt.date
    screening_round: Literal["baseline", "follow-up"]
    category: str  # "0".."6" (NLCSP); Lung-RADS: "0", "1", "2", "3", "4A", "4B", "4X" (see ``protocol``)
    additional_findings: bool  # the A flag (note 15); Lung-RADS: the S modifier
    descriptor: str  # "Very low risk", ...
    management: str
    follow_up_months: int | None
    due_date: dt.date | None
    decisive_tracking_uid: str | None
    findings: tuple[NoduleFinding, ...]
    participant: Participant | None = None
    series_uid: str | None = None  # the CT series analysed
    reasons: tuple[str, ...] = ()  # exam-level rules applied (note 8, 13, 15 ...)
    notes: tuple[str, ...] = ()  # e.g. "reported without priors: PACS unreachable after 30 min"
    # the protocol of ``category`` (and of every finding's and prior's category): "nlcsp" ("0".."6") or
    # "lung-rads-2022" ("0", "1", "2", "3", "4A", "4B", "4X"; ``additional_findings`` is then the S modifier)
    protocol: str = "nlcsp"
    protocol_version: str = ""
    incomplete: bool = False  # a nodule the reader marked could not be measured: SR Completion Flag PARTIAL
