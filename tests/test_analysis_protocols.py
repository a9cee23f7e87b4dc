"""A phantom study analysed offline with ``--protocol lung-rads-2022``: the SR carries the Lung-RADS v2022
category, the audit protocol (NLCSP) is computed alongside and written apart, not reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner

from daemon.cli import app
from dicom_sr.read_report import read_report


@pytest.fixture(scope="module")
def ten_mm(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from test_images import render_single_nodule, write_study

    study = render_single_nodule("solid", 10.0, seed=5)  # Lung-RADS: solid 8 to < 15 mm at baseline -> 4A
    return write_study(study, tmp_path_factory.mktemp("ten-mm"))


def test_analyze_with_lung_rads_reports_its_category_in_the_sr(ten_mm: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "analyze",
            ten_mm["ct_dir"],
            "--seeds",
            ten_mm["seeds_json"],
            "--out",
            str(out),
            "--participant",
            str(_participant(tmp_path)),
            "--protocol",
            "lung-rads-2022",
            "--audit-protocol",
            "nlcsp",
        ],
    )
    assert res.exit_code == 0, res.output
    assessment = json.loads((out / "assessment.json").read_text())
    assert (assessment["protocol"], assessment["protocol_version"], assessment["category"]) == (
        "lung-rads-2022",
        "v2022",
        "4A",
    )
    assert "Lung-RADS v2022 Category 4A" in res.output
    # the SR, read back as a viewer or the next round would
    back = read_report(dcmread(out / "report.dcm")).assessment
    assert back is not None and (back.protocol, back.protocol_version, back.category) == (
        "lung-rads-2022",
        "v2022",
        "4A",
    )
    assert [f.category for f in back.findings] == ["4A"]
    # the audit protocol is computed and kept apart, never in the SR
    audit = json.loads((out / "audit.json").read_text())
    assert audit["protocol"] == "nlcsp" and audit["category"] in list("0123456")
    assert not any(r == audit["rule"] for r in back.reasons)
    # the case reproduces the report with `noduled categorize --protocol lung-rads-2022`
    again = CliRunner().invoke(app, ["categorize", "--protocol", "lung-rads-2022", str(out / "case.json")])
    assert again.exit_code == 0 and json.loads(again.stdout)["category"] == "4A"


def test_analyze_refuses_an_unknown_protocol(ten_mm: dict, tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "analyze",
            ten_mm["ct_dir"],
            "--seeds",
            ten_mm["seeds_json"],
            "--out",
            str(tmp_path),
            "--protocol",
            "fleischner",
        ],
    )
    assert res.exit_code == 2 and "--protocol must be nlcsp or lung-rads-2022" in res.output


def _participant(tmp_path: Path) -> Path:
    path = tmp_path / "participant.json"
    path.write_text(json.dumps({"age_years": 64, "sex": "F"}))
    return path
