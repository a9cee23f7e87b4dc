"""daemon/commands/categorize.py: ``noduled categorize CASE.json [--explain]``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from daemon.commands import categorize

CASE = {
    "schema": "noduled.case/1",
    "exam_date": "2026-06-01",
    "screening_round": "baseline",
    "participant": {"age_years": 68, "sex": "F", "family_history_lung_cancer": True},
    "nodules": [
        {"id": "1", "composition": "solid", "volume_mm3": 480, "max_axial_diameter_mm": 10, "upper_lobe": True},
        {"id": "2", "composition": "solid", "volume_mm3": 20, "max_axial_diameter_mm": 3.2},
    ],
}


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:  # keeps "categorize" a sub-command, as in the real CLI
        pass

    categorize.register(app)
    return app


def _run(args, stdin: str | None = None):
    return CliRunner().invoke(_app(), ["categorize", *args], input=stdin)


def test_prints_the_assessment_json(tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE))
    result = _run([str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # the published PanCan check value (68 y woman, family history, 10 mm solid, upper lobe, 2 nodules) -> 14.5887 %
    assert out["nodules"][0]["pancan_risk_pct"] == 14.5887
    assert out["category"] == "4" and out["follow_up_months"] == 3 and out["due_date"] == "2026-09-01"


def test_reads_stdin_with_dash():
    result = _run(["-"], stdin=json.dumps(CASE))
    assert result.exit_code == 0 and json.loads(result.stdout)["category"] == "4"


def test_explain_prints_the_reasoning_per_nodule():
    result = _run(["-", "--explain"], stdin=json.dumps(CASE))
    assert result.exit_code == 0
    assert "Nodule 1: Category 4" in result.stdout and "Nodule 2: Category 1" in result.stdout
    assert "PanCan risk 14.5887 %" in result.stdout


def test_validation_error_names_the_field_and_exits_2():
    bad = dict(CASE, nodules=[dict(CASE["nodules"][0], composition="ggo")])
    result = _run(["-"], stdin=json.dumps(bad))
    assert result.exit_code == 2
    assert "nodules[0].composition: must be one of solid, part-solid, non-solid" in result.stderr
    assert result.stdout == ""


def test_unreadable_and_invalid_json_exit_2(tmp_path: Path):
    assert _run([str(tmp_path / "missing.json")]).exit_code == 2
    result = _run(["-"], stdin="{not json")
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


def test_unknown_field_is_a_warning_unless_strict():
    case = dict(CASE, comment="vignette 12")
    ok = _run(["-"], stdin=json.dumps(case))
    assert ok.exit_code == 0 and "comment: unknown field" in ok.stderr
    assert _run(["-", "--strict"], stdin=json.dumps(case)).exit_code == 2


def test_the_installed_command_is_wired(tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE))
    proc = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "categorize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["category"] == "4"


def test_protocol_lung_rads_on_the_same_case(tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE))
    nlcsp = json.loads(_run([str(path)]).output)
    result = _run(["--protocol", "lung-rads-2022", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert nlcsp["protocol"] == "nlcsp"
    # nodule 1: 480 mm3 solid at baseline, no mean diameter -> 268 to < 1,767 mm3 -> 4A; nodule 2: 20 mm3 -> 2
    assert (out["protocol"], out["protocol_version"], out["category"]) == ("lung-rads-2022", "v2022", "4A")
    assert [n["category"] for n in out["nodules"]] == ["4A", "2"] and out["due_date"] == "2026-09-01"
    explained = _run(["--protocol", "lung-rads-2022", "--explain", str(path)])
    assert explained.exit_code == 0 and "ACR Lung-RADS v2022" in explained.output


def test_unknown_protocol_and_strict_without_schema(tmp_path: Path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE))
    bad = _run(["--protocol", "lungrads", str(path)])
    assert bad.exit_code == 2 and "--protocol must be nlcsp or lung-rads-2022" in bad.output
    path.write_text(json.dumps({k: v for k, v in CASE.items() if k != "schema"}))
    for protocol in ("nlcsp", "lung-rads-2022"):
        strict = _run(["--strict", "--protocol", protocol, str(path)])
        assert strict.exit_code == 2 and "schema: is required with --strict" in strict.output
