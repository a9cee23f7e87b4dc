"""lungrads.categorize: every row of the Lung-RADS v2022 category table, 4X, S, Category 0, the exam.

Each case is the case JSON a reader would send (``noduled.case/2``) and cites the row of the
reference summary (``shared/reference/lung-rads-v2022.md``) it exercises; the expected category
is read off that summary, not off the code.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lungrads.cases import assessment_to_json
from lungrads.categorize import CATEGORY_TABLE, assess, explain
from lungrads.types import RANK, LungRadsAssessment
from nlcsp.cases import CaseError, parse_case

EXAM = "2026-06-01"
TODAY = dt.date(2026, 12, 2)
M3, M6, M12, M24 = "2026-03-01", "2025-12-01", "2025-06-01", "2024-06-01"


def run(
    screening_round: str, *nodules: dict[str, Any], findings: dict[str, Any] | None = None, exam: str = EXAM
) -> LungRadsAssessment:
    obj = {
        "schema": "noduled.case/2",
        "exam_date": exam,
        "screening_round": screening_round,
        "participant": {"age_years": 62, "sex": "M"},
        "exam_findings": findings or {},
        "nodules": list(nodules),
    }
    return assess(parse_case(obj, today=TODAY))


def nod(d: float | None = None, **fields: Any) -> dict[str, Any]:
    n: dict[str, Any] = {"id": "1", "composition": "solid"}
    if d is not None:
        n["mean_diameter_mm"] = d
    n.update(fields)
    return n


def ps(total: float, solid: float, **fields: Any) -> dict[str, Any]:
    return nod(total, composition="part-solid", solid_component_mean_diameter_mm=solid, **fields)


def ggn(d: float, **fields: Any) -> dict[str, Any]:
    return nod(d, composition="non-solid", **fields)


def cyst(kind: str, d: float = 15.0, **fields: Any) -> dict[str, Any]:
    return {"id": "1", "cyst": kind, "mean_diameter_mm": d, **fields}


def prior(date: str, d: float | None = None, category: str | None = None, **fields: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"date": date, "mean_diameter_mm": d, "lung_rads_category": category}
    p.update(fields)
    return p


ROWS = [
    # (row cited, round, nodule, expected category, words of the row)
    # Category 1
    ("1: benign features (calcification)", "baseline", nod(20, benign_calcification=True), "1", "benign features"),
    ("1: benign features (fat)", "follow-up", nod(12, fat=True), "1", "benign features"),
    ("1: Category 1 lesion stable", "follow-up", nod(5, priors=[prior(M12, 5, "1")]), "1", "Category 1 lesion stable"),
    # Category 2
    (
        "2: 4B proven benign",
        "follow-up",
        nod(20, proven_benign=True, priors=[prior(M3, 20, "4B")]),
        "2",
        "proven benign",
    ),
    ("2: juxtapleural < 10 mm at baseline", "baseline", nod(9.9, juxtapleural_typical=True), "2", "Juxtapleural"),
    ("2: juxtapleural new", "follow-up", nod(9.0, juxtapleural_typical=True), "2", "Juxtapleural"),
    ("2: solid < 6 mm at baseline", "baseline", nod(5.9), "2", "Solid nodule: < 6 mm (< 113 mm3) at baseline"),
    ("2: solid new < 4 mm", "follow-up", nod(3.9), "2", "Solid nodule: new < 4 mm"),
    ("2: part-solid < 6 mm total at baseline", "baseline", ps(5.9, 2.0), "2", "Part-solid nodule: < 6 mm total"),
    ("2: GGN < 30 mm at baseline", "baseline", ggn(29.9), "2", "< 30 mm (< 14,137 mm3) at baseline, new or growing"),
    ("2: GGN < 30 mm growing", "follow-up", ggn(17, priors=[prior(M12, 15, "2")]), "2", "< 30 mm"),  # not doubled
    (
        "2: GGN >= 30 mm stable",
        "follow-up",
        ggn(35, priors=[prior(M6, 35, "3")]),
        "2",
        ">= 30 mm (>= 14,137 mm3) stable",
    ),
    ("2: airway subsegmental", "baseline", nod(airway="subsegmental", composition=None), "2", "subsegmental"),
    (
        "2: Category 3 stable at 6 months",
        "follow-up",
        nod(7, priors=[prior(M6, 7, "3")]),
        "2",
        "Category 3 lesion stable",
    ),
    ("2: Category 2 stable", "follow-up", nod(5, priors=[prior(M12, 5, "2")]), "2", "Category 2 lesion stable"),
    # Category 3
    ("3: solid 6 to < 8 mm at baseline", "baseline", nod(6.0), "3", ">= 6 to < 8 mm"),
    ("3: solid new 4 to < 6 mm", "follow-up", nod(4.0), "3", "new 4 to < 6 mm"),
    ("3: part-solid >= 6 mm total, solid < 6 mm at baseline", "baseline", ps(8, 5.9), "3", "solid component < 6 mm"),
    ("3: part-solid new < 6 mm total", "follow-up", ps(5.9, 2.0), "3", "new < 6 mm total"),
    ("3: GGN >= 30 mm at baseline", "baseline", ggn(30.0), "3", ">= 30 mm (>= 14,137 mm3) at baseline or new"),
    (
        "3: growing cystic component of a thick-walled cyst",
        "follow-up",
        cyst("thick-walled", 17, cyst_change="growing-cystic-component", priors=[prior(M12, 15, "4A")]),
        "3",
        "growing cystic component",
    ),
    (
        "3: Category 4A stable at 3 months",
        "follow-up",
        nod(9, priors=[prior(M3, 9, "4A")]),
        "3",
        "Category 4A lesion stable",
    ),
    # Category 4A
    ("4A: solid 8 to < 15 mm at baseline", "baseline", nod(8.0), "4A", ">= 8 to < 15 mm"),
    ("4A: solid growing < 8 mm", "follow-up", nod(6.6, priors=[prior(M12, 5.0, "2")]), "4A", "growing < 8 mm"),
    ("4A: solid new 6 to < 8 mm", "follow-up", nod(6.0), "4A", "new 6 to < 8 mm"),
    ("4A: part-solid solid 6 to < 8 mm at baseline", "baseline", ps(10, 6.0), "4A", "solid component >= 6 to < 8 mm"),
    ("4A: part-solid new solid < 4 mm", "follow-up", ps(8, 3.9), "4A", "new or growing solid component < 4 mm"),
    (
        "4A: airway segmental at baseline",
        "baseline",
        nod(airway="segmental-or-proximal"),
        "4A",
        "segmental or more proximal: at baseline or new",
    ),
    ("4A: thick-walled cyst at baseline", "baseline", cyst("thick-walled"), "4A", "thick-walled cyst, or multilocular"),
    ("4A: multilocular cyst at baseline", "baseline", cyst("multilocular"), "4A", "thick-walled cyst, or multilocular"),
    (
        "4A: cyst becomes multilocular",
        "follow-up",
        cyst("multilocular", cyst_change="newly-multilocular", priors=[prior(M12, 15, "2")]),
        "4A",
        "becomes multilocular",
    ),
    # Category 4B
    ("4B: solid >= 15 mm at baseline", "baseline", nod(15.0), "4B", ">= 15 mm"),
    ("4B: solid new >= 8 mm", "follow-up", nod(8.0), "4B", "new or growing >= 8 mm"),
    ("4B: solid growing >= 8 mm", "follow-up", nod(9.0, priors=[prior(M12, 7.0, "3")]), "4B", "new or growing >= 8 mm"),
    ("4B: part-solid solid >= 8 mm at baseline", "baseline", ps(12, 8.0), "4B", "solid component >= 8 mm"),
    ("4B: part-solid new solid >= 4 mm", "follow-up", ps(8, 4.0), "4B", "new or growing solid component >= 4 mm"),
    (
        "4B: airway segmental at 3 months",
        "follow-up",
        nod(airway="segmental-or-proximal", priors=[prior(M3, 6, "4A")]),
        "4B",
        "stable or growing at 3-month",
    ),
    (
        "4B: thick-walled cyst, growing wall",
        "follow-up",
        cyst("thick-walled", cyst_change="growing-wall", priors=[prior(M12, 15, "4A")]),
        "4B",
        "growing wall thickness",
    ),
    (
        "4B: growing multilocular cyst",
        "follow-up",
        cyst("multilocular", 18, cyst_change="growing-multilocular", priors=[prior(M12, 15, "3")]),
        "4B",
        "growing multilocular cyst",
    ),
    (
        "4B: multilocular, increased loculation",
        "follow-up",
        cyst("multilocular", cyst_change="increased-loculation-or-opacity", priors=[prior(M12, 15, "3")]),
        "4B",
        "increased loculation",
    ),
    (
        "4B: slow growth over multiple exams",
        "follow-up",
        nod(6.6, priors=[prior(M24, 5.0, "2"), prior(M12, 5.8, "2")]),
        "4B",
        "Slow-growing solid or part-solid",
    ),
    (
        "4B: 4B lesion stable, not proven benign",
        "follow-up",
        nod(16, priors=[prior(M3, 16, "4B")]),
        "4B",
        "Category 4B or 4X lesion stable",
    ),
]


@pytest.mark.parametrize("row, rnd, nodule, category, words", ROWS, ids=[r[0] for r in ROWS])
def test_category_table_rows(row, rnd, nodule, category, words):
    a = run(rnd, nodule)
    n = a.nodules[0]
    assert n.category == category, explain(a)
    assert words in n.rule
    assert a.category == category  # the only finding decides


def test_every_row_of_the_table_has_a_case():
    rules = [run(rnd, nodule).nodules[0].rule for _, rnd, nodule, _, _ in ROWS]
    for row in CATEGORY_TABLE:
        assert row.rule in rules, f"no test case for: {row.rule}"


# ------------------------------------------------------------------ the pitfalls of the summary (half-open intervals)


@pytest.mark.parametrize("d, category", [(5.9, "2"), (6.0, "3"), (7.9, "3"), (8.0, "4A"), (14.9, "4A"), (15.0, "4B")])
def test_baseline_solid_boundaries(d, category):
    assert run("baseline", nod(d)).category == category


@pytest.mark.parametrize("d, category", [(3.9, "2"), (4.0, "3"), (5.9, "3"), (6.0, "4A"), (7.9, "4A"), (8.0, "4B")])
def test_new_solid_boundaries(d, category):
    assert run("follow-up", nod(d)).category == category


@pytest.mark.parametrize("v, category", [(112, "2"), (113, "3"), (267, "3"), (268, "4A"), (1766, "4A"), (1767, "4B")])
def test_baseline_solid_volume_boundaries(v, category):
    # volumes in brackets are the sphere-equivalent thresholds (used when no mean diameter is given)
    assert run("baseline", {"id": "1", "composition": "solid", "volume_mm3": v}).category == category


@pytest.mark.parametrize("v, category", [(33, "2"), (34, "3"), (112, "3"), (113, "4A"), (267, "4A"), (268, "4B")])
def test_new_solid_volume_boundaries(v, category):
    assert run("follow-up", {"id": "1", "composition": "solid", "volume_mm3": v}).category == category


@pytest.mark.parametrize("v, category", [(14136, "2"), (14137, "3")])
def test_ggn_volume_boundary(v, category):
    assert run("baseline", {"id": "1", "composition": "non-solid", "volume_mm3": v}).category == category


def test_mean_diameter_is_rounded_to_0_1_mm_before_the_thresholds():
    # "Round the mean diameter to 0.1 mm before comparing with thresholds": 5.96 mm is 6.0 mm
    assert run("baseline", nod(5.96)).category == "3"
    assert run("baseline", nod(5.94)).category == "2"


@pytest.mark.parametrize("now, status, category", [(6.5, "stable", "2"), (6.6, "growing", "4A")])
def test_growth_is_more_than_1_5_mm_within_12_months(now, status, category):
    # "exactly 1.5 mm is not growth"
    a = run("follow-up", nod(now, priors=[prior(M12, 5.0, "2")]))
    assert (a.nodules[0].status, a.category) == (status, category)


def test_a_longer_interval_is_judged_by_the_slow_growth_rule():
    # "Growth compares with the exam at most 12 months earlier; longer intervals are judged by the slow-growth rule"
    a = run("follow-up", nod(7.0, priors=[prior(M24, 5.0, "2")]))
    assert a.nodules[0].status == "slowly-growing" and a.category == "4B"


def test_slowly_growing_ggn_stays_2():
    a = run("follow-up", ggn(12, priors=[prior(M24, 10, "2"), prior(M12, 11, "2")]))
    assert a.nodules[0].status == "slowly-growing" and a.category == "2"


def test_part_solid_growth_is_judged_on_the_solid_component():
    # total unchanged, solid component 3 -> 5 mm within 12 months: growing solid component >= 4 mm -> 4B
    a = run(
        "follow-up",
        ps(10, 5, priors=[prior(M12, 10, "3", composition="part-solid", solid_component_mean_diameter_mm=3.0)]),
    )
    assert a.nodules[0].status == "growing" and a.category == "4B"
    # a GGN that developed a solid component: "new ... solid component"
    b = run("follow-up", ps(10, 3, priors=[prior(M12, 10, "2", composition="non-solid")]))
    assert b.nodules[0].status == "growing" and b.category == "4A"


# ------------------------------------------------------------------ stepped management


def test_stepped_management_4a_then_3_then_2():
    history: list[dict[str, Any]] = []
    seen = []
    for exam, rnd in (
        ("2025-01-10", "baseline"),
        ("2025-04-10", "follow-up"),
        ("2025-10-10", "follow-up"),
        ("2026-10-10", "follow-up"),
    ):
        a = run(rnd, nod(10, priors=list(history)), exam=exam)
        seen.append((a.category, a.follow_up_months))
        history.append(prior(exam, 10, a.category))
    assert seen == [("4A", 3), ("3", 6), ("2", 12), ("2", 12)]


def test_airway_nodule_is_excluded_from_the_4a_step_down():
    # "4A stable or decreased at 3 months -> 3 (except airway nodules ... stable or growing at 3 months -> 4B)"
    a = run("follow-up", nod(airway="segmental-or-proximal", priors=[prior(M3, 6, "4A")]))
    assert a.category == "4B"


def test_previous_category_is_derived_when_priors_carry_none():
    a = run("follow-up", nod(10, priors=[prior(M3, 10)]))
    n = a.nodules[0]
    assert n.previous_category == "4A" and n.previous_category_derived and n.category == "3"


def test_nlcsp_categories_on_priors_are_not_lung_rads_categories():
    a = run("follow-up", nod(10, priors=[{"date": M3, "mean_diameter_mm": 10, "category": "4"}]))
    assert a.nodules[0].previous_category == "4A" and a.nodules[0].previous_category_derived


# ------------------------------------------------------------------ 4X, S, Category 0, the exam


def test_4x_for_a_category_3_or_4_nodule_with_additional_features():
    assert run("baseline", nod(9, additional_suspicious_features=True)).category == "4X"
    assert run("baseline", nod(7, spiculated=True)).category == "4X"
    assert run("baseline", nod(5, spiculated=True)).category == "2"  # a Category 2 nodule is not 4X
    a = run("baseline", nod(9), findings={"suspicious_features": True})
    assert a.category == "4X" and "suspicious_features" in a.rule
    b = run("baseline", nod(5), findings={"suspicious_features": True})
    assert b.category == "2" and any("4X applies to a Category 3 or 4" in note for note in b.notes)


def test_4x_ggn_doubling_in_one_year():
    a = run("follow-up", ggn(13, priors=[prior(M12, 10, "2")]))  # (13/10)^3 = 2.2
    assert a.category == "4X" and "doubles in size in one year" in a.rule


def test_4x_stable_stays_4x():
    assert run("follow-up", nod(16, priors=[prior(M3, 16, "4X")])).category == "4X"


def test_s_modifier_is_a_flag_with_its_findings():
    a = run("baseline", nod(5), findings={"significant_findings": ["coronary artery calcification, severe"]})
    assert a.category == "2" and a.s_modifier and a.label == "2S"
    assert a.s_findings == ("coronary artery calcification, severe",)
    assert "S: significant" in a.management
    out = assessment_to_json(a)
    assert out["label"] == "2S" and out["s_findings"] == ["coronary artery calcification, severe"]
    assert out["protocol"] == "lung-rads-2022" and out["protocol_version"] == "v2022"
    b = run("baseline", nod(5), findings={"actionable_additional_findings": True})
    assert b.s_modifier and b.category == "2"


@pytest.mark.parametrize(
    "flag, words",
    [
        ("infection_or_inflammation", "inflammatory or infectious"),
        ("prior_ct_being_located", "being located"),
        ("lungs_not_evaluable", "cannot be evaluated"),
    ],
)
def test_category_0(flag, words):
    a = run("baseline", nod(7), findings={flag: True})
    assert a.category == "0" and words in a.rule and a.due_date is None
    assert a.nodules[0].category == "3"  # the nodule keeps its own category


def test_category_0_infection_interval_and_4b_nodule():
    a = run("baseline", nod(7), findings={"infection_or_inflammation": True, "infection_follow_up_months": 2})
    assert (a.category, a.follow_up_months, a.due_date) == ("0", 2, dt.date(2026, 8, 1))
    b = run("baseline", nod(16), findings={"infection_or_inflammation": True})
    assert b.category == "4B"  # INTERPRETATION N0


def test_no_nodules_and_thin_walled_cyst_are_category_1():
    a = run("baseline")
    assert (a.category, a.descriptor, a.follow_up_months, a.due_date) == ("1", "Negative", 12, dt.date(2027, 6, 1))
    b = run("baseline", cyst("thin-walled"))
    assert b.category == "1" and b.nodules[0].category is None


@pytest.mark.parametrize(
    "category, months, due, words",
    [
        ("2", 12, dt.date(2027, 6, 1), "12 months"),
        ("3", 6, dt.date(2026, 12, 1), "6-month LDCT"),
        ("4A", 3, dt.date(2026, 9, 1), "3-month LDCT"),
        ("4B", None, None, "Diagnostic chest CT"),
    ],
)
def test_management_and_due_dates(category, months, due, words):
    d = {"2": 5.0, "3": 7.0, "4A": 9.0, "4B": 16.0}[category]
    a = run("baseline", nod(d))
    assert (a.category, a.follow_up_months, a.due_date) == (category, months, due) and words in a.management


def test_pet_ct_mentioned_at_4a_only_for_a_solid_nodule_of_8_mm_or_more():
    assert "PET/CT" in run("baseline", nod(9)).management
    assert "PET/CT" not in run("follow-up", nod(6.5)).management  # new 6 to < 8 mm: 4A, < 8 mm


def test_audit_screen_result():
    assert run("baseline", nod(5)).screen_result == "negative"
    assert run("baseline", nod(7)).screen_result == "positive"


def test_exam_is_the_most_suspicious_nodule():
    a = run("baseline", nod(5, id="a"), nod(9, id="b"), nod(7, id="c"))
    assert a.category == "4A" and a.decisive_nodule_id == "b"


def test_a_lung_rads_category_on_a_prior_is_validated():
    with pytest.raises(CaseError, match=r"nodules\[0\]\.priors\[0\]\.lung_rads_category: must be a Lung-RADS"):
        run("follow-up", nod(5, priors=[prior(M12, 5, "5")]))
    with pytest.raises(CaseError, match=r"exam_findings\.significant_findings: must be an array"):
        run("baseline", findings={"significant_findings": "emphysema"})


def test_part_solid_without_its_solid_component_is_an_error_naming_the_field():
    with pytest.raises(CaseError, match=r"nodules\[0\]\.solid_component_mean_diameter_mm"):
        run("baseline", nod(10, composition="part-solid"))


# ------------------------------------------------------------------ properties

KINDS = st.sampled_from(["solid", "part-solid", "non-solid"])


@settings(max_examples=150, deadline=None)
@given(st.floats(1, 60), st.floats(1, 60), KINDS, st.sampled_from(["baseline", "follow-up"]))
def test_a_larger_nodule_never_gets_a_lower_category(d1, d2, composition, rnd):
    small, large = sorted((d1, d2))

    def cat(d: float) -> int:
        extra = {"solid_component_mean_diameter_mm": d / 2} if composition == "part-solid" else {}
        return RANK[run(rnd, nod(d, composition=composition, **extra)).category]

    assert cat(small) <= cat(large)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 40), KINDS), min_size=1, max_size=6))
def test_exam_category_is_the_highest_nodule_category(specs):
    nodules = [
        nod(d, id=str(i), composition=c, **({"solid_component_mean_diameter_mm": d / 3} if c == "part-solid" else {}))
        for i, (d, c) in enumerate(specs)
    ]
    a = run("baseline", *nodules)
    assert a.category == max((n.category for n in a.nodules if n.category), key=RANK.__getitem__)


def test_the_scan_after_a_category_0_exam_is_recategorised_by_size():
    # "At the short-term follow-up, re-categorise by the most suspicious remaining nodule"
    a = run("follow-up", nod(9, priors=[prior("2026-04-01", 9, "0")]))
    assert a.category == "4A" and a.nodules[0].previous_category is None


def test_a_lung_rads_case_may_give_the_prior_category_as_category():
    from lungrads.cases import parse_case as parse_lung_rads_case

    obj = {
        "schema": "noduled.case/2",
        "exam_date": EXAM,
        "screening_round": "follow-up",
        "nodules": [nod(9, priors=[{"date": M3, "mean_diameter_mm": 9, "category": "4A"}])],
    }
    a = assess(parse_lung_rads_case(obj, today=TODAY))
    assert a.nodules[0].previous_category == "4A" and not a.nodules[0].previous_category_derived
    assert a.category == "3"  # "Category 4A lesion stable or decreased at 3-month follow-up"
    obj["nodules"][0]["priors"][0]["category"] = "4C"
    with pytest.raises(CaseError, match=r"^nodules\[0\]\.priors\[0\]\.category: must be a Lung-RADS category"):
        parse_lung_rads_case(obj, today=TODAY)
