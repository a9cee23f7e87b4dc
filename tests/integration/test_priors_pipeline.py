"""Priors from PACS, end to end: a node that holds nothing fetches the patient's prior study
(CT and noduled's earlier report) from a real Orthanc by C-MOVE or C-GET, and reports the
follow-up round with the nodules' identities carried over."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_sr.read_report import read_report
from tests.integration.test_pipeline_orthanc import SR_CLASS, analysis_state, ct_and, reports_in, wait_for
from tests.support.servers import OrthancServer, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def growth(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from test_images import generate_case, write_study

    root = tmp_path_factory.mktemp("growth-pacs")
    studies = generate_case("growth", size="small", seed=0)
    return {"studies": studies, "written": [write_study(s, root / f"t{i}") for i, s in enumerate(studies)]}


def _node(noduled_server, name: str, pacs_port: int, retrieve: str, ae_title: str = "NODULED"):  # type: ignore[no-untyped-def]
    return noduled_server(
        {
            "scp": {"ae_title": ae_title, "allowed_peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1"}]},
            "analysis": {"stable_age_s": 1.0},
            "queue": {"workers": 1},
            "delivery": {"retry_initial_s": 0.5, "retry_max_s": 1.0},
            "destinations": [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port}],
            "pacs": {"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port, "retrieve": retrieve},
        },
        name=name,
        start=False,
    )


@pytest.mark.parametrize("retrieve", ["c-move", "c-get"])
def test_fresh_node_fetches_prior_and_report_from_pacs(noduled_server, growth, tmp_path, retrieve, dcmtk) -> None:  # type: ignore[no-untyped-def]
    studies, written = growth["studies"], growth["written"]
    pacs_port = free_port()
    first = _node(noduled_server, "round1", pacs_port, retrieve)
    second = _node(noduled_server, "round2", pacs_port, retrieve, ae_title="NODULED2")  # the PACS knows each node by its AE
    pacs = OrthancServer(
        tmp_path / "pacs",
        dicom_port=pacs_port,
        modalities={"round1": ["NODULED", "127.0.0.1", first.port], "round2": ["NODULED2", "127.0.0.1", second.port]},
    ).start()
    try:
        # round 1 (baseline) on one node; its SR lands in the PACS
        first.start()
        up = pacs.upload(ct_and(written[0], "sr"))
        pacs.rest("POST", "/modalities/round1/store", up[0]["ParentStudy"].encode())
        wait_for(lambda: SR_CLASS in reports_in(pacs, studies[0].study_uid), 90, "the baseline SR in the PACS")
        first.stop()
        baseline = read_report(
            dcmread(next(p for p in (first.data_dir / "archive" / studies[0].study_uid).rglob("*.dcm") if dcmread(p, stop_before_pixels=True).Modality == "SR" and dcmread(p, stop_before_pixels=True).Manufacturer == "noduled"))
        ).assessment

        # round 2 on a freshly installed node holding nothing
        second.start()
        up = pacs.upload(ct_and(written[1], "sr"))
        pacs.rest("POST", "/modalities/round2/store", up[0]["ParentStudy"].encode())
        state = wait_for(lambda: (a := analysis_state(second, studies[1].study_uid)) and a.get("state") == "done" and a, 120, "the follow-up analysis")
        sr_path = next(p for p in (second.data_dir / "archive" / studies[1].study_uid).rglob("*.dcm") if dcmread(p, stop_before_pixels=True).SOPInstanceUID == state["report_sop_uid"])
        follow_up = read_report(dcmread(sr_path)).assessment
    finally:
        pacs.stop()

    assert studies[0].study_uid in {s["study_uid"] for s in second.status()["studies"]}  # the prior was fetched
    assert follow_up.screening_round == "follow-up"

    def truth_of(finding, study):  # type: ignore[no-untyped-def]
        c = finding.measurement.centroid_lps_mm
        return min(study.nodules, key=lambda n: sum((a - b) ** 2 for a, b in zip(n["centroid_lps_mm"], c)))

    base_uid = {truth_of(f, studies[0])["tracking_uid"]: f.tracking_uid for f in baseline.findings}
    for f in follow_up.findings:
        truth = truth_of(f, studies[1])
        assert f.status == truth["growth"]["status"], (truth["id"], f.status)
        if truth["growth"]["status"] != "new":
            assert f.tracking_uid == base_uid[truth["tracking_uid"]]  # identity carried over from the PACS's SR


def test_pacs_down_makes_the_study_wait_with_the_reason(noduled_server, growth, dcmtk) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    node = _node(noduled_server, "lonely", free_port(), "c-get").start()
    files = ct_and(growth["written"][1], "sr")
    assert subprocess.run(["storescu", "-aet", "ORTHANC", "-aec", "NODULED", "127.0.0.1", str(node.port), *map(str, files)], capture_output=True).returncode == 0
    state = wait_for(lambda: (a := analysis_state(node, growth["studies"][1].study_uid)) and a.get("state") == "waiting-priors" and a, 60, "waiting for priors")
    assert state["reason"].startswith("waiting for prior study from PACS:") and "Connection refused" in state["reason"]
