"""The SR carries the protocol: a Lung-RADS v2022 assessment round-trips (name, version, 4A/4B/4X, S)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dicom_sr import codes
from dicom_sr.read_report import read_report
from dicom_sr.report import ReportError, build_report
from tests.dicom_sr_support import dciodvfy_errors, make_assessment, make_ct_series, write


def _lung_rads(assessment):
    findings = list(assessment.findings)
    first = replace(
        findings[0], category="4B", comparisons=tuple(replace(c, prior_category="4A") for c in findings[0].comparisons)
    )
    findings = [first, replace(findings[1], category="3")]
    return replace(
        assessment,
        protocol="lung-rads-2022",
        protocol_version="v2022",
        category="4B",
        additional_findings=True,
        descriptor="Very suspicious",
        findings=tuple(findings),
    )


@pytest.fixture(scope="module")
def lung_rads_report(tmp_path_factory):
    ct = make_ct_series(seed="protocols")
    assessment = _lung_rads(make_assessment(ct))
    path = write(build_report(assessment, ct, seg=None), tmp_path_factory.mktemp("lr") / "sr.dcm")
    return assessment, path


def _evaluations(ds):
    container = next(
        i for i in ds.ContentSequence if codes.same(i.ConceptNameCodeSequence[0], codes.QUALITATIVE_EVALUATIONS)
    )
    return list(container.ContentSequence)


def test_lung_rads_sr_is_valid_and_carries_protocol_version_and_category(lung_rads_report):
    import pydicom

    assessment, path = lung_rads_report
    assert dciodvfy_errors(path) == []
    items = _evaluations(pydicom.dcmread(path))
    by_concept = {codes.key(i.ConceptNameCodeSequence[0]): i for i in items}
    assert by_concept[codes.key(codes.PROTOCOL)].TextValue == "ACR Lung-RADS"
    assert by_concept[codes.key(codes.PROTOCOL_VERSION)].TextValue == "v2022"
    category = by_concept[("1362105002", "SCT")].ConceptCodeSequence[0]  # SNOMED CT Lung-RADS category observable
    assert (category.CodeValue, category.CodingSchemeDesignator) == ("LR4B", "99NLCSP")
    assert codes.key(codes.EXAM_CATEGORY) not in by_concept  # not also reported as an NLCSP category
    assert by_concept[codes.key(codes.LUNG_RADS_S_MODIFIER)].ConceptCodeSequence[0].CodeValue == codes.YES.value


def test_lung_rads_round_trip(lung_rads_report):
    assessment, path = lung_rads_report
    back = read_report(path).assessment
    assert back is not None
    assert (back.protocol, back.protocol_version, back.category, back.additional_findings) == (
        "lung-rads-2022",
        "v2022",
        "4B",
        True,
    )
    assert [f.category for f in back.findings] == ["4B", "3"]
    assert [c.prior_category for c in back.findings[0].comparisons] == ["4A"] * len(assessment.findings[0].comparisons)


def test_nlcsp_sr_names_its_protocol_and_reads_back_as_nlcsp(tmp_path):
    ct = make_ct_series(seed="protocols-nlcsp")
    assessment = make_assessment(ct)
    path = write(build_report(assessment, ct, seg=None), tmp_path / "sr.dcm")
    back = read_report(path).assessment
    assert back is not None and (back.protocol, back.category) == ("nlcsp", assessment.category)


def test_a_category_foreign_to_the_protocol_is_refused():
    ct = make_ct_series(seed="protocols-bad")
    with pytest.raises(ReportError, match="exam category is '5'"):
        build_report(replace(_lung_rads(make_assessment(ct)), category="5"), ct, seg=None)
    with pytest.raises(ReportError, match="protocol is 'brock'"):
        build_report(replace(make_assessment(ct), protocol="brock"), ct, seg=None)
