"""``noduled measure``: JSON and table output on a phantom DICOM series, and the no-nodule error."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from daemon.cli import app


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory):
    from test_images import render_single_nodule, write_study

    study = render_single_nodule("solid", 8.0, seed=3)
    paths = write_study(study, tmp_path_factory.mktemp("phantom"))
    return paths["ct_dir"], study.nodules[0]


def test_json_output_has_the_measurement_fields_and_errors(phantom_series):
    ct_dir, truth = phantom_series
    seed = ",".join(f"{v:.2f}" for v in truth["seed_lps_mm"])
    far = "{:.1f},{:.1f},{:.1f}".format(truth["centroid_lps_mm"][0] + 12, *truth["centroid_lps_mm"][1:])
    result = CliRunner().invoke(app, ["measure", str(ct_dir), "--seed", seed, "--seed", far, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 2
    hit, miss = rows
    assert hit["error"] is None
    assert hit["partial_volume_mm3"] == pytest.approx(truth["volume_mm3"], rel=0.05)
    assert hit["partial_volume_mm3"] < hit["volume_mm3"] < 1.5 * hit["partial_volume_mm3"]  # readers' convention
    for key in (
        "mean_diameter_mm",
        "long_axis_mm",
        "short_axis_mm",
        "measurement_plane",
        "long_axis_endpoints_lps_mm",
        "short_axis_endpoints_lps_mm",
        "max_axial_diameter_mm",
        "mean_hu",
        "solid_volume_mm3",
        "centroid_lps_mm",
        "quality",
    ):
        assert key in hit
    assert miss["error"].startswith("no nodule at seed")
    assert miss["seed"] == pytest.approx([float(v) for v in far.split(",")])


def test_table_output_and_bad_seed(phantom_series):
    ct_dir, truth = phantom_series
    seed = ",".join(f"{v:.2f}" for v in truth["seed_lps_mm"])
    result = CliRunner().invoke(app, ["measure", str(ct_dir), "--seed", seed], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "volume mm³" in result.output and "solid" in result.output
    bad = CliRunner().invoke(app, ["measure", str(ct_dir), "--seed", "1,2"])
    assert bad.exit_code != 0
    assert "must be X,Y,Z" in bad.output
