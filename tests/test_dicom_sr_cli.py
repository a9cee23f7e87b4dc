"""``noduled report``: summary of our SR and of third-party TID 1500 SRs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from daemon.cli import app
from dicom_sr.report import build_report
from dicom_sr.seg import build_segmentation
from tests.dicom_sr_support import make_assessment, make_ct_series, write

THIRD = Path("/work/shared/realdata/third-party-objects")
runner = CliRunner()


@pytest.fixture(scope="module")
def our_sr(tmp_path_factory):
    ct = make_ct_series(seed="cli")
    a = make_assessment(ct)
    return a, write(
        build_report(a, ct, seg=build_segmentation(a.findings, ct)), tmp_path_factory.mktemp("cli") / "sr.dcm"
    )


def test_summary_of_our_report(our_sr):
    assessment, path = our_sr
    result = runner.invoke(app, ["report", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "NLCSP category 4A" in result.output
    assert "Refer to respiratory physician" in result.output
    assert "Nodule 1" in result.output and "Nodule 2" in result.output
    assert "267" in result.output  # volume of nodule 1, whole mm³
    assert "TEST0001" not in result.output and "Test^Patient" not in result.output


def test_json_of_our_report(our_sr):
    assessment, path = our_sr
    result = runner.invoke(app, ["report", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["is_noduled"] is True
    assert data["assessment"]["category"] == "4"
    assert [f["tracking_uid"] for f in data["assessment"]["findings"]] == [f.tracking_uid for f in assessment.findings]
    assert data["assessment"]["findings"][0]["comparisons"][0]["prior_study_date"] == "2024-03-12"


@pytest.mark.skipif(not THIRD.is_dir(), reason="shared real-data folder is not mounted")
@pytest.mark.parametrize(
    "name", ["dcmjs-cornerstone-tid1500.dcm", "dcmjs-sample-sr.dcm", "highdicom-tid1500-multiple-groups.dcm"]
)
def test_third_party_reports(name):
    result = runner.invoke(app, ["report", str(THIRD / name)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "written by another system" in result.output and "Measurement groups" in result.output
    data = json.loads(runner.invoke(app, ["report", str(THIRD / name), "--json"]).output)
    assert data["groups"] and all(g["tracking_uid"] for g in data["groups"])


def test_errors(tmp_path):
    assert runner.invoke(app, ["report", str(tmp_path / "missing.dcm")]).exit_code == 2
    ct = write(make_ct_series(n_slices=1, seed="cli-ct")[0], tmp_path / "ct.dcm")
    result = runner.invoke(app, ["report", str(ct)])
    assert result.exit_code == 2 and "not a structured report" in result.output
