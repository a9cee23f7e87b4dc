"""End to end with Orthanc: a phantom study forwarded with its CT Radiation Dose SR gets CTDIvol and DLP
into the exam record and the LCSR export; the participant's own family history reaches PanCan."""

from __future__ import annotations

import subprocess

import pytest
from sqlalchemy import select

from daemon.storage.db import open_index
from daemon.storage.schema import dose_events, exams
from dicom_sr.read_report import read_report
from test_images.dose_sr import dose_events as phantom_dose_events
from test_images.dose_sr import dose_sr
from tests.integration.test_pipeline_orthanc import SR_CLASS, analysis_state, ct_and, node_config, reports_in, wait_for
from tests.support.servers import NODULED, OrthancServer, free_port

pytestmark = pytest.mark.integration


def test_dose_sr_forwarded_with_the_study_reaches_the_exam_record_and_the_export(noduled_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from test_images import generate_case, write_study

    study = generate_case("solid-sizes", size="small", seed=0)[0]
    paths = write_study(study, tmp_path / "study")
    dose_path = tmp_path / "study" / "dose_sr.dcm"
    dose_sr(study, ctdivol_mgy=1.9).save_as(dose_path, enforce_file_format=True)
    expected = phantom_dose_events(study, ctdivol_mgy=1.9)

    pacs_port = free_port()
    config = node_config(pacs_port)
    config["registry"] = {"pseudonym_key": "e2e-key", "facility_id": "SITE-E2E"}
    node = noduled_server(config, start=False)
    participants_csv = tmp_path / "participants.csv"
    participants_csv.write_text(
        "patient_id,smoking_status,pack_years,family_history_lung_cancer,consent\n"
        f"{study.patient['id']},current,45,yes,consented\n"
    )
    run = subprocess.run(
        [NODULED, "participants", "import", str(participants_csv), "-c", str(node.config_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    node.start()
    pacs = OrthancServer(
        tmp_path / "pacs", modalities={"noduled": [node.ae_title, "127.0.0.1", node.port]}, dicom_port=pacs_port
    ).start()
    try:
        uploaded = pacs.upload([*ct_and(paths, "sr"), dose_path])
        pacs.rest("POST", "/modalities/noduled/store", uploaded[0]["ParentStudy"].encode())
        wait_for(lambda: analysis_state(node, study.study_uid).get("state") == "done", 120, "the analysis")
        objects = wait_for(
            lambda: (r := reports_in(pacs, study.study_uid)) and SR_CLASS in r and r, 60, "the SR in Orthanc"
        )
        sr_path = tmp_path / "sr.dcm"
        sr_path.write_bytes(pacs.rest("GET", f"/instances/{objects[SR_CLASS][0]}/file"))  # type: ignore[arg-type]
    finally:
        pacs.stop()
        node.stop()

    engine = open_index(f"sqlite:///{node.data_dir / 'index.sqlite'}")
    with engine.connect() as conn:
        exam = conn.execute(select(exams).where(exams.c.study_uid == study.study_uid)).one()
        events = conn.execute(
            select(dose_events).where(dose_events.c.study_uid == study.study_uid).order_by(dose_events.c.id)
        ).all()
    engine.dispose()
    assert exam.dose_source == "ct-dose-sr"
    assert exam.ctdivol_mgy == pytest.approx(1.9)
    assert exam.dlp_total_mgycm == pytest.approx(round(sum(e.dlp_mgycm for e in expected), 2))
    sr_events = [e for e in events if e.source == "ct-dose-sr"]
    assert [e.event_uid for e in sr_events] == [e.event_uid for e in expected]
    assert [bool(e.screening) for e in sr_events] == [False, True]  # the localiser is not the screening series
    image = next(e for e in events if e.source == "ct-image")
    assert image.ctdivol_mgy == pytest.approx(float(study.acquisition.get("ctdivol_mgy", 1.1)))
    assert '"family_history_lung_cancer": "participant-file"' in exam.participant_sources_json
    assert '"emphysema": "site-config"' in exam.participant_sources_json
    contents = read_report(__import__("pydicom").dcmread(sr_path))
    assert contents.assessment is not None and contents.assessment.participant is not None
    assert (
        contents.assessment.participant.family_history_lung_cancer is True
    )  # the participant's own answer reached PanCan

    out = tmp_path / "lcsr_exam.txt"
    run = subprocess.run(
        [
            NODULED,
            "export",
            "--format",
            "lcsr",
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--out",
            str(out),
            "-c",
            str(node.config_path),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    header, record = out.read_bytes().decode().split("\r\n")[:2]
    row = dict(zip(header.split("|"), record.split("|")))
    assert row["CTDIvol_mGy"] == "1.90" and row["DLP_mGy_cm"] == f"{exam.dlp_total_mgycm:.2f}"
    assert (
        row["Facility_ID"] == "SITE-E2E"
        and row["Smoking_Status"] == "Current smoker"
        and row["Family_History_Lung_Cancer"] == "Y"
    )
    assert row["Patient_ID"].startswith("P") and study.patient["id"] not in out.read_text()
    side = out.with_name("lcsr_exam.missing.txt").read_text()
    assert "CT_Exam_Result_Lung_RADS: empty in 1 of 1 records" in side
