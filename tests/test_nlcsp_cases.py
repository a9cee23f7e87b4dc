"""nlcsp.cases: the case JSON (validation naming the field) and the assessment JSON."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from nlcsp.cases import CaseError, assessment_to_json, parse_case
from nlcsp.categorize import assess

ISSUE_EXAMPLE = {
    "schema": "noduled.case/1",
    "exam_date": "2026-06-01",
    "screening_round": "follow-up",
    "participant": {"age_years": 62, "sex": "F", "family_history_lung_cancer": False, "emphysema": False},
    "exam_findings": {
        "infection_or_inflammation": False,
        "suspicious_features": False,
        "actionable_additional_findings": False,
    },
    "nodules": [
        {
            "id": "1",
            "composition": "solid",
            "volume_mm3": 150.0,
            "mean_diameter_mm": 6.6,
            "max_axial_diameter_mm": 6.8,
            "solid_component_volume_mm3": None,
            "solid_component_mean_diameter_mm": None,
            "upper_lobe": False,
            "spiculated": False,
            "benign_calcification": False,
            "fat": False,
            "juxtapleural_typical": False,
            "airway": None,
            "cyst": None,
            "cyst_change": None,
            "priors": [
                {
                    "date": "2025-12-03",
                    "volume_mm3": 100.0,
                    "mean_diameter_mm": 5.8,
                    "category": "3",
                    "pre_screening": False,
                }
            ],
        }
    ],
}


def test_the_issue_example_parses_and_is_assessed():
    case = parse_case(copy.deepcopy(ISSUE_EXAMPLE))
    assert case.exam_date == dt.date(2026, 6, 1) and case.screening_round == "follow-up"
    n = case.nodules[0]
    assert (n.id, n.composition, n.volume_mm3, n.priors[0].category) == ("1", "solid", 150.0, "3")
    out = assessment_to_json(assess(case))
    # 100 -> 150 mm3 in 180 days: +50 %, VDT 180 ln2/ln1.5 = 307.7 days -> growing solid < 268 mm3 -> Category 4
    assert out["schema"] == "noduled.assessment/1"
    assert out["category"] == "4" and out["descriptor"] == "Moderate risk"
    assert out["follow_up_months"] == 3 and out["due_date"] == "2026-09-01"
    node = out["nodules"][0]
    assert node["status"] == "growing" and node["volume_change_pct"] == 50.0 and node["vdt_days"] == 307.7
    assert node["diameter_change_mm"] == 0.8 and node["comparison_date"] == "2025-12-03"
    assert node["pancan_risk_pct"] is None and "growing < 268" in node["rule"]
    json.dumps(out)  # serialisable


def test_minimal_case_with_defaults():
    case = parse_case({"exam_date": "2026-06-01", "screening_round": "baseline"})
    assert case.nodules == () and case.participant.family_history_lung_cancer is False
    out = assessment_to_json(assess(case))
    assert out["category"] == "1" and out["nodules"] == []


def _with(path: list, value):
    obj = copy.deepcopy(ISSUE_EXAMPLE)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return obj


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["schema"], "noduled.case/3", "schema: must be one of 'noduled.case/1', 'noduled.case/2'"),
        (["exam_date"], KeyError, "exam_date: is required"),
        (["exam_date"], "01/06/2026", "exam_date: must be a date YYYY-MM-DD"),
        (["screening_round"], "annual", "screening_round: must be one of baseline, follow-up"),
        (["participant", "sex"], "female", "participant.sex: must be one of F, M"),
        (["participant", "age_years"], "62", "participant.age_years: must be a number"),
        (["participant", "emphysema"], "no", "participant.emphysema: must be true or false"),
        (["exam_findings", "infection_follow_up_months"], 6, "exam_findings.infection_follow_up_months"),
        (["nodules"], {}, "nodules: must be an array"),
        (["nodules", 0, "composition"], "ground-glass", "nodules[0].composition: must be one of solid"),
        (["nodules", 0, "composition"], KeyError, "nodules[0].composition: is required"),
        (["nodules", 0, "volume_mm3"], 0, "nodules[0].volume_mm3: must be greater than 0"),
        (["nodules", 0, "airway"], "bronchial", "nodules[0].airway: must be one of"),
        (["nodules", 0, "cyst"], "thin", "nodules[0].cyst: must be one of"),
        (
            ["nodules", 0, "cyst_change"],
            "growing-wall",
            "nodules[0].cyst_change: 'growing-wall' applies to a thick-walled",
        ),
        (["nodules", 0, "priors"], "none", "nodules[0].priors: must be an array"),
        (["nodules", 0, "priors", 0, "date"], "2026-06-01", "nodules[0].priors[0].date: must be before the exam date"),
        (["nodules", 0, "priors", 0, "category"], "4A", 'nodules[0].priors[0].category: must be a category "0".."6"'),
        (["nodules", 0, "priors", 0, "pre_screening"], 1, "nodules[0].priors[0].pre_screening: must be true or false"),
    ],
)
def test_validation_names_the_field(path, value, message):
    with pytest.raises(CaseError) as info:
        parse_case(_with(path, value))
    assert str(info.value).startswith(message), str(info.value)


def test_duplicate_ids_and_prior_dates_are_rejected():
    obj = copy.deepcopy(ISSUE_EXAMPLE)
    obj["nodules"].append(copy.deepcopy(obj["nodules"][0]))
    with pytest.raises(CaseError, match=r"nodules\[1\]\.id: duplicates nodules\[0\]\.id"):
        parse_case(obj)
    obj = copy.deepcopy(ISSUE_EXAMPLE)
    obj["nodules"][0]["priors"].append(dict(obj["nodules"][0]["priors"][0]))
    with pytest.raises(CaseError, match=r"nodules\[0\]\.priors\[1\]\.date: duplicates"):
        parse_case(obj)


def test_unknown_fields_warn_or_fail_when_strict():
    obj = _with(["nodules", 0, "volume_mm"], 12)
    case = parse_case(obj)
    assert any("nodules[0].volume_mm: unknown field" in w for w in case.warnings)
    with pytest.raises(CaseError, match=r"nodules\[0\]\.volume_mm: unknown field"):
        parse_case(obj, strict=True)


def test_lenient_spellings():
    obj = _with(["nodules", 0, "priors", 0, "category"], 3)  # integer category
    obj["nodules"][0]["priors"][0]["date"] = "20251203"  # DICOM DA
    obj["nodules"][0]["id"] = 7
    case = parse_case(obj)
    assert case.nodules[0].priors[0].category == "3"
    assert case.nodules[0].priors[0].date == dt.date(2025, 12, 3)
    assert case.nodules[0].id == "7"


def test_priors_are_sorted_by_date():
    obj = copy.deepcopy(ISSUE_EXAMPLE)
    obj["nodules"][0]["priors"].insert(0, {"date": "2026-03-01", "volume_mm3": 120.0, "category": "2"})
    case = parse_case(obj)
    assert [p.date for p in case.nodules[0].priors] == [dt.date(2025, 12, 3), dt.date(2026, 3, 1)]


def test_missing_data_a_rule_needs_is_named_at_assessment():
    obj = {
        "exam_date": "2026-06-01",
        "screening_round": "baseline",
        "nodules": [{"id": "1", "composition": "solid", "max_axial_diameter_mm": 6}],
    }
    with pytest.raises(CaseError, match=r"^participant\.age_years: is required for the PanCan risk"):
        assess(parse_case(obj))
    obj = {
        "exam_date": "2026-06-01",
        "screening_round": "follow-up",
        "nodules": [
            {
                "id": "1",
                "composition": "solid",
                "volume_mm3": 50,
                "priors": [{"date": "2025-06-01", "mean_diameter_mm": 4.0}],
            }
        ],
    }
    with pytest.raises(CaseError, match=r"^nodules\[0\]\.priors: nodule '1': scans of 2025-06-01 and 2026-06-01 share"):
        assess(parse_case(obj))
    obj = {"exam_date": "2026-06-01", "screening_round": "follow-up", "nodules": [{"id": "1", "composition": "solid"}]}
    with pytest.raises(CaseError, match=r"^nodules\[0\]\.volume_mm3: nodule '1' needs a size"):
        assess(parse_case(obj))


def test_priors_without_measurements_are_fine_when_growth_cannot_matter():
    obj = {
        "exam_date": "2026-06-01",
        "screening_round": "follow-up",
        "nodules": [
            {"id": "1", "airway": "segmental-or-proximal", "priors": [{"date": "2026-03-01", "category": "4"}]}
        ],
    }
    out = assessment_to_json(assess(parse_case(obj)))
    assert out["category"] == "5"  # note 10d: persists at 3 months


def test_not_classified_nodule_has_null_category_in_json():
    obj = {"exam_date": "2026-06-01", "screening_round": "baseline", "nodules": [{"id": "c", "cyst": "thin-walled"}]}
    out = assessment_to_json(assess(parse_case(obj)))
    assert out["nodules"][0]["category"] is None and out["category"] == "1"
