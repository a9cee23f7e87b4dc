"""The NLCSP Nodule Management Protocol: the category of each nodule and of the exam.

One function per table of the protocol, the rows in the protocol's order, each row
tagged with its table and category (or note):

* :data:`BASELINE_TABLE` / :func:`baseline_category` -- the baseline-round table;
* :data:`FOLLOW_UP_TABLE` / :func:`follow_up_category` -- the follow-up-round table;
* :data:`NOTE_7_TABLE` / :func:`note7_category` -- stable nodules against pre-NLCSP CT;
* :data:`NOTE_16_TABLE` / :func:`note16_category` -- delayed or missed scans;
* :func:`exam_category` -- note 1 (highest nodule), note 8 (Category 0), note 13 (6),
  note 15 (A).

A table is searched from its first row; the first row that applies decides (the rows
are in ascending category, so this is also the lowest category a row gives).  The
choices the protocol leaves open are in ``nlcsp/INTERPRETATION.md``; the code cites
them as "INTERPRETATION <id>".
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import ClassVar, cast

from nlcsp import growth as growth_mod
from nlcsp import pancan
from nlcsp.cases import CaseError
from nlcsp.common import Size, below, doubled_within_a_year, first_row, more_than, solid_below
from nlcsp.dates import months_between
from nlcsp.management import DESCRIPTORS, FOLLOW_UP_MONTHS, management_for
from nlcsp.types import Assessment, Case, ExamFindings, GrowthStatus, Nodule, NoduleAssessment, Prior, ScreeningRound

# Decision 1: volume thresholds when a volume is given, else the diameter in brackets.
T4 = (34.0, 4.0)
T6 = (113.0, 6.0)
T8 = (268.0, 8.0)
T10 = (524.0, 10.0)
T30 = (14137.0, 30.0)

UP = ("growing", "slowly-growing")
STABLE = ("stable", "decreased")


def nodule_size(n: Nodule) -> Size | None:
    """Volume, else mean diameter (note 5b), else maximal axial diameter (INTERPRETATION S1)."""
    if n.volume_mm3 is not None:
        return Size(n.volume_mm3, "mm3", "volume_mm3")
    if n.mean_diameter_mm is not None:
        return Size(n.mean_diameter_mm, "mm", "mean_diameter_mm")
    if n.max_axial_diameter_mm is not None:
        return Size(n.max_axial_diameter_mm, "mm", "max_axial_diameter_mm")
    return None


def solid_component_size(n: Nodule) -> Size | None:
    if n.solid_component_volume_mm3 is not None:
        return Size(n.solid_component_volume_mm3, "mm3", "solid_component_volume_mm3")
    if n.solid_component_mean_diameter_mm is not None:
        return Size(n.solid_component_mean_diameter_mm, "mm", "solid_component_mean_diameter_mm")
    return None


@dataclass(frozen=True)
class Facts:
    """Everything a table row looks at, for one nodule."""

    # the case fields that give a size, in the order of nodule_size / solid_component_size
    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("volume_mm3", "mean_diameter_mm", "max_axial_diameter_mm")
    SOLID_FIELDS: ClassVar[tuple[str, ...]] = ("solid_component_volume_mm3", "solid_component_mean_diameter_mm")

    nodule: Nodule
    screening_round: str
    status: str  # baseline | new | growing | slowly-growing | stable | decreased
    kind: str  # solid | part-solid | non-solid | juxtapleural | airway-subsegmental |
    #            airway-segmental | airway-secretions | cyst
    size: Size | None
    solid: Size | None
    pancan_pct: float | None = None
    previous_category: str | None = None
    stable_months: float | None = None
    stable_since_pre_screening: bool = False
    exam_date: dt.date | None = None
    previous_category_derived: bool = False  # no prior carried a category (C2)
    previous_category_date: dt.date | None = None  # the exam whose category (and interval) was the previous one

    @property
    def path(self) -> str:
        return f"nodules[{self.nodule.index}]"


# ----------------------------------------------------------------------------- predicates


def is_new(f: Facts) -> bool:
    return f.status == "new"


def is_growing(f: Facts) -> bool:
    return f.status == "growing"


def is_slowly_growing(f: Facts) -> bool:
    return f.status == "slowly-growing"


def new_or_growing(f: Facts) -> bool:
    return f.status in ("new", "growing")


def benign_features(f: Facts) -> bool:
    return f.nodule.benign_calcification or f.nodule.fat


def solid_nodule(f: Facts) -> bool:
    """Solid, incl. juxtapleural, and a growing subsegmental airway nodule (note 10e)."""
    return f.kind in ("solid", "juxtapleural") or (f.kind == "airway-subsegmental" and f.status in UP)


def part_solid(f: Facts) -> bool:
    return f.kind == "part-solid"


def non_solid(f: Facts) -> bool:
    return f.kind == "non-solid"


def persistent_segmental_airway(f: Facts) -> bool:
    """Note 10d: a segmental or more proximal airway nodule seen on an earlier CT (INTERPRETATION A2)."""
    return f.kind == "airway-segmental" and bool(f.nodule.priors)


def stable_or_decreased(f: Facts) -> bool:
    """Eligible for stepped management: stable or decreased, not a persistent segmental
    airway nodule (note 10d), and no concerning cyst change."""
    return f.status in STABLE and not persistent_segmental_airway(f) and f.nodule.cyst_change is None


def prev(f: Facts, *categories: str) -> bool:
    return f.previous_category in categories


def stable_months(f: Facts) -> float:
    assert f.stable_months is not None, "stable_months is set for stable or decreased nodules"
    return f.stable_months


def cyst_is(f: Facts, cyst: str) -> bool:
    return f.kind == "cyst" and f.nodule.cyst == cyst


def cyst_change(f: Facts, change: str) -> bool:
    return f.kind == "cyst" and f.nodule.cyst_change == change


def cyst_grew_without_detail(f: Facts) -> bool:
    return f.kind == "cyst" and f.nodule.cyst_change is None and f.status in UP


# ----------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Row:
    """One row of a protocol table (or one line of a note)."""

    category: str
    source: str  # "Baseline table", "Follow-up table", "Note 7", ...
    words: str  # the row in the protocol's words
    applies: Callable[[Facts], bool]

    @property
    def rule(self) -> str:
        return f"{self.source}, Category {self.category}: {self.words}"


def _pancan_band(low: float, high: float) -> Callable[[Facts], bool]:
    return lambda f: f.pancan_pct is not None and not benign_features(f) and low <= f.pancan_pct < high


B = "Baseline table"
BASELINE_TABLE: tuple[Row, ...] = (
    Row(
        "1",
        B,
        "Baseline nodule with PanCan risk < 1.5% excluding airway nodules and atypical pulmonary cysts",
        _pancan_band(0.0, 1.5),
    ),
    Row(
        "1",
        B,
        "Nodule with benign features: complete, central, popcorn, or concentric ring calcifications;"
        " fat-containing (INTERPRETATION decision 5)",
        benign_features,
    ),
    Row(
        "1",
        B,
        "Juxtapleural nodule: < 524 mm3 (< 10 mm) AND solid; smooth margins; and oval, lentiform,"
        " or triangular shape (note 9)",
        lambda f: f.kind == "juxtapleural",
    ),
    Row("1", B + " / note 10b, 10c", "Airway: typical retained secretions", lambda f: f.kind == "airway-secretions"),
    Row(
        "2",
        B,
        "Baseline nodule with PanCan risk 1.5% to < 6% excluding airway nodules and atypical pulmonary cysts",
        _pancan_band(1.5, 6.0),
    ),
    Row("2", B, "Airway nodule, subsegmental (note 10b)", lambda f: f.kind == "airway-subsegmental"),
    Row(
        "3",
        B,
        "Baseline nodule with PanCan risk 6% to < 10% excluding airway nodules and atypical pulmonary cysts",
        _pancan_band(6.0, 10.0),
    ),
    Row(
        "4",
        B,
        "Baseline nodule with PanCan risk 10% to < 30% excluding airway nodules and atypical pulmonary cysts",
        _pancan_band(10.0, 30.0),
    ),
    Row("4", B, "Airway nodule, segmental or more proximal (note 10a)", lambda f: f.kind == "airway-segmental"),
    Row(
        "4",
        B,
        "Atypical pulmonary cyst: thick-walled cyst OR multilocular cyst (note 11b, 11c)",
        lambda f: f.kind == "cyst",
    ),
    Row(
        "5",
        B,
        "Baseline nodule with PanCan risk >= 30% excluding airway nodules and atypical pulmonary cysts",
        _pancan_band(30.0, math.inf),
    ),
)

F = "Follow-up table"
FOLLOW_UP_TABLE: tuple[Row, ...] = (
    # Category 1 -- Very low risk -- 24-month LDCT
    Row(
        "1",
        F,
        "Previous Category 1 lesion that is stable or decreased in size",
        lambda f: stable_or_decreased(f) and prev(f, "1"),
    ),
    Row(
        "1",
        F,
        "Previous Category 2 lesion that is stable or decreased in size over a period of 24 months or more",
        lambda f: stable_or_decreased(f) and prev(f, "2") and stable_months(f) >= 24,
    ),
    Row(
        "1",
        F,
        "Nodule with benign features: complete, central, popcorn, or concentric ring calcifications; fat-containing",
        benign_features,
    ),
    Row("1", F, "Solid nodule: new < 34 mm3 (< 4 mm)", lambda f: solid_nodule(f) and is_new(f) and below(f, T4)),
    Row(
        "1",
        F,
        "Lesion evident on pre-screening CT imaging, and stable or decreased over more than 24 months"
        " (excluding persistent segmental or more proximal airway nodules)",
        lambda f: stable_or_decreased(f) and any(p.pre_screening for p in f.nodule.priors) and stable_months(f) > 24,
    ),
    Row("1", F + " / note 10b, 10c", "Airway: typical retained secretions", lambda f: f.kind == "airway-secretions"),
    # Category 2 -- Low risk -- 12-month LDCT
    Row(
        "2",
        F,
        "Previous Category 2 lesion that is stable or decreased in size over a period of less than 24 months",
        lambda f: stable_or_decreased(f) and prev(f, "2") and stable_months(f) < 24,
    ),
    Row(
        "2",
        F,
        "Previous Category 3 lesion that is stable or decreased in size at 6-month follow-up LDCT",
        lambda f: stable_or_decreased(f) and prev(f, "3"),
    ),
    Row("2", F, "Airway nodule, subsegmental - new", lambda f: f.kind == "airway-subsegmental" and is_new(f)),
    Row(
        "2",
        F,
        "Juxtapleural nodule: new < 524 mm3 (< 10 mm) AND solid; smooth margins; and oval, lentiform,"
        " or triangular shape (note 9)",
        lambda f: f.kind == "juxtapleural" and is_new(f),
    ),
    Row(
        "2",
        F,
        "Non-solid nodule (ground glass): < 14,137 mm3 (< 30 mm), new or growing",
        lambda f: non_solid(f) and below(f, T30) and (is_new(f) or f.status in UP),
    ),
    Row(
        "2",
        F,
        "Non-solid nodule (ground glass): >= 14,137 mm3 (>= 30 mm), slowly growing",
        lambda f: non_solid(f) and is_slowly_growing(f),
    ),
    # Category 3 -- Low to moderate risk -- 6-month LDCT
    Row(
        "3",
        F,
        "Previous Category 4 lesion (excluding persistent segmental or more proximal airway nodules)"
        " that is stable or decreased in size at 3-month follow-up LDCT",
        lambda f: stable_or_decreased(f) and prev(f, "4"),
    ),
    Row(
        "3",
        F,
        "Atypical pulmonary cyst: growing cystic component (mean diameter) of a unilocular thick-walled cyst",
        lambda f: (
            cyst_change(f, "growing-cystic-component") or (cyst_is(f, "thick-walled") and cyst_grew_without_detail(f))
        ),
    ),
    Row(
        "3",
        F,
        "Solid nodule: new 34 to < 113 mm3 (4 mm to < 6 mm)",
        lambda f: solid_nodule(f) and is_new(f) and below(f, T6),
    ),
    Row(
        "3",
        F,
        "Part solid nodule: new < 113 mm3 (< 6 mm total mean diameter) (INTERPRETATION decision 2)",
        lambda f: part_solid(f) and is_new(f) and below(f, T6) and (f.solid is None or f.solid.below(T4)),
    ),
    Row(
        "3",
        F,
        "Non-solid nodule (ground glass): >= 14,137 mm3 (>= 30 mm), new or growing",
        lambda f: non_solid(f) and new_or_growing(f),
    ),
    # Category 4 -- Moderate risk -- 3-month LDCT
    Row(
        "4", F, "Airway nodule, segmental or more proximal - new", lambda f: f.kind == "airway-segmental" and is_new(f)
    ),
    Row(
        "4",
        F,
        "Atypical pulmonary cyst: newly multilocular cyst that was previously unilocular",
        lambda f: cyst_change(f, "newly-multilocular"),
    ),
    Row(
        "4",
        F,
        "Atypical pulmonary cyst: new atypical pulmonary cyst of any morphology",
        lambda f: f.kind == "cyst" and is_new(f),
    ),
    Row(
        "4", F, "Solid nodule: growing < 268 mm3 (< 8 mm)", lambda f: solid_nodule(f) and is_growing(f) and below(f, T8)
    ),
    Row(
        "4",
        F,
        "Solid nodule: new 113 to < 268 mm3 (6 to < 8 mm)",
        lambda f: solid_nodule(f) and is_new(f) and below(f, T8),
    ),
    Row(
        "4",
        F,
        "Part solid nodule: new or growing < 34 mm3 (< 4 mm) solid component",
        lambda f: part_solid(f) and new_or_growing(f) and solid_below(f, T4),
    ),
    # Category 5 -- High risk -- referral
    AIRWAY_PERSISTENT := Row(
        "5",
        F,
        "Airway nodule, segmental or more proximal - stable or growing (note 10d: persists on follow-up)",
        persistent_segmental_airway,
    ),
    Row(
        "5",
        F,
        "Atypical pulmonary cyst: thick-walled cyst with growing wall thickness/nodularity",
        lambda f: cyst_change(f, "growing-wall"),
    ),
    Row(
        "5",
        F,
        "Atypical pulmonary cyst: growing multilocular cyst (mean diameter)",
        lambda f: (
            cyst_change(f, "growing-multilocular") or (cyst_is(f, "multilocular") and cyst_grew_without_detail(f))
        ),
    ),
    Row(
        "5",
        F,
        "Atypical pulmonary cyst: multilocular cyst with increased loculation or new/increased opacity"
        " (nodular, ground glass, or consolidation)",
        lambda f: cyst_change(f, "increased-loculation-or-opacity"),
    ),
    Row("5", F, "Solid nodule: new or growing >= 268 mm3 (>= 8 mm)", lambda f: solid_nodule(f) and new_or_growing(f)),
    Row(
        "5",
        F,
        "Part solid nodule: new or growing >= 34 mm3 (>= 4 mm) solid component",
        lambda f: part_solid(f) and new_or_growing(f),
    ),
    Row(
        "5",
        F,
        "Slowly growing solid or part solid nodule",
        lambda f: (solid_nodule(f) or part_solid(f)) and is_slowly_growing(f),
    ),
)

N7 = "Note 7 (stable against pre-NLCSP CT)"
NOTE_7_TABLE: tuple[Row, ...] = (
    Row("1", N7, "Any nodule stable for more than 24 months", lambda f: stable_months(f) > 24),
    Row("2", N7, "Any nodule stable for 9 to 24 months", lambda f: 9 <= stable_months(f) <= 24),
    Row("1", N7, "Stable for less than 9 months, previous Category 1", lambda f: prev(f, "1")),
    Row("2", N7, "Stable for less than 9 months, previous Category 2", lambda f: prev(f, "2")),
    Row(
        "2",
        N7,
        "Stable for less than 9 months, previous Category 3, stable for 6 or more months",
        lambda f: prev(f, "3") and stable_months(f) >= 6,
    ),
    Row(
        "3",
        N7,
        "Stable for less than 9 months, previous Category 3, stable for less than 6 months",
        lambda f: prev(f, "3"),
    ),
    Row(
        "3",
        N7,
        "Stable for less than 9 months, previous Category 4, stable for 3 or more months",
        lambda f: prev(f, "4") and stable_months(f) >= 3,
    ),
    Row(
        "4",
        N7,
        "Stable for less than 9 months, previous Category 4, stable for less than 3 months",
        lambda f: prev(f, "4"),
    ),
    Row(
        "5",
        N7,
        "Stable for less than 9 months, previous Category 5 or 6: consider referral unless stability is"
        " strongly radiologically reassuring",
        lambda f: prev(f, "5", "6"),
    ),
)

N16 = "Note 16 (delayed or missed scans)"
NOTE_16_TABLE: tuple[Row, ...] = (
    Row("1", N16, "Stable for more than 24 months", lambda f: stable_months(f) > 24),
    Row("2", N16, "Stable for 9 to 24 months", lambda f: 9 <= stable_months(f) <= 24),
    Row("2", N16, "Stable for less than 9 months AND previous Category 3", lambda f: prev(f, "3")),
    Row("3", N16, "Stable for less than 9 months AND previous Category 4", lambda f: prev(f, "4")),
)

PREVIOUS_5_6 = Row(
    "5",
    "INTERPRETATION decision 3 (note 7)",
    "Previous Category 5 or 6 lesion that is stable or decreased: consider referral unless stability is strongly"
    " radiologically reassuring",
    lambda f: prev(f, "5", "6"),
)


def baseline_category(f: Facts) -> Row | None:
    """The baseline-round table."""
    return first_row(BASELINE_TABLE, f)


def follow_up_category(f: Facts) -> Row | None:
    """The follow-up-round table."""
    return first_row(FOLLOW_UP_TABLE, f)


def note7_category(f: Facts) -> Row | None:
    """Note 7: a nodule stable (or decreased) against pre-NLCSP CT."""
    if not (stable_or_decreased(f) and f.stable_since_pre_screening):
        return None
    return first_row(NOTE_7_TABLE, f)


def delayed_scan(f: Facts) -> bool:
    """Note 16 is for participants who "return for follow-up scans after durations longer than those
    specified by the protocol": this exam is later than the interval the previous category recommended,
    counted from the exam that had it (note 2).  Categories 5 and 6 specify no interval (referral):
    a return is never on a protocol schedule, so note 16 applies (INTERPRETATION N16)."""
    if f.previous_category is None or f.previous_category_date is None or f.exam_date is None:
        return False
    interval = FOLLOW_UP_MONTHS.get(f.previous_category)
    if interval is None:
        return f.previous_category in ("5", "6")
    return more_than(months_between(f.previous_category_date, f.exam_date), float(interval))


def note16_category(f: Facts) -> Row | None:
    """Note 16: a stable (or decreased) nodule at a follow-up round whose scan came late (INTERPRETATION N16)."""
    if not (stable_or_decreased(f) and f.screening_round == "follow-up" and delayed_scan(f)):
        return None
    return first_row(NOTE_16_TABLE, f)


def stepped_candidates(f: Facts) -> list[Row]:
    """Every stepped-management rule that applies to a stable or decreased nodule
    (decision 3: the lowest category wins)."""
    if f.previous_category_derived:
        # INTERPRETATION C3: a derived previous category is note 7's situation ("calculate PanCan risk and
        # assign based on the pre-NLCSP CT"); the follow-up table's "Previous Category N lesion" rows and
        # note 16 are about categories the program assigned.
        row = first_row(NOTE_7_TABLE, f) if stable_or_decreased(f) else None
        return [row] if row is not None else []
    rows = []
    if f.screening_round == "follow-up":
        table_row = follow_up_category(f)
        if table_row is not None:
            rows.append(table_row)
        if stable_or_decreased(f) and prev(f, "5", "6"):
            rows.append(PREVIOUS_5_6)
    for row in (note7_category(f), note16_category(f)):
        if row is not None:
            rows.append(row)
    return rows


def _lowest(rows: list[Row]) -> Row:
    return min(rows, key=lambda r: int(r.category))  # min() keeps the first of equal categories


# ----------------------------------------------------------------------------- one nodule


@dataclass(frozen=True)
class Decision:
    category: str | None
    rule: str
    consider_referral: bool = False


def _kind(n: Nodule, size: Size | None, path: str, reasons: list[str]) -> str:
    if n.cyst is not None:
        return "cyst"
    if n.airway in ("subsegmental-secretions", "segmental-or-proximal-secretions"):
        return "airway-secretions"
    if n.airway == "subsegmental":
        return "airway-subsegmental"
    if n.airway == "segmental-or-proximal":
        return "airway-segmental"
    assert n.composition is not None
    if n.juxtapleural_typical:
        if n.composition != "solid":
            reasons.append(f"juxtapleural criteria of note 9 need a solid nodule; this one is {n.composition}")
        else:
            if size is None:
                raise CaseError(f"{path}.volume_mm3", f"juxtapleural nodule {n.id!r} needs a size for note 9")
            if size.below(T10):
                return "juxtapleural"
            reasons.append(f"juxtapleural, but {size} is not < 524 mm3 (< 10 mm): note 9 does not apply")
    return n.composition


def pancan_diameter_mm(n: Nodule) -> tuple[float, str] | None:
    """Note 3a: the maximal axial diameter; else the mean diameter; else the diameter of
    the sphere of the nodule's volume (INTERPRETATION P1)."""
    if n.max_axial_diameter_mm is not None:
        return n.max_axial_diameter_mm, "max_axial_diameter_mm"
    if n.mean_diameter_mm is not None:
        return n.mean_diameter_mm, "mean_diameter_mm (no max_axial_diameter_mm)"
    if n.volume_mm3 is not None:
        return (6.0 * n.volume_mm3 / math.pi) ** (1.0 / 3.0), "sphere-equivalent diameter of volume_mm3"
    return None


def nodule_count(case: Case) -> int:
    """Note 3c: every visible lung nodule; cysts are not nodules (INTERPRETATION P2)."""
    if case.exam_findings.nodule_count is not None:
        return case.exam_findings.nodule_count
    return max(1, sum(1 for n in case.nodules if n.cyst is None))


def _pancan(n: Nodule, kind: str, case: Case, age_years: float, path: str) -> tuple[float, str] | None:
    if kind not in ("solid", "part-solid", "non-solid"):
        return None  # note 3: not for juxtapleural, airway nodules, cysts
    p = case.participant
    if p.age_years is None:
        raise CaseError("participant.age_years", f"is required for the PanCan risk of nodule {n.id!r} (note 3)")
    if p.sex is None:
        raise CaseError("participant.sex", f"is required for the PanCan risk of nodule {n.id!r} (note 3)")
    diameter = pancan_diameter_mm(n)
    if diameter is None:
        raise CaseError(
            f"{path}.max_axial_diameter_mm", f"is required for the PanCan risk of nodule {n.id!r} (note 3a)"
        )
    count = nodule_count(case)
    risk = pancan.pancan_risk_pct(
        age_years=age_years,
        female=p.sex == "F",
        family_history_lung_cancer=p.family_history_lung_cancer,
        emphysema=p.emphysema,
        max_axial_diameter_mm=diameter[0],
        composition=n.composition,
        upper_lobe=n.upper_lobe,
        nodule_count=count,
        spiculated=n.spiculated,
    )
    how = (
        f"PanCan risk {risk:.4f} % (age {age_years:.0f}, sex {p.sex}, family history {p.family_history_lung_cancer},"
        f" emphysema {p.emphysema}, size {diameter[0]:.1f} mm from {diameter[1]}, {n.composition},"
        f" upper lobe {n.upper_lobe}, nodule count {count}, spiculated {n.spiculated})"
    )
    return risk, how


def _derive_previous_category(n: Nodule, case: Case, path: str, reasons: list[str]) -> tuple[str, bool, dt.date]:
    """INTERPRETATION C2, last resort: no prior time point gives a category by the rounds (only Category 0,
    unmeasured or unclassifiable priors) -> the baseline table applied to the most recent measured prior
    (note 7: "calculate PanCan risk ... based on the pre-NLCSP CT")."""
    prior = next((p for p in reversed(n.priors) if p.volume_mm3 or p.mean_diameter_mm), None)
    if prior is None:
        raise CaseError(f"{path}.priors", f"no prior of nodule {n.id!r} has a category or a measurement")
    as_then = replace(
        n,
        volume_mm3=prior.volume_mm3,
        mean_diameter_mm=prior.mean_diameter_mm,
        max_axial_diameter_mm=prior.max_axial_diameter_mm,
        composition=prior.composition or n.composition,
        solid_component_volume_mm3=prior.solid_component_volume_mm3,
        solid_component_mean_diameter_mm=prior.solid_component_mean_diameter_mm,
        cyst_change=None,
        priors=(),
    )
    sink: list[str] = []
    size = nodule_size(as_then)
    kind = _kind(as_then, size, path, sink)
    age = case.participant.age_years
    age_then = age - (case.exam_date - prior.date).days / 365.25 if age is not None else 0.0
    risk = _pancan(as_then, kind, case, age_then, path)
    f = Facts(as_then, "baseline", "baseline", kind, size, None, pancan_pct=risk[0] if risk else None)
    row = baseline_category(f)
    assert row is not None
    reasons.append(
        f"no prior time point gives a category by the rounds: previous Category {row.category} derived from the"
        f" baseline table on the prior of {prior.date} ({row.rule}{'; ' + risk[1] if risk else ''})"
    )
    return row.category, True, prior.date


@dataclass(frozen=True)
class _Derived(Prior):
    """A prior time point whose category the engine derived (INTERPRETATION C2); never in a case.

    ``steps`` are the time points assessed to get it, in date order (the first may be a category
    reported on a prior), for the explanation.
    """

    steps: tuple[str, ...] = ()


def _measured(p: Prior) -> bool:
    return p.volume_mm3 is not None or p.mean_diameter_mm is not None


def _as_of(n: Nodule, case: Case, p: Prior, screening_round: str, priors: Iterable[Prior]) -> tuple[Nodule, Case]:
    """The nodule and the exam as they were on the prior ``p``: its measurements (``noduled.case/2`` priors may
    carry composition, solid component and maximal axial diameter; never a cyst change), the participant's
    age then (INTERPRETATION C2)."""
    then = replace(
        n,
        volume_mm3=p.volume_mm3,
        mean_diameter_mm=p.mean_diameter_mm,
        max_axial_diameter_mm=p.max_axial_diameter_mm,
        composition=p.composition or n.composition,
        solid_component_volume_mm3=p.solid_component_volume_mm3,
        solid_component_mean_diameter_mm=p.solid_component_mean_diameter_mm,
        cyst_change=None,
        proven_benign=False,
        priors=tuple(priors),
    )
    age = case.participant.age_years
    participant = replace(
        case.participant, age_years=age - (case.exam_date - p.date).days / 365.25 if age is not None else None
    )
    exam = replace(
        case,
        exam_date=p.date,
        screening_round=cast(ScreeningRound, screening_round),
        participant=participant,
        exam_findings=ExamFindings(nodule_count=nodule_count(case)),
        nodules=(then,),
        warnings=(),
    )
    return then, exam


def _categorised(p: Prior) -> bool:
    """Gives a previous category (C1): a category other than 0 (note 8a)."""
    return p.category is not None and p.category != "0"


def _derive_time_point(n: Nodule, case: Case, earlier: list[Prior], p: Prior) -> tuple[Prior, str | None]:
    """The category of the uncategorised prior ``p`` (INTERPRETATION C2): ``p`` with its derived category
    (a :class:`_Derived`), or ``p`` unchanged when it gives none; and a line for the explanation."""
    if not _measured(p):
        return p, f"prior of {p.date}: no category and no measurement, not assessed (INTERPRETATION C2)"
    usable = [q for q in earlier if q.category is not None or _measured(q)]
    screening_before = any(not q.pre_screening for q in usable)
    if p.pre_screening and screening_before:
        return p, (
            f"prior of {p.date}: a CT between screening rounds (pre_screening) is not a screening round;"
            " no category of its own (INTERPRETATION C2)"
        )
    fallback = None
    if p.pre_screening:  # note 7: "calculate PanCan risk and assign based on the pre-NLCSP CT"
        label = "pre-screening CT, baseline table (note 7)"
        a = assess_nodule(*_as_of(n, case, p, "baseline", ()))
    else:
        label = "follow-up round" if screening_before else "baseline round"
        then, exam = _as_of(n, case, p, "follow-up" if screening_before else "baseline", usable)
        try:
            a = assess_nodule(then, exam)
        except CaseError as exc:
            if not usable:
                raise
            if exc.path.endswith(".solid_component_volume_mm3"):
                # a prior carries no solid component: the lowest row of a new or growing part-solid nodule
                fallback = "its solid component is not known: taken as < 34 mm3 (< 4 mm), the lowest row"
                a = assess_nodule(replace(then, solid_component_volume_mm3=0.0), exam)
            else:
                fallback = f"it cannot be assessed as a {label}: {exc}"
                label = "baseline table on that CT alone"
                a = assess_nodule(*_as_of(n, case, p, "baseline", ()))
    if a.category is None:
        return p, f"prior of {p.date}: not classified then ({a.rule}); no category (INTERPRETATION C2)"
    step = f"{p.date} ({label}: Category {a.category})"
    steps: tuple[str, ...] = (step,)
    if a.previous_category is not None:
        source = next((q for q in reversed(usable) if _categorised(q)), None)
        if isinstance(source, _Derived):
            steps = (*source.steps, step)
        elif source is not None:
            steps = (f"the Category {source.category} reported on {source.date}", step)
    how = (
        f"prior of {p.date} never assessed: Category {a.category} derived as a {label}"
        + (f" ({fallback})" if fallback else "")
        + f" by {a.rule}"
    )
    derived = _Derived(
        date=p.date,
        volume_mm3=p.volume_mm3,
        mean_diameter_mm=p.mean_diameter_mm,
        category=a.category,
        pre_screening=p.pre_screening,
        steps=steps,
    )
    return derived, how


def _prior_categories(n: Nodule, case: Case) -> tuple[list[Prior], list[str]]:
    """INTERPRETATION C2: the priors with the category of every uncategorised time point after the last
    categorised one derived by assessing the time points in date order -- each with :func:`assess_nodule`,
    its own priors being the earlier time points with their categories (reported or derived).  Priors
    before the most recent categorised one cannot be the previous category (C1) and are left as they are."""
    priors = list(n.priors)
    last = max((i for i, p in enumerate(priors) if _categorised(p)), default=-1)
    notes: list[str] = []
    for i in range(last + 1, len(priors)):
        if priors[i].category is not None:
            notes.append(f"prior of {priors[i].date}: Category 0 is not a previous category (note 8a)")
            continue
        priors[i], note = _derive_time_point(n, case, priors[:i], priors[i])
        if note is not None:
            notes.append(note)
    return priors, notes


def previous_category(n: Nodule, case: Case, path: str, reasons: list[str]) -> tuple[str, bool, dt.date]:
    """INTERPRETATION C1: the category of the most recent prior that has one (Category 0 skipped, note 8a),
    prior time points never assessed getting theirs by assessing the rounds in date order (C2); else the
    baseline table on the most recent measured prior.  Returns (category, derived, date of that time point)."""
    priors, notes = _prior_categories(n, case)
    reasons.extend(notes)
    for p in reversed(priors):
        if not _categorised(p):
            continue
        assert p.category is not None
        if isinstance(p, _Derived):
            reasons.append(
                f"previous Category {p.category} derived by assessing the prior time points in date"
                f" order: {' then '.join(p.steps)} (INTERPRETATION C2)"
            )
            return p.category, True, p.date
        reasons.append(f"previous category {p.category} (reported on {p.date})")
        return p.category, False, p.date
    return _derive_previous_category(n, case, path, reasons)


def derived_prior_categories(n: Nodule, case: Case) -> tuple[tuple[dt.date, str], ...]:
    """INTERPRETATION C2 for the record: the category of every prior time point noduled never assessed
    (after the last categorised one), derived by assessing the rounds in date order; empty when the
    nodule has no such prior or the rounds cannot be assessed (e.g. no age for PanCan)."""
    if not n.priors or all(p.category is not None for p in n.priors):
        return ()
    try:
        priors, _ = _prior_categories(n, case)
    except CaseError:
        return ()
    return tuple((p.date, p.category) for p in priors if isinstance(p, _Derived) and p.category is not None)


def ggn_doubled_within_a_year(n: Nodule, exam_date: dt.date) -> dt.date | None:
    """Note 13: a non-solid nodule that doubled in size (volume, or sphere-equivalent from the
    mean diameter) against a prior at most 365 days earlier (INTERPRETATION N13)."""
    if n.composition != "non-solid" or n.cyst is not None or n.airway is not None:
        return None
    return doubled_within_a_year(
        exam_date, n.volume_mm3, n.mean_diameter_mm, ((p.date, p.volume_mm3, p.mean_diameter_mm) for p in n.priors)
    )


def assess_nodule(n: Nodule, case: Case) -> NoduleAssessment:
    """Category, status and the deciding row for one nodule."""
    path = f"nodules[{n.index}]"
    reasons: list[str] = []
    size = nodule_size(n)
    if size is not None:
        reasons.append(f"size {size}")
    status = "baseline" if case.screening_round == "baseline" else "new"
    growth = None
    # ---- not classified (note 11a, 11g, 11h)
    if n.cyst == "thin-walled":
        return NoduleAssessment(
            n.id,
            None,
            cast(GrowthStatus, _plain_status(n, case)),
            "Note 11a: thin-walled cyst (unilocular, uniform"
            " wall < 2 mm) is benign and not classified or managed in the NLCSP protocol",
            reasons=tuple(reasons),
        )
    if n.cyst is not None and (n.cyst_fluid_containing or n.cyst_multiple) and n.cyst_change is None:
        which = "11g: fluid-containing cyst" if n.cyst_fluid_containing else "11h: multiple cysts"
        return NoduleAssessment(
            n.id,
            None,
            cast(GrowthStatus, _plain_status(n, case)),
            f"Note {which}, not classified in the NLCSP protocol unless other concerning features are identified",
            reasons=tuple(reasons),
        )

    # ---- growth (note 6)
    if n.priors:
        try:
            growth = _growth(n, case, path, reasons)
        except CaseError:
            if not _growth_irrelevant(n):
                raise
            growth = None
            reasons.append(
                "priors without comparable measurements: growth not assessed (it does not change the"
                " category of this nodule)"
            )
        status = growth.status if growth is not None else _cyst_status(n)
        if n.cyst is not None and n.cyst_change in ("growing-cystic-component", "growing-wall", "growing-multilocular"):
            status = "growing"
            if growth is not None:  # the note-6 line said "stable": say what grew instead (note 11f)
                delta = growth.change.diameter_change_mm or 0.0
                reasons[-1] = (
                    f"note 11f: cyst_change {n.cyst_change} is cyst growth ({_CYST_GROWTH[n.cyst_change]});"
                    f" the mean diameter of the whole cyst changed {delta:+.1f} mm"
                    f" since {growth.comparison.date}, which does not decide here: growing"
                )
        elif n.composition == "part-solid" and n.cyst is None and n.airway is None:
            solid_growth = _solid_component_growth(n, case, reasons)
            if solid_growth is not None:
                status, growth = solid_growth[0], solid_growth[1] or growth
    elif n.cyst_change is not None:
        status = "growing" if n.cyst_change.startswith("growing") else "stable"
        reasons.append(f"cyst_change {n.cyst_change} without priors: the cyst is not new")
    kind = _kind(n, size, path, reasons)
    solid = solid_component_size(n)
    risk = None
    if case.screening_round == "baseline":
        computed = _pancan(n, kind, case, case.participant.age_years or 0.0, path)
        if computed is not None:
            risk = computed[0]
            reasons.append(computed[1])
    prev_cat = None
    prev_date = None
    derived = False
    months = None
    since_pre = False
    stable_since = None
    if growth is not None and growth.stable_since is not None and status in STABLE:
        stable_since = growth.stable_since.date
        months = months_between(stable_since, case.exam_date)
        since_pre = growth.stable_since.pre_screening
        reasons.append(
            f"stable or decreased since {stable_since} ({months:.1f} months{', pre-screening CT' if since_pre else ''})"
        )
    elif n.priors and status in STABLE:  # cyst without diameters: stable since the earliest prior
        stable_since = n.priors[0].date
        months = months_between(stable_since, case.exam_date)
        since_pre = n.priors[0].pre_screening
    stepped = status in STABLE and (case.screening_round == "follow-up" or since_pre)
    if n.priors and (stepped or status in UP) and not (n.proven_benign or n.benign_calcification or n.fat):
        try:
            prev_cat, derived, prev_date = previous_category(n, case, path, reasons)
        except CaseError:
            if stepped and not _growth_irrelevant(n):
                raise  # stepped management needs it; growth rows do not (only the G6 floor)
    f = Facts(
        n,
        case.screening_round,
        status,
        kind,
        size,
        solid,
        risk,
        prev_cat,
        months,
        since_pre,
        case.exam_date,
        derived,
        prev_date,
    )

    decision = _decide(f, case, reasons)
    category = decision.category
    rule = decision.rule
    # ---- note 13: a ground-glass nodule that doubles in size in one year
    doubled = ggn_doubled_within_a_year(n, case.exam_date)
    if doubled is not None and category is not None and int(category) < 6 and not _growth_irrelevant(n):
        reasons.append(f"{rule} -> raised to Category 6 by note 13")
        category = "6"
        rule = (
            f"Note 13, Category 6: a ground-glass nodule that doubles in size in one year"
            f" (against the prior of {doubled})"
        )
    change = growth.change if growth is not None else None
    return NoduleAssessment(
        id=n.id,
        category=category,
        status=status,  # type: ignore[arg-type]
        rule=rule,
        volume_change_pct=change.volume_change_pct if change else None,
        vdt_days=change.vdt_days if change else None,
        diameter_change_mm=change.diameter_change_mm if change else None,
        comparison_date=growth.comparison.date if growth is not None else None,
        pancan_risk_pct=risk,
        previous_category=prev_cat,
        previous_category_date=prev_date,
        previous_category_derived=derived,
        stable_since=stable_since,
        stable_months=months,
        reasons=tuple(reasons),
        consider_referral=decision.consider_referral and category == "5",
    )


_CYST_GROWTH = {
    "growing-cystic-component": "size of the cystic component",
    "growing-wall": "wall thickness",
    "growing-multilocular": "size of the multilocular cyst",
}


def _solid_component_growth(
    n: Nodule, case: Case, reasons: list[str]
) -> tuple[str, growth_mod.GrowthAssessment | None] | None:
    """INTERPRETATION G8: the growth of a part-solid nodule is that of its solid component ("New or growing
    ... solid component") when priors carry one (``noduled.case/2``); a prior that was non-solid (or whose
    solid component was 0) means the solid component is new.  None: no prior says (whole-nodule growth)."""
    if solid_component_size(n) is None:
        return None
    told = [
        p
        for p in n.priors
        if p.composition == "non-solid"
        or p.solid_component_volume_mm3 is not None
        or p.solid_component_mean_diameter_mm is not None
    ]
    if not told:
        return None
    last = told[-1]
    if last.composition == "non-solid" or not (
        last.solid_component_volume_mm3 or last.solid_component_mean_diameter_mm
    ):
        reasons.append(
            f"the solid component is new since the prior of {last.date} (no solid component then):"
            " growing solid component (INTERPRETATION G8)"
        )
        return "growing", None
    scans = [
        growth_mod.Scan(
            p.date, p.solid_component_volume_mm3 or None, p.solid_component_mean_diameter_mm or None, p.pre_screening
        )
        for p in told
        if p.solid_component_volume_mm3 or p.solid_component_mean_diameter_mm
    ]
    current = growth_mod.Scan(
        case.exam_date, n.solid_component_volume_mm3 or None, n.solid_component_mean_diameter_mm or None
    )
    try:
        result = growth_mod.assess_growth([*scans, current])
    except growth_mod.MissingMeasurement as exc:
        reasons.append(f"solid component growth not measurable ({exc}): whole-nodule growth (INTERPRETATION G8)")
        return None
    reasons.extend(result.trajectory)
    reasons.append(
        f"note 6 on the solid component (INTERPRETATION G8): {result.status} against"
        f" {result.comparison.date}: {result.change.reason}"
    )
    return result.status, result


def _growth_irrelevant(n: Nodule) -> bool:
    """Benign features (decision 5), secretions (10b, 10c), proven benign (note 14) and a persisting
    segmental airway nodule (10d) have the same category whatever the growth."""
    return (
        n.benign_calcification
        or n.fat
        or n.proven_benign
        or n.airway in ("subsegmental-secretions", "segmental-or-proximal-secretions", "segmental-or-proximal")
    )


def _plain_status(n: Nodule, case: Case) -> str:
    if not n.priors:
        return "baseline" if case.screening_round == "baseline" else "new"
    return "stable"


def _cyst_status(n: Nodule) -> str:
    if n.cyst_change is not None and n.cyst_change.startswith("growing"):
        return "growing"
    return "stable"


def _growth(n: Nodule, case: Case, path: str, reasons: list[str]) -> growth_mod.GrowthAssessment | None:
    volumetry = n.cyst is None  # note 11f: no volumetry for atypical pulmonary cysts
    scans = [
        growth_mod.Scan(p.date, p.volume_mm3 if volumetry else None, p.mean_diameter_mm, p.pre_screening)
        for p in n.priors
        if (p.volume_mm3 is not None and volumetry) or p.mean_diameter_mm is not None
    ]
    current = growth_mod.Scan(case.exam_date, n.volume_mm3 if volumetry else None, n.mean_diameter_mm)
    if n.cyst is not None and (not scans or current.mean_diameter_mm is None):
        reasons.append(
            "cyst growth is judged on the mean diameter (note 11f); none given on both sides:"
            " status taken from cyst_change"
        )
        return None
    if not scans:
        raise CaseError(
            f"{path}.priors",
            f"no prior of nodule {n.id!r} has volume_mm3 or mean_diameter_mm; growth (note 6) cannot be assessed",
        )
    if current.volume_mm3 is None and current.mean_diameter_mm is None:
        raise CaseError(
            f"{path}.volume_mm3",
            f"nodule {n.id!r} has priors but no volume_mm3 or mean_diameter_mm to compare (note 6)",
        )
    try:
        result = growth_mod.assess_growth([*scans, current], volumetry=volumetry)
    except growth_mod.MissingMeasurement as exc:
        raise CaseError(f"{path}.priors", f"nodule {n.id!r}: {exc}") from None
    reasons.extend(result.trajectory)
    reasons.append(
        f"note 6: {result.status} against {result.comparison.date}"
        f"{' (pre-screening CT)' if result.comparison.pre_screening else ''}: {result.change.reason}"
    )
    return result


def _decide(f: Facts, case: Case, reasons: list[str]) -> Decision:
    n = f.nodule
    if n.proven_benign:
        return Decision(
            "1", "Note 14: lesion proven benign following appropriate evaluation; resume screening at 24-month LDCT"
        )
    if f.screening_round == "baseline":
        return _decide_baseline(f, reasons)
    return _decide_follow_up(f, reasons)


def _decided(row: Row) -> Decision:
    return Decision(
        row.category, row.rule, consider_referral=row.category == "5" and row in (PREVIOUS_5_6, NOTE_7_TABLE[-1])
    )


def _decide_baseline(f: Facts, reasons: list[str]) -> Decision:
    base = baseline_category(f)
    if base is None:
        raise CaseError(f.path, f"no row of the baseline table applies to nodule {f.nodule.id!r} ({f.kind})")
    if benign_features(f) or not f.nodule.priors:
        return _decided(base)
    if persistent_segmental_airway(f):
        return _decided(AIRWAY_PERSISTENT)
    if f.status in UP:  # INTERPRETATION B2: growth against an earlier CT is not ignored at baseline
        grown = follow_up_category(f)
        if grown is not None and int(grown.category) > int(base.category):
            reasons.append(f"{base.rule} -> raised by growth")
            return _decided(grown)
        return _decided(base)
    # stable or decreased against an earlier CT: note 7 when that CT is pre-NLCSP (decision 3)
    candidates = [r for r in (note7_category(f),) if r is not None] + [base]  # ties: note 7 (more specific)
    if len(candidates) > 1:
        reasons.append("candidates: " + "; ".join(r.rule for r in candidates) + " -> lowest")
    return _decided(_lowest(candidates))


def _decide_follow_up(f: Facts, reasons: list[str]) -> Decision:
    if f.status in STABLE:
        candidates = stepped_candidates(f)
        if not candidates:
            raise CaseError(
                f.path, f"no row of the follow-up table applies to nodule {f.nodule.id!r} ({f.kind}, {f.status})"
            )
        if len(candidates) > 1:
            reasons.append("candidates: " + "; ".join(r.rule for r in candidates) + " -> lowest (decision 3)")
        return _decided(_lowest(candidates))
    row = follow_up_category(f)
    if row is None:
        raise CaseError(
            f.path, f"no row of the follow-up table applies to nodule {f.nodule.id!r} ({f.kind}, {f.status})"
        )
    decision = _decided(row)
    if f.status in UP and f.previous_category is not None and f.nodule.priors:
        # INTERPRETATION G6: growth never gives a lower category than stability would have
        last = f.nodule.priors[-1]
        assert f.exam_date is not None
        twin = replace(
            f,
            status="stable",
            stable_months=months_between(last.date, f.exam_date),
            stable_since_pre_screening=last.pre_screening,
        )
        floor = stepped_candidates(twin)
        if prev(f, "5", "6"):
            floor.append(PREVIOUS_5_6)  # a previous Category 5/6 lesion that grows is never below 5
        if floor:
            lowest = max(floor, key=lambda r: int(r.category)) if prev(f, "5", "6") else _lowest(floor)
            if int(lowest.category) > int(row.category):
                reasons.append(f"growth row gives Category {row.category}, stability would give {lowest.category}")
                return Decision(
                    lowest.category,
                    f"{row.rule}; not lower than the Category {lowest.category} it"
                    " would have if stable (INTERPRETATION G6)",
                )
    return decision


# ----------------------------------------------------------------------------- the exam


def assess(case: Case) -> Assessment:
    """The NLCSP assessment of ``case``: every nodule, then the exam (note 1, 8, 13, 15)."""
    nodules = []
    for n in case.nodules:
        a = assess_nodule(n, case)
        derived = dict(derived_prior_categories(n, case))
        if (
            a.previous_category_derived
            and a.previous_category_date is not None
            and a.previous_category is not None
            and a.previous_category_date not in derived
        ):
            derived[a.previous_category_date] = a.previous_category  # C2's last resort
        nodules.append(replace(a, derived_prior_categories=tuple(sorted(derived.items()))))
    category, rule, decisive, consider = exam_category(case, nodules)
    findings = case.exam_findings
    management = management_for(
        category,
        case.exam_date,
        additional_findings=findings.actionable_additional_findings,
        category0_months=findings.infection_follow_up_months if category == "0" else None,
        consider_referral=consider,
    )
    notes = []
    new_count = sum(1 for a in nodules if a.status == "new")
    if new_count > 6 and not findings.infection_or_inflammation:
        notes.append(
            f"{new_count} new nodules: note 8a lists multiple new nodules (more than six) among findings"
            " that may suggest an infectious or inflammatory process (Category 0, reader's judgement)"
        )
    if findings.actionable_additional_findings:
        notes.append("Note 15: actionable additional findings (A) - describe with appropriate recommendations")
    screen = "negative" if category == "1" else "positive" if category in ("5", "6") else "neither"
    return Assessment(
        exam_date=case.exam_date,
        screening_round=case.screening_round,
        category=category,
        additional_findings=findings.actionable_additional_findings,
        descriptor=DESCRIPTORS[category],
        management=management.text,
        follow_up_months=management.follow_up_months,
        due_date=management.due_date,
        rule=rule,
        decisive_nodule_id=decisive,
        nodules=tuple(nodules),
        screen_result=screen,  # type: ignore[arg-type]
        notes=tuple(notes),
    )


def exam_category(case: Case, nodules: list[NoduleAssessment]) -> tuple[str, str, str | None, bool]:
    """Note 1 (highest nodule), note 8 (Category 0 and 8b), note 13 (Category 6).

    Returns (category, rule, decisive nodule id, consider-referral wording).
    """
    table = "Baseline table" if case.screening_round == "baseline" else "Follow-up table"
    classified = [a for a in nodules if a.category is not None]
    if classified:
        top = max(classified, key=lambda a: int(a.category))  # type: ignore[arg-type]
        category, decisive = top.category, top.id
        consider = all(a.consider_referral for a in classified if a.category == "5") and category == "5"
        rule = f"Note 1: the nodule with the highest category (nodule {top.id}: {top.rule})"
    else:
        category, decisive, consider = "1", None, False
        rule = f"{table}, Category 1: No lung nodules"
        if nodules:
            rule += " (the only findings are not classified, note 11)"
    assert category is not None
    findings = case.exam_findings
    if findings.suspicious_features:
        return (
            "6",
            f"{table}, Category 6: Further features or imaging findings that increase suspicion for lung"
            " cancer (note 13)",
            None,
            False,
        )
    if findings.infection_or_inflammation:
        if category in ("5", "6"):
            return (
                category,
                f"Note 8b: findings suggest an infectious or inflammatory process, but nodule"
                f" {decisive} meets Category {category} criteria; {rule}",
                decisive,
                consider,
            )
        return (
            "0",
            f"{table}, Category 0: Findings suggestive of an inflammatory or infectious process (note 8a)",
            None,
            False,
        )
    return category, rule, decisive, consider


def explain(assessment: Assessment) -> str:
    """The reasoning of an assessment in plain text, nodule by nodule."""
    lines = [
        f"Exam of {assessment.exam_date} ({assessment.screening_round} round):"
        f" Category {assessment.category}{' A' if assessment.additional_findings else ''}"
        f" - {assessment.descriptor}",
        f"  because: {assessment.rule}",
        f"  management: {assessment.management}" + (f" (due {assessment.due_date})" if assessment.due_date else ""),
    ]
    for note in assessment.notes:
        lines.append(f"  note: {note}")
    for a in assessment.nodules:
        shown = f"Category {a.category}" if a.category is not None else "not classified"
        lines.append(f"Nodule {a.id}: {shown}, {a.status}")
        for reason in a.reasons:
            lines.append(f"  - {reason}")
        lines.append(f"  => {a.rule}")
    return "\n".join(lines) + "\n"
