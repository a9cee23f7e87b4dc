"""Both engines on 5,000 random cases each: no crash; a malformed case gets a CaseError naming the field.

The cases are drawn from a fixed seed (reproducible): mostly well-formed cases over the whole schema
(every composition, airway, cyst and change, priors with and without categories), a fifth of them with
one field broken (wrong type, negative, out of range, a date after the exam ...).
"""

from __future__ import annotations

import datetime as dt
import random
import re
from typing import Any

import pytest

import lungrads.categorize
import nlcsp.categorize
from lungrads.cases import assessment_to_json as lr_json
from lungrads.cases import parse_case as lr_parse_case
from nlcsp.cases import CaseError, assessment_to_json, parse_case

TODAY = dt.date(2026, 12, 2)
N_CASES = 5000
FIELD = re.compile(r"^(schema|exam_date|screening_round|participant|exam_findings|nodules)(\[|\.|:| |$)")


def _maybe(rng: random.Random, value: Any, p: float = 0.5) -> Any:
    return value if rng.random() < p else None


def _prior(rng: random.Random, exam: dt.date) -> dict[str, Any]:
    d = exam - dt.timedelta(days=rng.randint(20, 2000))
    total = rng.uniform(1, 40)
    return {
        "date": d.isoformat(),
        "mean_diameter_mm": _maybe(rng, round(total, 1), 0.8),
        "volume_mm3": _maybe(rng, round(3.14159 * total**3 / 6), 0.6),
        "category": _maybe(rng, rng.choice(["0", "1", "2", "3", "4", "5", "6"]), 0.5),
        "lung_rads_category": _maybe(rng, rng.choice(["0", "1", "2", "3", "4A", "4B", "4X"]), 0.4),
        "pre_screening": rng.random() < 0.2,
        "composition": _maybe(rng, rng.choice(["solid", "part-solid", "non-solid"]), 0.3),
        "solid_component_mean_diameter_mm": _maybe(rng, round(total * rng.random(), 1), 0.3),
    }


def _nodule(rng: random.Random, i: int, exam: dt.date) -> dict[str, Any]:
    total = rng.uniform(1, 45)
    n: dict[str, Any] = {
        "id": str(i),
        "composition": rng.choice(["solid", "part-solid", "non-solid"]),
        "mean_diameter_mm": _maybe(rng, round(total, 1), 0.8),
        "volume_mm3": _maybe(rng, round(3.14159 * total**3 / 6), 0.7),
        "max_axial_diameter_mm": _maybe(rng, round(total * 1.1, 1), 0.7),
    }
    if n["composition"] == "part-solid":
        n["solid_component_mean_diameter_mm"] = _maybe(rng, round(total * rng.random(), 1), 0.9)
    kind = rng.random()
    if kind < 0.08:
        n["airway"] = rng.choice(
            ["subsegmental", "subsegmental-secretions", "segmental-or-proximal", "segmental-or-proximal-secretions"]
        )
    elif kind < 0.16:
        n["cyst"] = rng.choice(["thin-walled", "thick-walled", "multilocular"])
        n.pop("composition")
        change = {
            "thick-walled": ["growing-cystic-component", "growing-wall"],
            "multilocular": ["newly-multilocular", "growing-multilocular", "increased-loculation-or-opacity"],
        }
        if n["cyst"] in change and rng.random() < 0.4:
            n["cyst_change"] = rng.choice(change[n["cyst"]])
    for flag in (
        "upper_lobe",
        "spiculated",
        "benign_calcification",
        "fat",
        "juxtapleural_typical",
        "proven_benign",
        "additional_suspicious_features",
    ):
        if rng.random() < 0.08:
            n[flag] = True
    priors = [_prior(rng, exam) for _ in range(rng.choice([0, 0, 1, 1, 2, 3]))]
    dates = set()
    n["priors"] = [p for p in priors if not (p["date"] in dates or dates.add(p["date"]))]
    return n


BREAKS: list[tuple[str, Any]] = [
    ("mean_diameter_mm", -3),
    ("volume_mm3", "big"),
    ("composition", "ggo"),
    ("priors", {}),
    ("airway", 7),
    ("spiculated", "yes"),
    ("id", ""),
    ("solid_component_mean_diameter_mm", 99.0),
]


def random_case(rng: random.Random) -> dict[str, Any]:
    exam = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 2500))
    case: dict[str, Any] = {
        "schema": rng.choice(["noduled.case/2", "noduled.case/2", "noduled.case/1"]),
        "exam_date": exam.isoformat(),
        "screening_round": rng.choice(["baseline", "follow-up"]),
        "participant": {
            "age_years": rng.randint(50, 85),
            "sex": rng.choice(["F", "M"]),
            "family_history_lung_cancer": rng.random() < 0.2,
            "emphysema": rng.random() < 0.3,
        },
        "exam_findings": {
            "infection_or_inflammation": rng.random() < 0.05,
            "suspicious_features": rng.random() < 0.05,
            "actionable_additional_findings": rng.random() < 0.1,
            "prior_ct_being_located": rng.random() < 0.03,
            "lungs_not_evaluable": rng.random() < 0.03,
        },
        "nodules": [_nodule(rng, i, exam) for i in range(rng.choice([0, 1, 1, 2, 3, 7]))],
    }
    if rng.random() < 0.2:  # break one thing
        what = rng.random()
        if what < 0.15:
            case["exam_date"] = rng.choice(["2099-01-01", "31/12/2020", 20200101])
        elif what < 0.25:
            case["participant"]["age_years"] = rng.choice([5, "sixty", None])
        elif what < 0.35:
            case["screening_round"] = "annual"
        elif case["nodules"]:
            n = rng.choice(case["nodules"])
            key, value = rng.choice(BREAKS)
            n[key] = value
            if n["priors"] and rng.random() < 0.5:
                n["priors"][0]["date"] = case["exam_date"]
    return case


@pytest.mark.parametrize("protocol", ["nlcsp", "lung-rads-2022"])
def test_random_cases_never_crash(protocol):
    rng = random.Random(15 if protocol == "nlcsp" else 2022)
    assessed = refused = 0
    for _ in range(N_CASES):
        obj = random_case(rng)
        try:
            if protocol == "nlcsp":
                case = parse_case(obj, today=TODAY)
                out = assessment_to_json(nlcsp.categorize.assess(case))
                assert out["category"] in ("0", "1", "2", "3", "4", "5", "6")
            else:  # the path of `noduled categorize --protocol lung-rads-2022`
                out = lr_json(lungrads.categorize.assess(lr_parse_case(obj, today=TODAY)))
                assert out["category"] in ("0", "1", "2", "3", "4A", "4B", "4X")
            assessed += 1
        except CaseError as exc:
            assert FIELD.match(str(exc)), f"error does not name a field: {exc}"
            refused += 1
    assert assessed + refused == N_CASES
    assert assessed > N_CASES * 0.5 and refused > N_CASES * 0.1  # both paths really exercised
