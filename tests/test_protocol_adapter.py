"""daemon.analysis.protocol: the typed boundary to the protocol engine, and its JSON edge."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from daemon.analysis.errors import AnalysisError
from daemon.analysis.protocol import _check, case_to_json
from nlcsp import types as nl
from nlcsp.cases import assessment_to_json, parse_case
from nlcsp.categorize import assess


def _case() -> nl.Case:
    priors = (nl.Prior(dt.date(2024, 6, 1), 180.0, 7.0, "2"), nl.Prior(dt.date(2025, 6, 1), 200.0, 7.2, None, True))
    return nl.Case(
        exam_date=dt.date(2026, 6, 1),
        screening_round="follow-up",
        participant=nl.Participant(age_years=62, sex="F", family_history_lung_cancer=True, emphysema=False),
        exam_findings=nl.ExamFindings(suspicious_features=True),
        nodules=(
            nl.Nodule(
                id="Nodule 1",
                composition="solid",
                volume_mm3=260.0,
                mean_diameter_mm=7.9,
                max_axial_diameter_mm=9.1,
                upper_lobe=True,
                priors=priors,
                index=0,
            ),
            nl.Nodule(
                id="Nodule 2",
                composition="part-solid",
                volume_mm3=900.0,
                mean_diameter_mm=12.0,
                max_axial_diameter_mm=13.0,
                solid_component_volume_mm3=110.0,
                solid_component_mean_diameter_mm=6.0,
                index=1,
            ),
            nl.Nodule(
                id="Nodule 3",
                composition="solid",
                volume_mm3=40.0,
                mean_diameter_mm=4.3,
                airway="segmental-or-proximal-secretions",
                index=2,
            ),
        ),
    )


def test_the_case_document_reads_back_as_the_same_case() -> None:
    case = _case()
    document = json.loads(json.dumps(case_to_json(case)))  # through text, as `noduled categorize` reads it
    assert parse_case(document, strict=True) == case


def test_the_engine_gives_the_same_assessment_for_the_typed_case_and_its_document() -> None:
    case = _case()
    assert assessment_to_json(assess(case)) == assessment_to_json(assess(parse_case(case_to_json(case))))


def test_every_airway_value_of_the_engine_is_one_the_report_model_takes() -> None:
    import typing

    from dicom_sr.codes import AIRWAYS as AIRWAY_CODES
    from dicom_sr.findings import Airway

    assert set(typing.get_args(Airway)) == set(nl.AIRWAYS)
    assert set(AIRWAY_CODES) == set(nl.AIRWAYS)  # each has a code in the SR, none is dropped


def test_duplicate_prior_dates_are_refused_with_the_nodule_named() -> None:
    prior = nl.Prior(dt.date(2024, 6, 1), 100.0)
    case = nl.Case(
        dt.date(2026, 6, 1), "follow-up", nodules=(nl.Nodule("Nodule 1", "solid", 120.0, priors=(prior, prior)),)
    )
    with pytest.raises(AnalysisError, match="Nodule 1 has prior dates 2024-06-01, 2024-06-01"):
        _check(case)
