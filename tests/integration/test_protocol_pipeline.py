"""End to end with ``[analysis] protocol = "lung-rads-2022"`` (and NLCSP as the audit protocol): a phantom
study stored into a running node is reported in Lung-RADS v2022 -- in the SR, in ``noduled status`` and in
the longitudinal record -- and the NLCSP category is recorded alongside, not reported."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_sr.read_report import read_report
from tests.integration.test_pipeline_orthanc import analysis_state, ct_and, node_config, storescu, wait_for

pytestmark = pytest.mark.integration
LUNG_RADS = ("0", "1", "2", "3", "4A", "4B", "4X")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from test_images import generate_case, write_study

    study = generate_case("solid-sizes", size="small", seed=0)[0]
    return {"paths": write_study(study, tmp_path_factory.mktemp("lr-phantom")), "study": study}


def test_a_lung_rads_site_reports_lung_rads_in_sr_status_and_record(noduled_server, phantom, dcmtk) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server(node_config(None, protocol="lung-rads-2022", audit_protocol="nlcsp"))
    sender = storescu(node.port, ct_and(phantom["paths"], "sr"))
    assert sender.wait(timeout=120) == 0
    uid = phantom["study"].study_uid
    state = wait_for(lambda: (a := analysis_state(node, uid)) and a.get("state") == "done" and a, 120, "the analysis")
    # noduled status: the category and the protocol it belongs to
    assert state["protocol"] == "lung-rads-2022" and state["protocol_version"] == "v2022"
    assert state["category"].rstrip("S") in LUNG_RADS
    # the longitudinal record
    db = sqlite3.connect(node.data_dir / "index.sqlite")
    row = db.execute(
        "select category, protocol, protocol_version, audit_protocol, audit_category, assessment_json,"
        " audit_assessment_json, report_sop_uid from assessments where study_uid = ?",
        (uid,),
    ).fetchone()
    category, protocol, version, audit_protocol, audit_category, doc, audit_doc, sr_uid = row
    assert (protocol, version, audit_protocol) == ("lung-rads-2022", "v2022", "nlcsp")
    assert category == state["category"].rstrip("S") and json.loads(doc)["protocol"] == "lung-rads-2022"
    assert audit_category in list("0123456") and json.loads(audit_doc)["category"] == audit_category
    nodules = [r[0] for r in db.execute("select category from nodule_observations where report_sop_uid = ?", (sr_uid,))]
    assert nodules and all(c in LUNG_RADS for c in nodules if c is not None)
    # the SR the node wrote (in its archive)
    reports = [p for p in Path(node.data_dir).rglob("*") if p.is_file() and _is_sr(p, sr_uid)]
    assert reports, "the SR is in the node's archive"
    back = read_report(dcmread(reports[0])).assessment
    assert back is not None and (back.protocol, back.protocol_version, back.category) == (
        "lung-rads-2022",
        "v2022",
        category,
    )
    assert sorted(f.category for f in back.findings if f.category) == sorted(c for c in nodules if c)
    db.close()


def _is_sr(path: Path, sop_uid: str) -> bool:
    try:
        return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID) == sop_uid
    except Exception:  # noqa: BLE001 - any non-DICOM file of the data dir
        return False
