"""daemon.analysis.chain and ``noduled analyze``: the pure analysis chain on a phantom, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

from daemon.analysis.chain import AnalysisError, AnalysisInputs, SiteDefaults, analyze
from daemon.analysis.protocol import participant_from_headers
from daemon.cli import app


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from test_images import render_single_nodule, write_study

    study = render_single_nodule("solid", 8.0, seed=3)
    paths = write_study(study, tmp_path_factory.mktemp("single"))
    return {"study": study, "paths": paths, "truth": study.nodules[0]}


def _inputs(single: dict, *seed_keys: str, **kw) -> AnalysisInputs:  # type: ignore[no-untyped-def]
    cts = [dcmread(p) for p in single["paths"]["ct"]]
    seeds = [
        dcmread(single["paths"][k]) if k != "seeds_json" else json.loads(Path(single["paths"][k]).read_text())
        for k in seed_keys
    ]
    return AnalysisInputs(study_datasets=cts, seed_objects=seeds, **kw)


def test_sr_seed_is_measured_assessed_and_reported(single: dict) -> None:
    result = analyze(_inputs(single, "sr"))
    (finding,) = result.assessment.findings
    truth = single["truth"]
    assert finding.tracking_id == "Nodule 1" and finding.error is None
    # the physical volume against the phantom's truth; the reported one is the readers' outline (larger)
    assert abs(finding.measurement.partial_volume_mm3 - truth["volume_mm3"]) < 0.06 * truth["volume_mm3"]
    assert finding.measurement.volume_mm3 == finding.measurement.readers_volume_mm3 > truth["volume_mm3"]
    assert result.case_json["nodules"][0]["volume_mm3"] == finding.measurement.volume_mm3
    assert result.assessment.category == result.assessment_json["category"] == finding.category
    assert result.report.StudyInstanceUID == single["study"].study_uid
    assert result.seg is not None and result.seg.StudyInstanceUID == single["study"].study_uid
    assert set(result.timings_s) == {"seeds", "load", "segment", "assess", "report"}


def test_the_same_nodule_seeded_twice_is_one_finding(single: dict) -> None:
    """PACS often forwards both the SR and the GSPS of one read."""
    result = analyze(_inputs(single, "sr", "gsps"))
    assert len(result.assessment.findings) == 1


def test_a_point_marked_in_the_sr_and_the_gsps_is_measured_once(single: dict) -> None:
    from daemon.analysis.findings import measure_seed

    asked: list[int] = []

    def measure_map(image, lungs, positions):  # type: ignore[no-untyped-def]
        asked.append(len(positions))
        return [measure_seed(image, p, lungs) for p in positions]

    result = analyze(_inputs(single, "sr", "gsps"), measure_map=measure_map)
    assert asked == [1] and len(result.assessment.findings) == 1


def test_the_same_mark_that_finds_no_nodule_forwarded_twice_is_one_unmeasured_finding(single: dict) -> None:
    """An SR and a GSPS of one read both carry a mark where nothing can be measured: one finding
    "not measurable" (the report used to fail on the two findings' shared tracking UID)."""
    seeds = json.loads(Path(single["paths"]["seeds_json"]).read_text())
    x, y, z = seeds["seeds"][0]["position_lps_mm"]
    mark = {"seeds": [{"position_lps_mm": [x + 30.0, y, z]}]}
    moved = {"seeds": [{"position_lps_mm": [x + 30.5, y, z]}]}  # the GSPS's pixel, half a millimetre away
    cts = [dcmread(p) for p in single["paths"]["ct"]]
    result = analyze(AnalysisInputs(study_datasets=cts, seed_objects=[mark, moved, mark]))
    (finding,) = result.assessment.findings
    assert finding.measurement is None and "not measurable" in finding.error
    assert result.report is not None


def test_rerun_gives_the_same_objects(single: dict) -> None:
    a, b = analyze(_inputs(single, "sr")), analyze(_inputs(single, "sr"))
    assert a.report.SOPInstanceUID == b.report.SOPInstanceUID
    assert a.seg.SOPInstanceUID == b.seg.SOPInstanceUID
    assert a.assessment_json == b.assessment_json


def test_reanalysis_replaces_the_report_and_keeps_tracking_uids(single: dict) -> None:
    first = analyze(_inputs(single, "sr"))
    second = analyze(_inputs(single, "gsps", predecessor=first.report))
    assert second.report.SOPInstanceUID != first.report.SOPInstanceUID
    assert (
        second.report.PredecessorDocumentsSequence[0]
        .ReferencedSeriesSequence[0]
        .ReferencedSOPSequence[0]
        .ReferencedSOPInstanceUID
        == first.report.SOPInstanceUID
    )
    assert second.assessment.findings[0].tracking_uid == first.assessment.findings[0].tracking_uid


def test_participant_comes_from_the_ct_header_and_site(single: dict) -> None:
    ct = dcmread(single["paths"]["ct"][0], stop_before_pixels=True)
    p = participant_from_headers(ct, SiteDefaults(family_history_lung_cancer=True), {})
    assert p.age_years == single["study"].patient["age_years"] and p.sex == single["study"].patient["sex"]
    assert p.family_history_lung_cancer is True and p.sources["family_history_lung_cancer"] == "site-config"
    assert p.sources["sex"] == "ct-header PatientSex"


def test_a_study_without_ct_is_refused() -> None:
    with pytest.raises(AnalysisError, match="no CT images"):
        analyze(AnalysisInputs(study_datasets=[], seed_objects=[]))


def test_no_nodules_label_alone_gives_category_1(single: dict) -> None:
    cts = [dcmread(p) for p in single["paths"]["ct"]]
    result = analyze(AnalysisInputs(study_datasets=cts, seed_objects=[{"seeds": [], "labels": "no-nodules"}]))
    assert result.assessment.findings == () and result.assessment.category == "1"
    assert result.assessment.follow_up_months == 24


def test_seed_object_marking_nothing_is_refused(single: dict) -> None:
    cts = [dcmread(p) for p in single["paths"]["ct"]]
    with pytest.raises(AnalysisError, match="mark no nodule and are not labelled 'no-nodules'"):
        analyze(AnalysisInputs(study_datasets=cts, seed_objects=[{"seeds": []}]))


def test_analyze_command_writes_report_seg_and_assessment(single: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["analyze", single["paths"]["ct_dir"], "--seeds", single["paths"]["seeds_json"], "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assessment = json.loads((out / "assessment.json").read_text())
    assert assessment["schema"] == "noduled.assessment/1" and assessment["nodules"][0]["id"] == "Nodule 1"
    assert dcmread(out / "report.dcm").Modality == "SR" and dcmread(out / "seg.dcm").Modality == "SEG"
    # the case given to the protocol engine reproduces the assessment with `noduled categorize`
    again = CliRunner().invoke(app, ["categorize", str(out / "case.json")])
    assert again.exit_code == 0 and json.loads(again.stdout)["category"] == assessment["category"]


def test_analyze_command_names_a_missing_seed_file(single: dict, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["analyze", single["paths"]["ct_dir"], "--seeds", str(tmp_path / "nope.json"), "--out", str(tmp_path)]
    )
    assert res.exit_code == 2 and "nope.json does not exist" in res.output
