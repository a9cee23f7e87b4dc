"""The boundary values of both protocols: exactly 1.5 mm, 6.0 / 8.0 / 15.0 mm, 34 / 113 / 268 / 1,767 / 14,137 mm3.

NLCSP (follow-up table, new nodules): "New < 34 mm3 (< 4 mm)" -> 1, "New 34 to < 113 mm3" -> 3, "New 113 to
< 268 mm3 (6 to < 8 mm)" -> 4, "New or growing >= 268 mm3 (>= 8 mm)" -> 5; ground glass "< 14,137 mm3 (< 30 mm):
New" -> 2, ">= 14,137 mm3 (>= 30 mm) new" -> 3; 1,767 mm3 / 15 mm is no NLCSP threshold (both sides 5).
Lung-RADS v2022 (baseline solid): < 6 mm -> 2, 6 to < 8 -> 3, 8 to < 15 -> 4A, >= 15 mm (>= 1,767 mm3) -> 4B.
Growth: "more than 1.5 mm" in both (NLCSP note 6 / 11f, Lung-RADS "exactly 1.5 mm is not growth").
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import lungrads.categorize
import nlcsp.categorize
from nlcsp.cases import parse_case

TODAY = dt.date(2026, 12, 2)


def case(rnd: str, nodule: dict[str, Any]) -> Any:
    return parse_case(
        {
            "schema": "noduled.case/2",
            "exam_date": "2026-06-01",
            "screening_round": rnd,
            "participant": {"age_years": 62, "sex": "M"},
            "nodules": [{"id": "1", **nodule}],
        },
        today=TODAY,
    )


def nlcsp_cat(rnd: str, **nodule: Any) -> str:
    return nlcsp.categorize.assess(case(rnd, nodule)).category


def lr_cat(rnd: str, **nodule: Any) -> str:
    return lungrads.categorize.assess(case(rnd, nodule)).category


@pytest.mark.parametrize(
    "volume, category", [(33, "1"), (34, "3"), (112, "3"), (113, "4"), (267, "4"), (268, "5"), (1766, "5"), (1767, "5")]
)
def test_nlcsp_new_solid_volume(volume, category):
    assert nlcsp_cat("follow-up", composition="solid", volume_mm3=volume) == category


@pytest.mark.parametrize(
    "d, category", [(3.9, "1"), (4.0, "3"), (5.9, "3"), (6.0, "4"), (7.9, "4"), (8.0, "5"), (14.9, "5"), (15.0, "5")]
)
def test_nlcsp_new_solid_diameter(d, category):
    assert nlcsp_cat("follow-up", composition="solid", mean_diameter_mm=d) == category


@pytest.mark.parametrize("volume, category", [(14136, "2"), (14137, "3")])
def test_nlcsp_new_ground_glass(volume, category):
    assert nlcsp_cat("follow-up", composition="non-solid", volume_mm3=volume) == category


@pytest.mark.parametrize(
    "volume, category", [(112, "2"), (113, "3"), (267, "3"), (268, "4A"), (1766, "4A"), (1767, "4B")]
)
def test_lung_rads_baseline_solid_volume(volume, category):
    assert lr_cat("baseline", composition="solid", volume_mm3=volume) == category


@pytest.mark.parametrize("d, category", [(5.9, "2"), (6.0, "3"), (7.9, "3"), (8.0, "4A"), (14.9, "4A"), (15.0, "4B")])
def test_lung_rads_baseline_solid_diameter(d, category):
    assert lr_cat("baseline", composition="solid", mean_diameter_mm=d) == category


@pytest.mark.parametrize("volume, category", [(33, "2"), (34, "3"), (14136, "4B")])
def test_lung_rads_new_solid_volume(volume, category):
    assert lr_cat("follow-up", composition="solid", volume_mm3=volume) == category


@pytest.mark.parametrize("volume, category", [(14136, "2"), (14137, "3")])
def test_lung_rads_ground_glass(volume, category):
    assert lr_cat("baseline", composition="non-solid", volume_mm3=volume) == category


@pytest.mark.parametrize("now, nlcsp_status, lr_category", [(7.3, "stable", "2"), (7.4, "growing", "4A")])
def test_exactly_1_5_mm_is_not_growth_in_either_protocol(now, nlcsp_status, lr_category):
    # 5.8 -> 7.3 mm is +1.5 mm (float: 1.4999999999999996 -- nlcsp.common.EPS); 5.8 -> 7.4 is +1.6 mm
    nodule = {
        "composition": "solid",
        "mean_diameter_mm": now,
        "priors": [{"date": "2025-06-01", "mean_diameter_mm": 5.8, "category": "2", "lung_rads_category": "2"}],
    }
    n = nlcsp.categorize.assess(case("follow-up", nodule)).nodules[0]
    assert n.status == nlcsp_status
    assert lungrads.categorize.assess(case("follow-up", nodule)).category == lr_category


def test_both_engines_use_the_one_shared_growth_arithmetic():
    # a fix of nlcsp.common reaches both: the same tolerance object, the same VDT function
    import lungrads.growth
    import nlcsp.common
    import nlcsp.growth

    assert nlcsp.growth.volume_doubling_time_days is nlcsp.common.volume_doubling_time_days
    assert lungrads.growth.more_than is nlcsp.common.more_than
    assert lungrads.categorize.Size is nlcsp.categorize.Size is nlcsp.common.Size
    assert lungrads.categorize.doubled_within_a_year is nlcsp.categorize.doubled_within_a_year


# ------------------------------------------------------------------ properties shared by both engines
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NLCSP_RANK = {c: i for i, c in enumerate("0123456")}
_LR_RANK = {c: i for i, c in enumerate(("0", "1", "2", "3", "4A", "4B", "4X"))}


def _nodules(specs: list[tuple[float, str, bool]]) -> list[dict[str, Any]]:
    out = []
    for i, (d, composition, grown) in enumerate(specs):
        n: dict[str, Any] = {
            "id": str(i),
            "composition": composition,
            "mean_diameter_mm": d,
            "max_axial_diameter_mm": d,
        }
        if composition == "part-solid":
            n["solid_component_mean_diameter_mm"] = round(d / 2, 1)
        if grown:
            n["priors"] = [
                {
                    "date": "2025-06-01",
                    "mean_diameter_mm": max(1.0, d - 2.0),
                    "category": "2",
                    "lung_rads_category": "2",
                }
            ]
        out.append(n)
    return out


SPECS = st.lists(
    st.tuples(st.floats(1, 40), st.sampled_from(["solid", "part-solid", "non-solid"]), st.booleans()),
    min_size=1,
    max_size=5,
)


@settings(max_examples=80, deadline=None)
@given(SPECS)
def test_exam_category_is_the_highest_nodule_category_in_both_protocols(specs):
    obj = {
        "schema": "noduled.case/2",
        "exam_date": "2026-06-01",
        "screening_round": "follow-up",
        "participant": {"age_years": 62, "sex": "M"},
        "nodules": _nodules(specs),
    }
    case_ = parse_case(obj, today=TODAY)
    a = nlcsp.categorize.assess(case_)
    assert a.category == max((n.category for n in a.nodules if n.category), key=_NLCSP_RANK.__getitem__)
    b = lungrads.categorize.assess(case_)
    assert b.category == max((n.category for n in b.nodules if n.category), key=_LR_RANK.__getitem__)


@settings(max_examples=80, deadline=None)
@given(st.floats(1, 60), st.floats(1, 60), st.sampled_from(["baseline", "follow-up"]))
def test_a_larger_solid_nodule_never_gets_a_lower_lung_rads_or_nlcsp_new_category(d1, d2, rnd):
    small, large = sorted((d1, d2))
    lr = lambda d: _LR_RANK[lr_cat(rnd, composition="solid", mean_diameter_mm=d)]  # noqa: E731
    assert lr(small) <= lr(large)
    nl = lambda d: _NLCSP_RANK[nlcsp_cat("follow-up", composition="solid", mean_diameter_mm=d)]  # noqa: E731
    assert nl(small) <= nl(large)
