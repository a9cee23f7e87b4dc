"""Seeds that find nothing (issue 18 point 4): marks in air or outside the body are never "no nodules".

The phantom's own seed SR, with its mark moved to the image corner (outside the body): once
without and once with the reader's length in the measurement group (TID 1410 Length, mm).
"""

from __future__ import annotations

import copy

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from daemon.analysis.chain import AnalysisInputs, analyze
from daemon.analysis.unmeasured import PREFIX
from dicom_sr.read_report import read_report


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    """One 8 mm solid nodule (the phantom of tests/test_analysis.py)."""
    from test_images import render_single_nodule, write_study

    study = render_single_nodule("solid", 8.0, seed=3)
    return {"study": study, "paths": write_study(study, tmp_path_factory.mktemp("single"))}


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _walk(items):  # type: ignore[no-untyped-def]
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence") or [])


def _seed_in_air(sr: Dataset, reader_length_mm: float | None = None) -> Dataset:
    sr = copy.deepcopy(sr)
    for item in _walk(sr.ContentSequence):
        if item.get("ValueType") == "SCOORD":
            item.GraphicData = [3.0, 3.0]  # the image corner: outside the body
    if reader_length_mm is not None:
        group = next(
            i
            for i in _walk(sr.ContentSequence)
            if i.get("ValueType") == "CONTAINER" and i.ConceptNameCodeSequence[0].CodeValue == "125007"
        )
        num = Dataset()
        num.RelationshipType, num.ValueType = "CONTAINS", "NUM"
        num.ConceptNameCodeSequence = Sequence([_code("410668003", "SCT", "Length")])
        mv = Dataset()
        mv.NumericValue = str(reader_length_mm)
        mv.MeasurementUnitsCodeSequence = Sequence([_code("mm", "UCUM", "millimeter")])
        num.MeasuredValueSequence = Sequence([mv])
        group.ContentSequence.append(num)
    return sr


def _analyse(single: dict, seed: Dataset):  # type: ignore[no-untyped-def]
    cts = [dcmread(p) for p in single["paths"]["ct"]]
    return analyze(AnalysisInputs(study_datasets=cts, seed_objects=[seed]))


def test_a_mark_outside_the_body_is_not_categorised_as_no_nodules_and_the_report_is_partial(single: dict) -> None:
    result = _analyse(single, _seed_in_air(dcmread(single["paths"]["sr"])))
    a = result.assessment
    (finding,) = a.findings
    assert finding.measurement is None and finding.error.startswith(PREFIX)
    assert finding.seed is not None and finding.seed.position_lps_mm  # the reader's position is kept
    assert a.category != "1" and "No lung nodules" not in a.descriptor and a.follow_up_months is None
    assert a.incomplete and any(n.startswith("incomplete: 1 nodule(s) marked by the reader") for n in a.notes)
    sr = result.report
    assert sr.CompletionFlag == "PARTIAL"
    back = read_report(sr).assessment
    assert back is not None and back.category in ("", None)
    assert any(f.error and f.error.startswith(PREFIX) for f in back.findings)


def test_the_readers_own_length_is_categorised_by_mean_diameter(single: dict) -> None:
    result = _analyse(single, _seed_in_air(dcmread(single["paths"]["sr"]), reader_length_mm=9.0))
    a = result.assessment
    (finding,) = a.findings
    assert finding.measurement is None and finding.error.startswith(PREFIX)
    (nodule,) = result.case_json["nodules"]
    assert nodule["mean_diameter_mm"] == pytest.approx(9.0) and nodule["volume_mm3"] is None
    assert a.category not in ("", "1") and finding.category == a.category
    assert not a.incomplete and result.report.CompletionFlag == "COMPLETE"


def test_a_measured_nodule_beside_an_unmeasurable_mark_keeps_its_category_and_the_report_is_partial(
    single: dict,
) -> None:
    good = dcmread(single["paths"]["sr"])
    alone = _analyse(single, good).assessment
    cts = [dcmread(p) for p in single["paths"]["ct"]]
    air = _seed_in_air(good)
    air.SOPInstanceUID = generate_uid()
    result = analyze(AnalysisInputs(study_datasets=cts, seed_objects=[good, air]))
    a = result.assessment
    assert len(a.findings) == 2 and a.category == alone.category  # never lowered by the unmeasurable mark
    assert a.incomplete and "the category covers the other nodules only" in " ".join(a.notes)
    assert result.report.CompletionFlag == "PARTIAL"
