"""ACR Lung-RADS v2022: the category of each nodule and of the exam.

One table, :data:`CATEGORY_TABLE` (:func:`category_row`), the rows in the order of the
reference summary (``shared/reference/lung-rads-v2022.md``, "Categories": 1, 2, 3, 4A, 4B;
within a category the findings in the summary's order: juxtapleural, solid, part-solid,
non-solid, airway, atypical cyst, stepped management), each row tagged with its category.
Rules around the table, each a function: growth (:mod:`lungrads.growth`), 4X
(:func:`category_4x`), Category 0 and the exam (:func:`exam_category`), S.

The table is searched from its first row and the first row that applies decides; the rows
are in ascending category, so this is the lowest category a row gives (a juxtapleural
nodule of benign appearance is 2 before any size row).  Choices the summary leaves open
are in ``lungrads/INTERPRETATION.md``, cited as "INTERPRETATION <id>".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from lungrads import PROTOCOL_NAME, PROTOCOL_VERSION
from lungrads.growth import Growth, MissingMeasurement, Point, assess_growth
from lungrads.management import DESCRIPTORS, management_for
from lungrads.types import RANK, LungRadsAssessment, NoduleResult
from nlcsp.cases import CaseError
from nlcsp.common import Size, below, doubled_within_a_year, first_row, round_mm, solid_below
from nlcsp.types import Case, ExamFindings, Nodule, Prior, ScreeningRound

# sizes: mean diameter (mm) with the sphere-equivalent volume (mm3) in brackets (INTERPRETATION S1)
T4 = (34.0, 4.0)
T6 = (113.0, 6.0)
T8 = (268.0, 8.0)
T10 = (524.0, 10.0)
T15 = (1767.0, 15.0)
T30 = (14137.0, 30.0)

UP = ("growing", "slowly-growing")
STABLE = ("stable", "decreased")


def nodule_size(n: Nodule) -> Size | None:
    """Mean diameter to 0.1 mm, else volume, else maximal axial diameter (INTERPRETATION S1)."""
    if n.mean_diameter_mm is not None:
        return Size(round_mm(n.mean_diameter_mm), "mm", "mean_diameter_mm")
    if n.volume_mm3 is not None:
        return Size(n.volume_mm3, "mm3", "volume_mm3")
    if n.max_axial_diameter_mm is not None:
        return Size(round_mm(n.max_axial_diameter_mm), "mm", "max_axial_diameter_mm")
    return None


def solid_component_size(n: Nodule) -> Size | None:
    if n.solid_component_mean_diameter_mm is not None:
        return Size(round_mm(n.solid_component_mean_diameter_mm), "mm", "solid_component_mean_diameter_mm")
    if n.solid_component_volume_mm3 is not None:
        return Size(n.solid_component_volume_mm3, "mm3", "solid_component_volume_mm3")
    return None


@dataclass(frozen=True)
class Facts:
    """Everything a row looks at, for one nodule."""

    # the case fields that give a size, in the order of nodule_size / solid_component_size
    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("mean_diameter_mm", "volume_mm3", "max_axial_diameter_mm")
    SOLID_FIELDS: ClassVar[tuple[str, ...]] = ("solid_component_mean_diameter_mm", "solid_component_volume_mm3")

    nodule: Nodule
    status: str  # baseline | new | growing | slowly-growing | stable | decreased
    kind: str  # solid | part-solid | non-solid | juxtapleural | airway-subsegmental | airway-segmental | cyst
    size: Size | None
    solid: Size | None
    previous_category: str | None = None
    cyst_grew: bool = False  # the cyst's mean diameter grew > 1.5 mm (no cyst_change given)


# ----------------------------------------------------------------------------- predicates


def status_in(f: Facts, *statuses: str) -> bool:
    return f.status in statuses


def solid(f: Facts) -> bool:
    """Solid, incl. a juxtapleural nodule beyond its row, and a growing subsegmental airway nodule
    (INTERPRETATION A2)."""
    return f.kind in ("solid", "juxtapleural") or (f.kind == "airway-subsegmental" and f.status in UP)


def part_solid(f: Facts) -> bool:
    return f.kind == "part-solid"


def non_solid(f: Facts) -> bool:
    return f.kind == "non-solid"


def benign_features(f: Facts) -> bool:
    return f.nodule.benign_calcification or f.nodule.fat


def stable_with(f: Facts, *previous: str) -> bool:
    return f.status in STABLE and f.previous_category in previous and f.nodule.cyst_change is None


def cyst_change(f: Facts, change: str) -> bool:
    return f.kind == "cyst" and f.nodule.cyst_change == change


def cyst_is(f: Facts, cyst: str) -> bool:
    return f.kind == "cyst" and f.nodule.cyst == cyst


def persistent_segmental_airway(f: Facts) -> bool:
    return f.kind == "airway-segmental" and bool(f.nodule.priors)


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    category: str
    words: str
    applies: Callable[[Facts], bool]

    @property
    def rule(self) -> str:
        return f"Lung-RADS v2022 Category {self.category}: {self.words}"


CATEGORY_TABLE: tuple[Row, ...] = (
    # Category 1 -- Negative -- 12-month screening LDCT
    Row(
        "1",
        "Nodule with benign features: complete, central, popcorn or concentric ring calcification, or fat-containing",
        benign_features,
    ),
    Row("1", "Category 1 lesion stable or decreased (INTERPRETATION M2)", lambda f: stable_with(f, "1")),
    # Category 2 -- Benign appearance or behavior -- 12-month screening LDCT
    Row(
        "2",
        "Category 4B lesion proven benign after appropriate diagnostic work-up (INTERPRETATION M3)",
        lambda f: f.nodule.proven_benign,
    ),
    Row(
        "2",
        "Juxtapleural nodule: solid, smooth margins, oval/lentiform/triangular, < 10 mm (< 524 mm3),"
        " at baseline or new",
        lambda f: f.kind == "juxtapleural" and status_in(f, "baseline", "new"),
    ),
    Row(
        "2",
        "Solid nodule: < 6 mm (< 113 mm3) at baseline",
        lambda f: solid(f) and status_in(f, "baseline") and below(f, T6),
    ),
    Row("2", "Solid nodule: new < 4 mm (< 34 mm3)", lambda f: solid(f) and status_in(f, "new") and below(f, T4)),
    Row(
        "2",
        "Part-solid nodule: < 6 mm total mean diameter (< 113 mm3) at baseline",
        lambda f: part_solid(f) and status_in(f, "baseline") and below(f, T6),
    ),
    Row(
        "2",
        "Non-solid nodule (GGN): < 30 mm (< 14,137 mm3) at baseline, new or growing (INTERPRETATION G4)",
        lambda f: non_solid(f) and below(f, T30) and status_in(f, "baseline", "new", "growing", "slowly-growing"),
    ),
    Row(
        "2",
        "Non-solid nodule (GGN): >= 30 mm (>= 14,137 mm3) stable or slowly growing",
        lambda f: non_solid(f) and status_in(f, "stable", "decreased", "slowly-growing"),
    ),
    Row(
        "2",
        "Airway nodule, subsegmental: at baseline, new or stable",
        lambda f: f.kind == "airway-subsegmental" and f.status not in UP,
    ),
    Row("2", "Category 3 lesion stable or decreased at 6-month follow-up LDCT", lambda f: stable_with(f, "3")),
    Row(
        "2", "Category 2 lesion stable or decreased (benign behavior; INTERPRETATION M2)", lambda f: stable_with(f, "2")
    ),
    # Category 3 -- Probably benign -- 6-month LDCT
    Row(
        "3",
        "Solid nodule: >= 6 to < 8 mm (>= 113 to < 268 mm3) at baseline",
        lambda f: solid(f) and status_in(f, "baseline") and below(f, T8),
    ),
    Row(
        "3",
        "Solid nodule: new 4 to < 6 mm (34 to < 113 mm3)",
        lambda f: solid(f) and status_in(f, "new") and below(f, T6),
    ),
    Row(
        "3",
        "Part-solid nodule: >= 6 mm total mean diameter (>= 113 mm3) with solid component < 6 mm (< 113 mm3)"
        " at baseline",
        lambda f: part_solid(f) and status_in(f, "baseline") and solid_below(f, T6),
    ),
    Row(
        "3",
        "Part-solid nodule: new < 6 mm total mean diameter (< 113 mm3) (INTERPRETATION P1)",
        lambda f: part_solid(f) and status_in(f, "new") and below(f, T6) and (f.solid is None or f.solid.below(T4)),
    ),
    Row(
        "3",
        "Non-solid nodule (GGN): >= 30 mm (>= 14,137 mm3) at baseline or new (or growing, INTERPRETATION G4)",
        lambda f: non_solid(f) and status_in(f, "baseline", "new", "growing"),
    ),
    Row(
        "3",
        "Atypical pulmonary cyst: growing cystic component (mean diameter) of a thick-walled cyst",
        lambda f: cyst_change(f, "growing-cystic-component") or (cyst_is(f, "thick-walled") and f.cyst_grew),
    ),
    Row(
        "3",
        "Category 4A lesion stable or decreased at 3-month follow-up LDCT (excluding airway nodules)",
        lambda f: stable_with(f, "4A") and not f.kind.startswith("airway"),
    ),
    # Category 4A -- Suspicious -- 3-month LDCT
    Row(
        "4A",
        "Solid nodule: >= 8 to < 15 mm (>= 268 to < 1,767 mm3) at baseline",
        lambda f: solid(f) and status_in(f, "baseline") and below(f, T15),
    ),
    Row(
        "4A",
        "Solid nodule: growing < 8 mm (< 268 mm3)",
        lambda f: solid(f) and status_in(f, "growing") and below(f, T8),
    ),
    Row(
        "4A",
        "Solid nodule: new 6 to < 8 mm (113 to < 268 mm3)",
        lambda f: solid(f) and status_in(f, "new") and below(f, T8),
    ),
    Row(
        "4A",
        "Part-solid nodule: >= 6 mm total mean diameter with solid component >= 6 to < 8 mm (>= 113 to"
        " < 268 mm3) at baseline",
        lambda f: part_solid(f) and status_in(f, "baseline") and solid_below(f, T8),
    ),
    Row(
        "4A",
        "Part-solid nodule: new or growing solid component < 4 mm (< 34 mm3)",
        lambda f: part_solid(f) and status_in(f, "new", "growing") and solid_below(f, T4),
    ),
    Row(
        "4A",
        "Airway nodule, segmental or more proximal: at baseline or new",
        lambda f: f.kind == "airway-segmental" and status_in(f, "baseline", "new"),
    ),
    Row(
        "4A",
        "Atypical pulmonary cyst: thick-walled cyst, or multilocular cyst, at baseline (or new, INTERPRETATION Y2)",
        lambda f: f.kind == "cyst" and status_in(f, "baseline", "new"),
    ),
    Row(
        "4A",
        "Atypical pulmonary cyst: thin- or thick-walled cyst that becomes multilocular",
        lambda f: cyst_change(f, "newly-multilocular"),
    ),
    # Category 4B -- Very suspicious -- diagnostic work-up
    Row("4B", "Solid nodule: >= 15 mm (>= 1,767 mm3) at baseline", lambda f: solid(f) and status_in(f, "baseline")),
    Row(
        "4B", "Solid nodule: new or growing >= 8 mm (>= 268 mm3)", lambda f: solid(f) and status_in(f, "new", "growing")
    ),
    Row(
        "4B",
        "Part-solid nodule: solid component >= 8 mm (>= 268 mm3) at baseline",
        lambda f: part_solid(f) and status_in(f, "baseline") and not solid_below(f, T8),
    ),
    Row(
        "4B",
        "Part-solid nodule: new or growing solid component >= 4 mm (>= 34 mm3)",
        lambda f: part_solid(f) and status_in(f, "new", "growing"),
    ),
    AIRWAY_PERSISTENT := Row(
        "4B",
        "Airway nodule, segmental or more proximal: stable or growing at 3-month follow-up LDCT (INTERPRETATION A1)",
        persistent_segmental_airway,
    ),
    Row(
        "4B",
        "Atypical pulmonary cyst: thick-walled cyst with growing wall thickness or nodularity",
        lambda f: cyst_change(f, "growing-wall"),
    ),
    Row(
        "4B",
        "Atypical pulmonary cyst: growing multilocular cyst (mean diameter)",
        lambda f: cyst_change(f, "growing-multilocular") or (cyst_is(f, "multilocular") and f.cyst_grew),
    ),
    Row(
        "4B",
        "Atypical pulmonary cyst: multilocular cyst with increased loculation or new/increased opacity"
        " (nodular, ground glass, or consolidation)",
        lambda f: cyst_change(f, "increased-loculation-or-opacity"),
    ),
    Row(
        "4B",
        "Slow-growing solid or part-solid nodule showing growth over multiple screening exams",
        lambda f: (solid(f) or part_solid(f)) and status_in(f, "slowly-growing"),
    ),
    STABLE_4B := Row(
        "4B",
        "Category 4B or 4X lesion stable or decreased, not proven benign: no step-down without"
        " diagnostic work-up (INTERPRETATION M3)",
        lambda f: stable_with(f, "4B", "4X"),
    ),
)


def category_row(f: Facts) -> Row | None:
    """The category table: the first row that applies."""
    return first_row(CATEGORY_TABLE, f)


def category_4x(category: str, n: Nodule, exam_date: dt.date, previous: str | None, row: Row) -> str | None:
    """4X: "a Category 3 or 4 nodule with additional features or imaging findings that increase suspicion for
    lung cancer" (INTERPRETATION X1).  Returns the reason when the nodule is 4X, else None."""
    if category in ("3", "4A", "4B"):
        if n.additional_suspicious_features:
            return "additional_suspicious_features: Category 3 or 4 nodule with additional features -> 4X"
        if n.spiculated:
            return "spiculated: Category 3 or 4 nodule with an additional feature (spiculation) -> 4X"
        if row is STABLE_4B and previous == "4X":
            return "Category 4X lesion stable, not proven benign: stays 4X (INTERPRETATION M3)"
    doubled = None
    if n.composition == "non-solid" and n.cyst is None and n.airway is None:
        doubled = doubled_within_a_year(
            exam_date, n.volume_mm3, n.mean_diameter_mm, ((p.date, p.volume_mm3, p.mean_diameter_mm) for p in n.priors)
        )
    if doubled is not None and not (n.proven_benign or n.benign_calcification or n.fat):
        return f"a ground-glass nodule that doubles in size in one year (against the prior of {doubled}) -> 4X"
    return None


# ----------------------------------------------------------------------------- one nodule


def _kind(n: Nodule, size: Size | None, path: str, reasons: list[str]) -> str:
    if n.cyst is not None:
        return "cyst"
    if n.airway in ("subsegmental", "subsegmental-secretions"):
        return "airway-subsegmental"  # INTERPRETATION A1: read by location
    if n.airway in ("segmental-or-proximal", "segmental-or-proximal-secretions"):
        return "airway-segmental"
    if n.composition is None:
        raise CaseError(f"{path}.composition", f"nodule {n.id!r} needs a composition")
    if n.juxtapleural_typical and n.composition == "solid":
        if size is None:
            raise CaseError(f"{path}.mean_diameter_mm", f"juxtapleural nodule {n.id!r} needs a size")
        if size.below(T10):
            return "juxtapleural"
        reasons.append(f"juxtapleural, but {size} is not < 10 mm (< 524 mm3): an ordinary solid nodule")
    return n.composition


def _points(n_or_p: Nodule | Prior, date: dt.date, *, solid_component: bool = False, volumetry: bool = True) -> Point:
    if solid_component:
        return Point(
            date,
            n_or_p.solid_component_mean_diameter_mm or None,
            (n_or_p.solid_component_volume_mm3 or None) if volumetry else None,
        )
    return Point(date, n_or_p.mean_diameter_mm, n_or_p.volume_mm3 if volumetry else None)


def _growth(n: Nodule, case: Case, path: str, reasons: list[str]) -> Growth | None:
    """Growth of the nodule; of the solid component for a part-solid nodule when a prior says what it was
    (INTERPRETATION P2); mean diameters only for cysts (INTERPRETATION Y3)."""
    volumetry = n.cyst is None
    if n.composition == "part-solid" and n.cyst is None and n.airway is None and solid_component_size(n) is not None:
        told = [
            p
            for p in n.priors
            if p.composition == "non-solid"
            or p.solid_component_volume_mm3 is not None
            or p.solid_component_mean_diameter_mm is not None
        ]
        if told:
            last = told[-1]
            if last.composition == "non-solid" or not (
                last.solid_component_volume_mm3 or last.solid_component_mean_diameter_mm
            ):
                reasons.append(
                    f"new solid component (none on the prior of {last.date}): growing solid component"
                    " (INTERPRETATION P2)"
                )
                return Growth("growing", last.date, 0.0, 0.0, "new solid component")
            points = [
                _points(p, p.date, solid_component=True)
                for p in told
                if p.solid_component_volume_mm3 or p.solid_component_mean_diameter_mm
            ]
            try:
                g = assess_growth(points, _points(n, case.exam_date, solid_component=True))
                reasons.append(f"solid component: {g.reason} (part-solid growth is judged on the solid component)")
                return g
            except MissingMeasurement:
                pass
    try:
        g = assess_growth(
            [_points(p, p.date, volumetry=volumetry) for p in n.priors], _points(n, case.exam_date, volumetry=volumetry)
        )
    except MissingMeasurement as exc:
        if n.cyst is not None:
            reasons.append(f"cyst growth is judged on the mean diameter; {exc}: status from cyst_change")
            return None
        raise CaseError(f"{path}.priors", f"nodule {n.id!r}: {exc}; growth cannot be assessed") from None
    reasons.append(g.reason)
    return g


def _measured(p: Prior) -> bool:
    return p.volume_mm3 is not None or p.mean_diameter_mm is not None


def previous_category(n: Nodule, case: Case, reasons: list[str]) -> tuple[str | None, bool]:
    """The Lung-RADS category of the most recent prior that has one (``lung_rads_category``; 0 skipped);
    prior time points after it without one get theirs by assessing them in date order with these same rules
    (INTERPRETATION C1).  Returns (category, derived)."""
    priors = list(n.priors)
    last = max((i for i, p in enumerate(priors) if p.lung_rads_category not in (None, "0")), default=-1)
    derived_any = False
    for i in range(last + 1, len(priors)):
        p = priors[i]
        if p.lung_rads_category is not None or not _measured(p):
            continue
        earlier = [q for q in priors[:i] if q.lung_rads_category is not None or _measured(q)]
        screening_before = any(not q.pre_screening for q in earlier)
        if p.pre_screening and screening_before:
            continue  # a CT between screening rounds: a comparison, not a round
        round_then: ScreeningRound = "follow-up" if screening_before else "baseline"
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
            additional_suspicious_features=False,
            priors=tuple(earlier) if round_then == "follow-up" else (),
        )
        exam = replace(
            case,
            exam_date=p.date,
            screening_round=round_then,
            exam_findings=ExamFindings(),
            nodules=(then,),
            warnings=(),
        )
        try:
            a = assess_nodule(then, exam)
        except CaseError:
            try:  # a prior without its solid component: the lowest rows (INTERPRETATION C1)
                a = assess_nodule(replace(then, solid_component_volume_mm3=0.0), exam)
            except CaseError:
                continue
        if a.category is None:
            continue
        priors[i] = replace(p, lung_rads_category=a.category)
        derived_any = True
        reasons.append(
            f"prior of {p.date} has no Lung-RADS category: Category {a.category} derived as a"
            f" {round_then} round ({a.rule})"
        )
    for i in range(len(priors) - 1, -1, -1):
        cat = priors[i].lung_rads_category
        if cat not in (None, "0"):
            derived = derived_any and i > last
            reasons.append(
                f"previous Lung-RADS category {cat} ({'derived' if derived else 'reported'}, {priors[i].date})"
            )
            return cat, derived
    return None, False


def assess_nodule(n: Nodule, case: Case) -> NoduleResult:
    """Category, status and the deciding row for one nodule."""
    path = f"nodules[{n.index}]"
    reasons: list[str] = []
    size = nodule_size(n)
    if size is not None:
        reasons.append(f"size {size}")
    plain = "baseline" if case.screening_round == "baseline" and not n.priors else "new" if not n.priors else "stable"
    if n.cyst == "thin-walled":
        return NoduleResult(
            n.id,
            None,
            plain,  # type: ignore[arg-type]
            "Lung-RADS v2022: thin-walled unilocular cyst, not classified as suspicious (INTERPRETATION Y1)",
            reasons=tuple(reasons),
        )
    if n.cyst is not None and (n.cyst_fluid_containing or n.cyst_multiple) and n.cyst_change is None:
        return NoduleResult(
            n.id,
            None,
            plain,  # type: ignore[arg-type]
            "fluid-containing or multiple cysts: not classified unless other"
            " concerning features are identified (INTERPRETATION Y1)",
            reasons=tuple(reasons),
        )
    status = plain
    growth: Growth | None = None
    cyst_grew = False
    if n.priors:
        try:
            growth = _growth(n, case, path, reasons)
        except CaseError:
            if not (
                n.benign_calcification
                or n.fat
                or n.proven_benign
                or n.airway in ("segmental-or-proximal", "segmental-or-proximal-secretions")
            ):
                raise
            reasons.append("priors without comparable measurements: growth not assessed (it does not decide here)")
        if growth is not None:
            status = growth.status
        if n.cyst is not None:
            if n.cyst_change is not None and n.cyst_change.startswith("growing"):
                status = "growing"
            elif n.cyst_change is None and status in UP:
                cyst_grew = True
    elif n.cyst_change is not None:
        status = "growing" if n.cyst_change.startswith("growing") else "stable"
        reasons.append(f"cyst_change {n.cyst_change} without priors: the cyst is not new")
    kind = _kind(n, size, path, reasons)
    prev, derived = None, False
    if n.priors and status in STABLE and case.screening_round == "follow-up":
        prev, derived = previous_category(n, case, reasons)
    facts = Facts(n, status, kind, size, solid_component_size(n), prev, cyst_grew)
    if case.screening_round == "baseline" and n.priors and not persistent_segmental_airway(facts):
        # INTERPRETATION B1: at the baseline round the size rows decide; growth against an earlier CT raises
        base = category_row(replace(facts, status="baseline"))
        row = base
        if status in UP:
            grown = category_row(facts)
            if grown is not None and base is not None and RANK[grown.category] > RANK[base.category]:
                reasons.append(f"{base.rule} -> raised by growth against the earlier CT")
                row = grown
    elif status in STABLE and prev is None and n.priors and not persistent_segmental_airway(facts):
        # INTERPRETATION C1: no prior gives a category (e.g. the 1-3 month scan after a Category 0 exam): "re-categorise
        # by the most suspicious remaining nodule" -- the size rows, as at first detection
        reasons.append("no prior Lung-RADS category (only Category 0 or unmeasured priors): the size rows decide")
        row = category_row(replace(facts, status="baseline"))
    else:
        row = category_row(facts)
    if row is None:
        raise CaseError(
            path,
            f"no row of the Lung-RADS table applies to nodule {n.id!r} ({kind}, {status}"
            + (f", previous category {prev}" if status in STABLE else "")
            + ")",
        )
    category, rule = row.category, row.rule
    x = category_4x(category, n, case.exam_date, prev, row)
    if x is not None:
        reasons.append(f"{rule} -> {x}")
        category, rule = "4X", f"Lung-RADS v2022 Category 4X: {x} (from {row.rule})"
    return NoduleResult(
        id=n.id,
        category=category,
        status=status,  # type: ignore[arg-type]
        rule=rule,
        diameter_change_mm=growth.change_mm if growth is not None else None,
        comparison_date=growth.comparison if growth is not None else None,
        previous_category=prev,
        previous_category_derived=derived,
        reasons=tuple(reasons),
    )


# ----------------------------------------------------------------------------- the exam


def _category0(findings: ExamFindings) -> tuple[str, str] | None:
    if findings.prior_ct_being_located:
        return "prior", "Prior chest CT examination(s) being located for comparison"
    if findings.lungs_not_evaluable:
        return "incomplete", "Part or all of lungs cannot be evaluated"
    if findings.infection_or_inflammation:
        return "infection", "Findings suggestive of an inflammatory or infectious process"
    return None


def exam_category(case: Case, nodules: list[NoduleResult]) -> tuple[str, str, str | None, str | None]:
    """The most suspicious finding decides; Category 0 unless a nodule is 4B or 4X (INTERPRETATION N0);
    exam-level suspicious features make a 3/4A/4B exam 4X (INTERPRETATION X2).

    Returns (category, rule, decisive nodule id, Category 0 reason or None)."""
    classified = [a for a in nodules if a.category is not None]
    if classified:
        top = max(classified, key=lambda a: RANK[a.category or "1"])
        category, decisive = top.category or "1", top.id
        rule = f"The most suspicious finding decides (nodule {top.id}: {top.rule})"
    else:
        category, decisive = "1", None
        rule = "Lung-RADS v2022 Category 1: No lung nodules" + (
            " (the only findings are not classified)" if nodules else ""
        )
    findings = case.exam_findings
    if findings.suspicious_features and category in ("3", "4A", "4B"):
        category = "4X"
        rule = (
            f"Lung-RADS v2022 Category 4X: Category {top.category} nodule {top.id} with additional imaging"
            " findings that increase suspicion for lung cancer (exam_findings.suspicious_features)"
        )
    zero = _category0(findings)
    if zero is not None:
        if category in ("4B", "4X"):
            return (
                category,
                f"{zero[1]}, but nodule {decisive} is Category {category} (INTERPRETATION N0); {rule}",
                decisive,
                None,
            )
        return "0", f"Lung-RADS v2022 Category 0: {zero[1]}", None, zero[0]
    return category, rule, decisive, None


def assess(case: Case) -> LungRadsAssessment:
    """The Lung-RADS v2022 assessment of ``case``: every nodule, then the exam."""
    nodules = [assess_nodule(n, case) for n in case.nodules]
    category, rule, decisive, zero = exam_category(case, nodules)
    findings = case.exam_findings
    s_findings = findings.significant_findings
    s_modifier = findings.actionable_additional_findings or bool(s_findings)
    pet = False
    if category == "4A" and decisive is not None:
        n = next(x for x in case.nodules if x.id == decisive)
        s = (
            solid_component_size(n)
            if n.composition == "part-solid"
            else (nodule_size(n) if n.composition == "solid" else None)
        )
        pet = s is not None and not s.below(T8)
    management = management_for(
        category,
        case.exam_date,
        s_modifier=s_modifier,
        category0_months=findings.infection_follow_up_months if zero == "infection" else None,
        category0_reason=zero or "infection",
        pet_ct=pet,
    )
    notes = []
    if findings.suspicious_features and category not in ("4X", "0"):
        notes.append(
            "exam_findings.suspicious_features: 4X applies to a Category 3 or 4 nodule; no nodule of this"
            " exam is Category 3 or 4 (INTERPRETATION X2)"
        )
    new = sum(1 for a in nodules if a.status == "new")
    if new > 6 and not findings.infection_or_inflammation:
        notes.append(
            f"{new} new nodules: multiple (> 6) new nodules may suggest an inflammatory or infectious"
            " process (Category 0, reader's judgement)"
        )
    if s_modifier:
        notes.append("S: " + ("; ".join(s_findings) if s_findings else "actionable additional findings"))
    screen = "negative" if category in ("1", "2") else "positive" if category in ("3", "4A", "4B", "4X") else "neither"
    return LungRadsAssessment(
        exam_date=case.exam_date,
        screening_round=case.screening_round,
        category=category,
        s_modifier=s_modifier,
        s_findings=s_findings,
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


def explain(a: LungRadsAssessment) -> str:
    """The reasoning in plain text, nodule by nodule."""
    lines = [
        f"{PROTOCOL_NAME} {PROTOCOL_VERSION} - exam of {a.exam_date} ({a.screening_round} round):"
        f" Category {a.label} - {a.descriptor}",
        f"  because: {a.rule}",
        f"  management: {a.management}" + (f" (due {a.due_date})" if a.due_date else ""),
    ]
    lines += [f"  note: {note}" for note in a.notes]
    for r in a.nodules:
        lines.append(f"Nodule {r.id}: {'Category ' + r.category if r.category else 'not classified'}, {r.status}")
        lines += [f"  - {reason}" for reason in r.reasons]
        lines.append(f"  => {r.rule}")
    return "\n".join(lines) + "\n"
