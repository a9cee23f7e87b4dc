"""nlcsp: the corrections of issue 15, each against the protocol's own words.

(The vignettes are the independent tester's cases that disagreed, and the smaller findings of that run.)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from nlcsp.cases import CaseError, parse_case
from nlcsp.categorize import assess, explain
from nlcsp.types import Assessment

TODAY = dt.date(2026, 12, 2)


def case(
    screening_round: str,
    *nodules: dict[str, Any],
    exam: str = "2026-06-01",
    schema: str | None = "noduled.case/2",
    **extra: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "exam_date": exam,
        "screening_round": screening_round,
        "participant": {"age_years": 62, "sex": "M"},
        "nodules": list(nodules),
        **extra,
    }
    if schema is not None:
        obj["schema"] = schema
    return obj


def run(obj: dict[str, Any], **kw: Any) -> Assessment:
    return assess(parse_case(obj, today=TODAY, **kw))


# ------------------------------------------------------------------ mean-diameter slow growth (note 6)


@pytest.mark.parametrize("now_mm", [6.8, 9.0])
def test_mean_diameter_increase_over_more_than_24_months_in_one_interval_is_slow_growth(now_mm):
    # Note 6, mean-diameter column: Slowly growing "Increase of more than 1.5mm, over more than 24 months";
    # Stable "Change of between -1.5mm and +1.5mm" -- +1.8 mm (or +4.0 mm) cannot be stable, whatever the intervals.
    a = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "solid",
                "mean_diameter_mm": now_mm,
                "priors": [{"date": "2023-12-01", "mean_diameter_mm": 5.0, "category": "1"}],
            },
        )
    )
    n = a.nodules[0]
    assert n.status == "slowly-growing"
    # Follow-up table, Category 5: "Slowly growing solid or part solid nodule"; note 16: "For new, growing, or
    # slow-growing nodules, manage according to the protocol"
    assert n.category == "5" and "Slowly growing solid or part solid nodule" in n.rule
    assert a.category == "5"


def test_mean_diameter_plus_1_5_mm_over_30_months_is_stable():
    # "Increase of more than 1.5mm": exactly +1.5 mm is "between -1.5mm and +1.5mm"
    a = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "solid",
                "mean_diameter_mm": 6.5,
                "priors": [{"date": "2023-12-01", "mean_diameter_mm": 5.0, "category": "1"}],
            },
        )
    )
    assert a.nodules[0].status == "stable" and a.nodules[0].category == "1"


def test_volumetry_keeps_its_scan_interval_condition():
    # Note 6, volumetry column: Slowly growing "... VDT >600 days, on more than one scan interval"; Stable "...
    # increase from baseline greater than 25% and VDT>600 days but not slow growth"
    a = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "solid",
                "volume_mm3": 140,
                "priors": [{"date": "2023-12-01", "volume_mm3": 100, "category": "1"}],
            },
        )
    )
    assert a.nodules[0].status == "stable"


# ------------------------------------------------------------------ input checks


def test_strict_rejects_a_case_without_schema():
    obj = case("baseline", schema=None)
    with pytest.raises(CaseError, match=r"^schema: is required with --strict"):
        parse_case(obj, strict=True, today=TODAY)
    assert run(obj).category == "1"  # without --strict it is accepted


def test_old_schema_1_is_still_accepted_and_new_prior_fields_belong_to_2():
    old = case(
        "follow-up",
        {
            "id": "1",
            "composition": "solid",
            "volume_mm3": 100,
            "priors": [{"date": "2025-06-01", "volume_mm3": 100, "category": "2"}],
        },
        schema="noduled.case/1",
    )
    assert run(old, strict=True).category == "2"
    old["nodules"][0]["priors"][0]["composition"] = "solid"
    parsed = parse_case(old, today=TODAY)
    assert any("priors[0].composition: unknown field" in w for w in parsed.warnings)
    with pytest.raises(CaseError, match=r"nodules\[0\]\.priors\[0\]\.composition: unknown field"):
        parse_case(old, strict=True, today=TODAY)


def test_exam_date_after_today_is_refused():
    with pytest.raises(CaseError) as info:
        parse_case(case("baseline", exam="2099-01-01"), today=TODAY)
    assert str(info.value) == "exam_date 2099-01-01 is after today (2026-12-02)"
    assert info.value.path == "exam_date"
    assert parse_case(case("baseline", exam="2026-12-02"), today=TODAY).exam_date == TODAY  # today is fine
    # one day of grace (the scanner's time zone may be ahead of the node's), not two
    assert parse_case(case("baseline", exam="2026-12-03"), today=TODAY).exam_date == dt.date(2026, 12, 3)
    with pytest.raises(CaseError, match="exam_date 2026-12-04 is after today"):
        parse_case(case("baseline", exam="2026-12-04"), today=TODAY)


@pytest.mark.parametrize("where", ["nodule", "prior"])
def test_a_solid_component_larger_than_the_nodule_is_refused(where):
    nodule: dict[str, Any] = {
        "id": "1",
        "composition": "part-solid",
        "volume_mm3": 120,
        "solid_component_volume_mm3": 40,
        "priors": [{"date": "2025-06-01", "volume_mm3": 120, "solid_component_volume_mm3": 30}],
    }
    target = nodule if where == "nodule" else nodule["priors"][0]
    target["solid_component_volume_mm3"] = 140
    path = "nodules[0]" if where == "nodule" else "nodules[0].priors[0]"
    with pytest.raises(CaseError) as info:
        parse_case(case("follow-up", nodule), today=TODAY)
    assert str(info.value).startswith(f"{path}.solid_component_volume_mm3 (140) exceeds volume_mm3 (120)")


def test_a_solid_component_diameter_larger_than_the_mean_diameter_is_refused():
    with pytest.raises(
        CaseError,
        match=r"nodules\[0\]\.solid_component_mean_diameter_mm \(9\) exceeds"
        r" mean_diameter_mm \(7\)",
    ):
        parse_case(
            case(
                "baseline",
                {"id": "1", "composition": "part-solid", "mean_diameter_mm": 7, "solid_component_mean_diameter_mm": 9},
            ),
            today=TODAY,
        )


# ------------------------------------------------------------------ explanations


def test_cyst_with_growing_wall_explanation_does_not_say_stable():
    # Follow-up table, Category 5: "Thick-walled cyst with growing wall thickness/nodularity"; note 11f: growth is
    # "An increase > 1.5 mm in nodule size (mean diameter), wall thickness, and/or size of the cystic component"
    a = run(
        case(
            "follow-up",
            {
                "id": "1",
                "cyst": "thick-walled",
                "cyst_change": "growing-wall",
                "mean_diameter_mm": 15.2,
                "priors": [{"date": "2025-06-01", "mean_diameter_mm": 15.0, "category": "4"}],
            },
        )
    )
    n = a.nodules[0]
    assert n.category == "5" and n.status == "growing"
    text = explain(a)
    assert "between -1.5 mm and +1.5 mm" not in text and "stable or decreased since" not in text
    assert "wall thickness" in text and n.stable_since is None


def test_note16_is_offered_only_when_the_scan_was_delayed():
    # Note 16: "participants ... may delay or miss scan appointments and return for follow-up scans after durations
    # longer than those specified by the protocol"
    on_time = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "solid",
                "volume_mm3": 300,
                "priors": [{"date": "2026-03-01", "volume_mm3": 300, "category": "4"}],
            },
        )
    )
    n = on_time.nodules[0]
    assert n.category == "3" and "Note 16" not in n.rule and not any("Note 16" in r for r in n.reasons)
    late = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "solid",
                "volume_mm3": 300,
                "priors": [{"date": "2025-06-01", "volume_mm3": 300, "category": "4"}],
            },
        )
    )
    assert late.nodules[0].category == "2" and "Note 16" in late.nodules[0].rule  # 12 months, not 3


# ------------------------------------------------------------------ priors with a solid component (noduled.case/2)


def test_part_solid_growth_is_the_growth_of_the_solid_component():
    # Follow-up table, Category 5: "Part solid nodule: New or growing >= 34 mm3 (>= 4 mm) solid component" -- the
    # whole nodule is unchanged (+2.5 %), its solid component 20 -> 60 mm3 in 12 months
    a = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "part-solid",
                "volume_mm3": 410,
                "solid_component_volume_mm3": 60,
                "priors": [
                    {
                        "date": "2025-06-01",
                        "volume_mm3": 400,
                        "solid_component_volume_mm3": 20,
                        "composition": "part-solid",
                        "category": "3",
                    }
                ],
            },
        )
    )
    n = a.nodules[0]
    assert n.status == "growing" and n.category == "5" and ">= 34 mm3 (>= 4 mm) solid component" in n.rule


def test_a_solid_component_new_since_a_non_solid_prior_is_a_new_solid_component():
    # Follow-up table, Category 4: "Part solid nodule: New or growing < 34 mm3 (< 4 mm) solid component"
    a = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "part-solid",
                "volume_mm3": 400,
                "solid_component_volume_mm3": 20,
                "priors": [{"date": "2025-06-01", "volume_mm3": 400, "composition": "non-solid", "category": "2"}],
            },
        )
    )
    n = a.nodules[0]
    assert n.status == "growing" and n.category == "4" and "< 34 mm3 (< 4 mm) solid component" in n.rule


def test_stable_solid_component_steps_down():
    # Follow-up table, Category 2: "Previous Category 3 lesion that is stable or decreased in size at 6-month
    # follow-up LDCT" -- the solid component 20 -> 21 mm3
    a = run(
        case(
            "follow-up",
            {
                "id": "1",
                "composition": "part-solid",
                "volume_mm3": 100,
                "solid_component_volume_mm3": 21,
                "priors": [
                    {"date": "2025-12-01", "volume_mm3": 100, "solid_component_volume_mm3": 20, "category": "3"}
                ],
            },
        )
    )
    assert a.nodules[0].status == "stable" and a.nodules[0].category == "2"
