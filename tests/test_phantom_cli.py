"""``noduled phantom``: --list, and one case written with truth.json."""

from __future__ import annotations

import json

import pydicom
from typer.testing import CliRunner

from daemon.cli import app


def test_list_shows_every_named_case():
    res = CliRunner().invoke(app, ["phantom", "--list"])
    assert res.exit_code == 0
    names = [line.split()[0] for line in res.output.strip().splitlines()]
    for case in (
        "solid-sizes",
        "juxtavascular",
        "juxtapleural",
        "ggn",
        "part-solid",
        "irregular",
        "benign",
        "no-nodules",
        "multi",
        "growth",
        "slow-growth",
        "ggn-growth",
    ):
        assert case in names


def test_writes_a_case_with_truth(tmp_path):
    res = CliRunner().invoke(app, ["phantom", "juxtapleural", "--out", str(tmp_path), "--size", "small", "--seed", "2"])
    assert res.exit_code == 0, res.output
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["case"] == "juxtapleural" and len(truth["studies"]) == 1
    study = truth["studies"][0]
    assert {n["attachment"] for n in study["nodules"]} == {"juxtapleural", "perifissural"}
    d = tmp_path / study["directory"].split("/")[-1]
    cts = sorted((d / "CT").glob("*.dcm"))
    assert len(cts) == study["shape_kji"][0]
    assert pydicom.dcmread(d / "seeds_sr.dcm").StudyInstanceUID == study["study_uid"]
    assert (d / "seeds_gsps.dcm").exists() and (d / "seeds.json").exists()


def test_unknown_case_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["phantom", "nonsense", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown case" in res.output
