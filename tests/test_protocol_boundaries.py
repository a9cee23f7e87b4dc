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
    return parse_case({"schema": "noduled.case/2", "exam_date": "2026-06-01", "screening_round": rnd,
                       "participant": {"age_years": 62, "sex": "M"}, "nodules": [{"id": "1", **nodule}]}, today=TODAY)


def nlcsp_cat(rnd: str, **nodule: Any) -> str:
    return nlcsp.categorize.assess(case(rnd, nodule)).category


def lr_cat(rnd: str, **nodule: Any) -> str:
    return lungrads.categorize.assess(case(rnd, nodule)).category


@pytest.mark.parametrize("volume, category", [(33, "1"), (34, "3"), (112, "3"), (113, "4"), (267, "4"), (268, "5"),
                                              (1766, "5"), (1767, "5")])
def test_nlcsp_new_solid_volume(volume, category):
    assert nlcsp_cat("follow-up", composition="solid", volume_mm3=volume) == category


@pytest.mark.parametrize("d, category", [(3.9, "1"), (4.0, "3"), (5.9, "3"), (6.0, "4"), (7.9, "4"), (8.0, "5"),
                                         (14.9, "5"), (15.0, "5")])
def test_nlcsp_new_solid_diameter(d, category):
    assert nlcsp_cat("follow-up", composition="solid", mean_diameter_mm=d) == category


@pytest.mark.parametrize("volume, category", [(14136, "2"), (14137, "3")])
def test_nlcsp_new_ground_glass(volume, category):
    assert nlcsp_cat("follow-up", composition="non-solid", volume_mm3=volume) == category


@pytest.mark.parametrize("volume, category", [(112, "2"), (113, "3"), (267, "3"), (268, "4A"), (1766, "4A"),
                                              (1767, "4B")])
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
    nodule = {"composition": "solid", "mean_diameter_mm": now,
              "priors": [{"date": "2025-06-01", "mean_diameter_mm": 5.8, "category": "2", "lung_rads_category": "2"}]}
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
