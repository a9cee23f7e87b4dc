"""daemon.analysis.protocol: the typed door to both protocol engines."""

from __future__ import annotations

import pytest

from daemon.analysis.protocol import ProtocolError, assess_case, audit_case, case_for_protocol

CASE = {
    "schema": "noduled.case/2", "exam_date": "2026-06-01", "screening_round": "follow-up",
    "participant": {"age_years": 64, "sex": "F"},
    "nodules": [{"id": "Nodule 1", "composition": "solid", "mean_diameter_mm": 9.0,
                 "priors": [{"date": "2026-03-01", "mean_diameter_mm": 9.0, "category": "4A"}]}],
}


def test_lung_rads_reads_the_recorded_category_as_its_own():
    a = assess_case(CASE, "lung-rads-2022")
    # "Category 4A lesion stable or decreased at 3-month follow-up" -> 3
    assert (a.protocol, a.protocol_version, a.category, a.label) == ("lung-rads-2022", "v2022", "3", "3")
    assert a.assessment_json["nodules"][0]["previous_category"] == "4A"


def test_a_category_of_the_other_protocol_is_dropped_not_an_error():
    nlcsp_view = case_for_protocol(CASE, "nlcsp")
    assert nlcsp_view["nodules"][0]["priors"][0]["category"] is None  # "4A" is no NLCSP category
    a = assess_case(CASE, "nlcsp")
    assert a.protocol == "nlcsp" and a.assessment_json["nodules"][0]["previous_category_derived"]
    five = {**CASE, "nodules": [{**CASE["nodules"][0], "priors": [{**CASE["nodules"][0]["priors"][0], "category": "5"}]}]}
    assert assess_case(five, "lung-rads-2022").assessment_json["nodules"][0]["previous_category_derived"]


def test_unknown_protocol_and_refused_case():
    with pytest.raises(ProtocolError, match="protocol must be one of nlcsp, lung-rads-2022"):
        assess_case(CASE, "brock")
    with pytest.raises(ProtocolError, match=r"nodules\[0\]\.composition"):
        assess_case({**CASE, "nodules": [{"id": "x", "composition": "ggo", "mean_diameter_mm": 5}]}, "lung-rads-2022")


def test_the_audit_never_fails_the_analysis():
    audit, error = audit_case(CASE, "nlcsp")
    assert audit is not None and error is None and audit.category in list("0123456")
    audit, error = audit_case({**CASE, "participant": {}}, "nlcsp")  # no age: PanCan impossible for NLCSP
    assert audit is None and error is not None and "audit protocol nlcsp" in error
