"""The participant and outcome files: validation by row and column, idempotent upsert, dry run, the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from daemon.cli import app
from daemon.registry.csvfiles import CSVFileError, parse_outcomes, parse_participants
from daemon.storage.db import open_index
from daemon.storage.registry import import_outcomes, participant_overrides, upsert_participants
from daemon.storage.schema import outcomes, participants

GOOD = """patient_id,issuer,sex,birth_date,smoking_status,pack_years,years_since_quit,family_history_lung_cancer,emphysema,consent
P001,,F,1960-03-02,former,40,4,yes,no,consented
P002,HOSP,M,1958-11-30,current,55,,no,,opted-out
"""


def test_every_problem_is_named_by_row_and_column() -> None:
    text = GOOD + "P003,,X,1961-02-30,sometimes,lots,,maybe,no,consented\n,,F,1960-01-01,never,,,,,\n"
    with pytest.raises(CSVFileError) as err:
        parse_participants(text)
    assert err.value.errors == [
        "row 4, column sex: 'X' is not one of F, M, O, U",
        "row 4, column birth_date: '1961-02-30' is not a date (YYYY-MM-DD)",
        "row 4, column smoking_status: 'sometimes' is not one of current, former, never, unknown",
        "row 4, column pack_years: 'lots' is not a number",
        "row 4, column family_history_lung_cancer: 'maybe' is not yes, no or unknown",
        "row 5, column patient_id: required, empty",
    ]


def test_unknown_columns_and_inconsistent_rows_are_refused() -> None:
    with pytest.raises(CSVFileError, match="row 1, column 'packyears': unknown column"):
        parse_participants("patient_id,packyears\nP1,30\n")
    with pytest.raises(CSVFileError, match="row 2, column years_since_quit: given for a current smoker"):
        parse_participants("patient_id,smoking_status,years_since_quit\nP1,current,3\n")
    with pytest.raises(CSVFileError, match="row 3, column patient_id: the same participant as row 2"):
        parse_participants("patient_id\nP1\nP1\n")
    with pytest.raises(CSVFileError, match="row 2, column outcome_type: required, empty"):
        parse_outcomes("patient_id,outcome_date,outcome_type\nP1,2024-01-01,\n")


def test_upsert_is_idempotent_and_empty_cells_keep_values(tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    rows = parse_participants(GOOD)
    dry = upsert_participants(engine, rows, dry_run=True)
    assert (dry.inserted, dry.dry_run) == (2, True)
    with engine.connect() as conn:
        assert conn.execute(select(participants)).all() == []  # the dry run wrote nothing
    first = upsert_participants(engine, rows)
    again = upsert_participants(engine, rows)
    assert (first.inserted, first.updated) == (2, 0) and (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    change = upsert_participants(engine, parse_participants("patient_id,pack_years,emphysema\nP001,42,\n"))
    assert change.updated == 1
    with engine.connect() as conn:
        p = conn.execute(select(participants).where(participants.c.patient_id == "P001")).one()
    assert (p.pack_years, p.family_history_lung_cancer, p.emphysema, p.smoking_status) == (42.0, 1, 0, "former")
    assert json.loads(p.sources_json)["pack_years"] == "participant-file"
    assert participant_overrides(engine, "P001", "") == {"family_history_lung_cancer": True, "emphysema": False}
    assert participant_overrides(engine, "P002", "HOSP") == {"family_history_lung_cancer": False}
    assert participant_overrides(engine, "NOBODY", "") == {}
    engine.dispose()


def test_outcomes_of_an_unknown_participant_are_refused_whole(tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upsert_participants(engine, parse_participants(GOOD))
    rows = parse_outcomes(
        "patient_id,outcome_date,outcome_type,tissue_diagnosis\nP001,2024-05-01,biopsy,benign\nP404,2024-05-01,biopsy,benign\n"
    )
    with pytest.raises(ValueError, match="row 3: no participant or patient with patient_id 'P404'"):
        import_outcomes(engine, rows)
    with engine.connect() as conn:
        assert conn.execute(select(outcomes)).all() == []  # all or nothing
    ok = import_outcomes(engine, rows[:1])
    assert ok.inserted == 1 and import_outcomes(engine, rows[:1]).unchanged == 1
    engine.dispose()


def test_cli_import_dry_run_and_add(tmp_path: Path) -> None:
    config = tmp_path / "noduled.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n[registry]\npseudonym_key = "k"\n')
    csv_path = tmp_path / "participants.csv"
    csv_path.write_text(GOOD)
    runner = CliRunner()
    r = runner.invoke(app, ["participants", "import", str(csv_path), "--dry-run", "-c", str(config)])
    assert r.exit_code == 0, r.output
    assert "2 would be added" in r.output and "dry run" in r.output
    r = runner.invoke(app, ["participants", "import", str(csv_path), "-c", str(config)])
    assert r.exit_code == 0 and "2 were added" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,pack_years\nP9,-3\n")
    r = runner.invoke(app, ["participants", "import", str(bad), "-c", str(config)])
    assert r.exit_code == 2 and "row 2, column pack_years: '-3' must be >= 0" in r.output
    r = runner.invoke(
        app,
        [
            "outcomes",
            "add",
            "--patient-id",
            "P001",
            "--date",
            "2024-06-01",
            "--type",
            "biopsy",
            "--diagnosis",
            "invasive-lung-cancer",
            "--stage",
            "ia2",
            "-c",
            str(config),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["outcomes", "add", "--patient-id", "P001", "--date", "2024-06-01", "--type", "scan", "-c", str(config)]
    )
    assert r.exit_code == 2 and "--outcome_type: 'scan' is not one of" in r.output
    engine = open_index(f"sqlite:///{tmp_path / 'var' / 'index.sqlite'}")
    with engine.connect() as conn:
        o = conn.execute(select(outcomes)).one()
    assert (o.outcome_date, o.tissue_diagnosis, o.stage, o.source) == (
        dt.date(2024, 6, 1),
        "invasive-lung-cancer",
        "IA2",
        "cli",
    )
    engine.dispose()


def test_ct_header_fills_only_what_the_participant_file_did_not_say(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset

    from daemon.storage.registry import participant_from_dicom

    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upsert_participants(engine, parse_participants("patient_id,smoking_status\nP001,former\n"))
    ds = Dataset()
    ds.PatientID, ds.PatientSex, ds.PatientBirthDate = "P001", "F", "19600302"
    ds.SmokingStatus, ds.PatientSize, ds.PatientWeight = "YES", "1.64", "70"
    with engine.begin() as conn:
        participant_from_dicom(conn, ds)
    with engine.connect() as conn:
        p = conn.execute(select(participants).where(participants.c.patient_id == "P001")).one()
    assert (p.smoking_status, p.sex, p.birth_date, p.height_m, p.weight_kg) == (
        "former",
        "F",
        dt.date(1960, 3, 2),
        1.64,
        70.0,
    )
    assert json.loads(p.sources_json) == {
        "smoking_status": "participant-file",
        "sex": "dicom",
        "birth_date": "dicom",
        "height_m": "dicom",
        "weight_kg": "dicom",
    }
    engine.dispose()


def test_export_and_audit_commands(tmp_path: Path) -> None:
    from tests.support.cohort import CohortSpec, build_cohort

    config = tmp_path / "noduled.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "var"}"\n[registry]\npseudonym_key = "k"\nfacility_id = "F1"\n'
    )
    engine = open_index(f"sqlite:///{tmp_path / 'var' / 'index.sqlite'}")
    cohort = build_cohort(engine, CohortSpec(participants=12))
    engine.dispose()
    runner = CliRunner()
    span = ["--from", "2021-01-01", "--to", "2026-06-30"]
    out = tmp_path / "lcsr.txt"
    r = runner.invoke(app, ["export", "--format", "lcsr", *span, "--out", str(out), "-c", str(config)])
    assert r.exit_code == 0, r.output
    kept = [e for e in cohort.exams if not e.opted_out]
    assert out.read_bytes().count(b"\r\n") == len(kept) + 1 and (tmp_path / "lcsr.missing.txt").exists()
    r = runner.invoke(app, ["export", "--format", "fhir", *span, "--out", str(tmp_path / "b.json"), "-c", str(config)])
    assert r.exit_code == 0 and json.loads((tmp_path / "b.json").read_text())["resourceType"] == "Bundle"
    r = runner.invoke(
        app, ["audit", *span, "--as-of", "2026-06-30", "--out", str(tmp_path / "a.html"), "-c", str(config)]
    )
    assert r.exit_code == 0, r.output
    assert f"{len(kept)} exams of" in r.output and "<img" in (tmp_path / "a.html").read_text()
    r = runner.invoke(
        app, ["export", "--format", "csv", "--from", "2026-01-01", "--to", "2025-01-01", "-c", str(config)]
    )
    assert r.exit_code == 2 and "--to 2025-01-01 is before --from 2026-01-01" in r.output
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "var"}"\n')
    r = runner.invoke(app, ["audit", *span, "--out", str(tmp_path / "b.html"), "-c", str(config)])
    assert r.exit_code == 2 and "set [registry] pseudonym_key" in r.output
