"""daemon.analysis.protocol: the typed door to both protocol engines."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import pytest

from daemon.analysis.protocol import ProtocolError, assess_case, audit_case, case_for_protocol, case_to_json
from lungrads.cases import parse_case as parse_lung_rads_case
from lungrads.types import LungRadsAssessment
from nlcsp import types as nl
from nlcsp.cases import parse_case

# what the daemon builds for a Lung-RADS site: the prior's category is the one recorded then, "4A"
CASE = nl.Case(
    exam_date=dt.date(2026, 6, 1),
    screening_round="follow-up",
    participant=nl.Participant(age_years=64, sex="F"),
    nodules=(
        nl.Nodule(
            "Nodule 1",
            "solid",
            mean_diameter_mm=9.0,
            priors=(nl.Prior(dt.date(2026, 3, 1), mean_diameter_mm=9.0, category="4A"),),
        ),
    ),
)


def _with_prior_category(category: str) -> nl.Case:
    n = CASE.nodules[0]
    return replace(CASE, nodules=(replace(n, priors=(replace(n.priors[0], category=category),)),))


def test_lung_rads_reads_the_recorded_category_as_its_own() -> None:
    a = assess_case(CASE, "lung-rads-2022")
    # "Category 4A lesion stable or decreased at 3-month follow-up" -> 3
    assert (a.protocol, a.protocol_version, a.category, a.label) == ("lung-rads-2022", "v2022", "3", "3")
    assert isinstance(a.result, LungRadsAssessment) and a.result.nodules[0].previous_category == "4A"
    assert a.case.nodules[0].priors[0].lung_rads_category == "4A" and a.case.nodules[0].priors[0].category is None
    assert a.assessment_json["nodules"][0]["previous_category"] == "4A"  # the stored document (the edge)


def test_a_category_of_the_other_protocol_is_dropped_not_an_error() -> None:
    assert case_for_protocol(CASE, "nlcsp").nodules[0].priors[0].category is None  # "4A" is no NLCSP category
    a = assess_case(CASE, "nlcsp")
    assert a.protocol == "nlcsp" and isinstance(a.result, nl.Assessment)
    assert a.result.nodules[0].previous_category_derived
    lr = assess_case(_with_prior_category("5"), "lung-rads-2022").result  # "5" is no Lung-RADS category
    assert isinstance(lr, LungRadsAssessment) and lr.nodules[0].previous_category_derived


def test_the_stored_case_reproduces_the_assessment_through_categorize() -> None:
    """The edge: the case document the daemon stores reads back (as `noduled categorize --protocol` reads it) as the
    case the engine read, and gives the same assessment."""
    for protocol in ("nlcsp", "lung-rads-2022"):
        a = assess_case(CASE, protocol)
        document = json.loads(json.dumps(case_to_json(a.case)))
        assert document["schema"] == "noduled.case/2"
        back = parse_lung_rads_case(document) if protocol == "lung-rads-2022" else parse_case(document)
        assert back == a.case
        assert assess_case(back, protocol).assessment_json == a.assessment_json


def test_unknown_protocol_and_refused_case() -> None:
    with pytest.raises(ProtocolError, match="protocol must be one of nlcsp, lung-rads-2022"):
        assess_case(CASE, "brock")
    with pytest.raises(ProtocolError, match=r"participant\.age_years"):  # no age: no PanCan risk for NLCSP
        assess_case(replace(CASE, participant=nl.Participant()), "nlcsp")


def test_the_audit_never_fails_the_analysis() -> None:
    audit, error = audit_case(CASE, "nlcsp")
    assert audit is not None and error is None and audit.category in nl.CATEGORIES
    audit, error = audit_case(replace(CASE, participant=nl.Participant()), "nlcsp")
    assert audit is None and error is not None and "audit protocol nlcsp" in error
