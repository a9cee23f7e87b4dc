"""From "study arrived" to "report in PACS", end to end with a real Orthanc.

Orthanc forwards a phantom screening study with the reader's seeds (SR in
one study, GSPS in another) to noduled; noduled analyses it and stores an SR
and a SEG back into Orthanc, in the same study.  Fault tests: destination
down, SIGKILL mid-analysis, an unusable CT, and two studies on concurrent
associations.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_sr.read_report import read_report
from nlcsp.cases import assessment_to_json, parse_case
from nlcsp.categorize import assess
from tests.support.servers import NodedServer, OrthancServer, free_port

pytestmark = pytest.mark.integration

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"
SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _write_case(out: Path, case: str, seed: int) -> dict:
    from test_images import generate_case, write_study

    study = generate_case(case, size="small", seed=seed)[0]
    paths = write_study(study, out)
    truth = json.loads(Path(paths["truth"]).read_text())
    return {"paths": paths, "truth": truth, "study": study}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("phantoms")
    return {
        "sr": _write_case(root / "a", "solid-sizes", 0),
        "gsps": _write_case(root / "b", "solid-sizes", 1),
    }


def expected_assessment(case: dict, upper_lobe: dict[str, bool] | None = None) -> dict:
    """What truth.json implies: the protocol engine on the true sizes.

    ``upper_lobe`` (truth id -> flag) replaces the true lobe by the one noduled
    reported: lobes are approximated from the lung shape, which a cropped test
    field of view cannot show whole (characterization tests check lobes).
    """
    study = case["study"]
    nodules = []
    for n in case["truth"]["nodules"]:
        nodules.append(
            {
                "id": n["id"],
                "composition": n["composition"],
                "volume_mm3": n["volume_mm3"],
                "mean_diameter_mm": n["mean_diameter_mm"],
                "max_axial_diameter_mm": n["max_axial_diameter_mm"],
                "upper_lobe": (upper_lobe or {}).get(n["id"], bool(n.get("upper_lobe"))),
            }
        )
    case_json = {
        "schema": "noduled.case/1",
        "exam_date": study.study_date.isoformat(),
        "screening_round": "baseline",
        "participant": {"age_years": study.patient["age_years"], "sex": study.patient["sex"]},
        "nodules": nodules,
    }
    return assessment_to_json(assess(parse_case(case_json)))


def expected_statuses(study, round_: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Growth status per truth nodule: the protocol engine (note 6) on the true volumes and dates."""
    nodules = []
    for n in study.nodules:
        priors = [
            {"date": p["study_date"], "volume_mm3": p["prior_volume_mm3"]}
            for p in n["growth"]["priors"]
            if p.get("present") and p.get("prior_volume_mm3")
        ]
        nodules.append(
            {
                "id": n["id"],
                "composition": n["composition"],
                "volume_mm3": n["volume_mm3"],
                "mean_diameter_mm": n["mean_diameter_mm"],
                "max_axial_diameter_mm": n["max_axial_diameter_mm"],
                "solid_component_volume_mm3": n.get("solid_volume_mm3") if n["composition"] == "part-solid" else None,
                "priors": priors,
            }
        )
    case = {
        "schema": "noduled.case/1",
        "exam_date": study.study_date.isoformat(),
        "screening_round": round_,
        "participant": {"age_years": study.patient["age_years"], "sex": study.patient["sex"]},
        "nodules": nodules,
    }
    return {n["id"]: n["status"] for n in assessment_to_json(assess(parse_case(case)))["nodules"]}


def ct_and(paths: dict, *seed_keys: str) -> list[Path]:
    return [Path(p) for p in paths["ct"]] + [Path(paths[k]) for k in seed_keys]


def reports_in(pacs: OrthancServer, study_uid: str) -> dict[str, list[str]]:
    """SOP class -> Orthanc instance IDs of noduled's objects in the study."""
    found = pacs.rest("POST", "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
    out: dict[str, list[str]] = {}
    for study_id in found:  # type: ignore[union-attr]
        for inst in pacs.rest("GET", f"/studies/{study_id}/instances"):  # type: ignore[union-attr]
            tags = pacs.rest("GET", f"/instances/{inst['ID']}/simplified-tags")
            if str(tags.get("Manufacturer", "")).lower() == "noduled":  # type: ignore[union-attr]
                out.setdefault(tags["SOPClassUID"], []).append(inst["ID"])  # type: ignore[index]
    return out


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.25):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def analysis_state(node: NodedServer, study_uid: str) -> dict:
    for study in node.status()["studies"]:
        if study["study_uid"] == study_uid:
            return study.get("analysis") or {}
    return {}


def dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def node_config(pacs_port: int | None, *, key_images: bool = True, **analysis) -> dict:  # type: ignore[no-untyped-def]
    config: dict = {
        "report": {"key_images": key_images, "pdf": key_images},
        "scp": {"allowed_peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1"}, {"ae_title": "STORESCU"}]},
        "analysis": {"stable_age_s": 1.0, **analysis},
        "queue": {"workers": 1},
        "delivery": {"retry_initial_s": 0.5, "retry_max_s": 1.0},
    }
    if pacs_port is not None:
        config["destinations"] = [{"ae_title": "ORTHANC", "host": "127.0.0.1", "port": pacs_port}]
    return config


def _check_report(pacs: OrthancServer, case: dict, tmp: Path) -> None:
    study_uid = case["truth"]["study_uid"]
    objects = wait_for(
        lambda: (r := reports_in(pacs, study_uid)) and SR_CLASS in r and SEG_CLASS in r and r,
        60,
        "SR and SEG in Orthanc",
    )
    assert len(objects[SR_CLASS]) == 1 and len(objects[SEG_CLASS]) == 1
    sr_path, seg_path = tmp / f"{study_uid}-sr.dcm", tmp / f"{study_uid}-seg.dcm"
    sr_path.write_bytes(pacs.rest("GET", f"/instances/{objects[SR_CLASS][0]}/file"))  # type: ignore[arg-type]
    seg_path.write_bytes(pacs.rest("GET", f"/instances/{objects[SEG_CLASS][0]}/file"))  # type: ignore[arg-type]
    assert dciodvfy_errors(sr_path) == [] and dciodvfy_errors(seg_path) == []
    sr = dcmread(sr_path)
    assert sr.StudyInstanceUID == study_uid and sr.PatientID == case["study"].patient["id"]

    got = read_report(sr).assessment
    assert got is not None
    truth_nodules = case["truth"]["nodules"]
    assert len(got.findings) == len(truth_nodules)

    def truth_of(finding):  # type: ignore[no-untyped-def]
        c = finding.measurement.centroid_lps_mm
        return min(truth_nodules, key=lambda n: sum((a - b) ** 2 for a, b in zip(n["centroid_lps_mm"], c)))

    reported_lobe = {
        truth_of(f)["id"]: bool(f.characterization.upper_lobe and f.characterization.upper_lobe.value)
        for f in got.findings
    }
    want = expected_assessment(case, reported_lobe)
    assert got.category == want["category"]
    for finding in got.findings:
        m = finding.measurement
        assert m is not None, finding.error
        true = truth_of(finding)
        if true["mean_diameter_mm"] < 4.0:  # below the volumetry range of the accuracy targets: size by diameter
            assert abs(m.mean_diameter_mm - true["mean_diameter_mm"]) <= 1.5, (
                finding.tracking_id,
                m.mean_diameter_mm,
                true["mean_diameter_mm"],
            )
        else:
            # the SR's volume is in the radiologists' outline convention: the physical (phantom truth) volume
            # plus the blurred-edge shell the outline encloses (+7 % at 30 mm to +25 % at 5 mm on the phantoms,
            # segmentation.nodule.reported_in_readers_convention), so: at least the truth, at most the truth
            # with a 0.35 mm shell, each within the accuracy tolerance
            tolerance = 0.15 if true["mean_diameter_mm"] < 5 else 0.06
            d = true["mean_diameter_mm"]
            shell = ((d + 2 * 0.35) / d) ** 3
            low, high = (1 - tolerance) * true["volume_mm3"], (1 + tolerance) * shell * true["volume_mm3"]
            assert low <= m.volume_mm3 <= high, (finding.tracking_id, m.volume_mm3, true["volume_mm3"], low, high)
        want_cat = next(n["category"] for n in want["nodules"] if n["id"] == true["id"])
        assert abs(int(finding.category) - int(want_cat)) <= 1, (finding.tracking_id, finding.category, want_cat)


def test_orthanc_forwards_studies_and_gets_sr_and_seg_back(noduled_server, orthanc, phantoms, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pacs_port = free_port()
    node = noduled_server(node_config(pacs_port))
    pacs = OrthancServer(
        tmp_path / "pacs", modalities={"noduled": [node.ae_title, "127.0.0.1", node.port]}, dicom_port=pacs_port
    ).start()
    try:
        for key, seeds in (("sr", "sr"), ("gsps", "gsps")):
            case = phantoms[key]
            uploaded = pacs.upload(ct_and(case["paths"], seeds))
            pacs.rest("POST", "/modalities/noduled/store", uploaded[0]["ParentStudy"].encode())
        for key in ("sr", "gsps"):
            _check_report(pacs, phantoms[key], tmp_path)
        for key in ("sr", "gsps"):
            assert analysis_state(node, phantoms[key]["truth"]["study_uid"])["state"] == "done"

        # SR + SEG per study, and ([report] key_images, pdf: on by default) the key-image series
        # (one Secondary Capture per measured nodule plus a summary) and the PDF report, per study
        def find(sop_class: str) -> list:
            found = pacs.rest("POST", "/tools/find", {"Level": "Instance", "Query": {"SOPClassUID": sop_class}})
            assert isinstance(found, list)
            return found

        key_images, pdfs = find("1.2.840.10008.5.1.4.1.1.7"), find("1.2.840.10008.5.1.4.1.1.104.1")
        assert len(key_images) >= 2 * 2 and len(pdfs) == 2
        assert node.status()["outbox"]["delivered"] == 4 + len(key_images) + len(pdfs)
        log = node.log()
        for pid in (phantoms["sr"]["study"].patient["id"], phantoms["gsps"]["study"].patient["id"]):
            assert pid not in log  # no patient identifiers in the log
    finally:
        pacs.stop()


def storescu(port: int, files: list[Path]) -> subprocess.Popen:
    return subprocess.Popen(
        ["storescu", "-aec", "NODULED", "127.0.0.1", str(port), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_destination_down_during_analysis_is_delivered_when_it_comes_back(
    noduled_server, phantoms, tmp_path, dcmtk
) -> None:  # type: ignore[no-untyped-def]
    case = phantoms["sr"]
    pacs_port = free_port()
    node = noduled_server(node_config(pacs_port, key_images=False))  # counts SR + SEG only
    assert storescu(node.port, ct_and(case["paths"], "sr")).wait(timeout=120) == 0
    study_uid = case["truth"]["study_uid"]
    wait_for(lambda: analysis_state(node, study_uid).get("state") == "done", 60, "the analysis")
    outbox = wait_for(
        lambda: (o := node.status()["outbox"]) and o["recent_errors"] and o, 20, "a failed delivery attempt"
    )
    assert outbox["pending"] == 2 and outbox["delivered"] == 0
    assert "127.0.0.1" in json.dumps(outbox["recent_errors"])
    pacs = OrthancServer(tmp_path / "late-pacs", dicom_port=pacs_port).start()
    try:
        objects = wait_for(
            lambda: (r := reports_in(pacs, study_uid)) and SR_CLASS in r and SEG_CLASS in r and r,
            30,
            "delivery after the PACS came back",
        )
        assert len(objects[SR_CLASS]) == 1
        assert wait_for(lambda: node.status()["outbox"]["delivered"] == 2, 10, "the outbox to record the delivery")
    finally:
        pacs.stop()


def test_sigkill_mid_analysis_analyses_once_more_and_delivers_once(noduled_server, orthanc, phantoms, dcmtk) -> None:  # type: ignore[no-untyped-def]
    case = phantoms["gsps"]
    study_uid = case["truth"]["study_uid"]
    pacs = orthanc()
    node = noduled_server(node_config(pacs.dicom_port, key_images=False))  # counts SR + SEG only
    assert storescu(node.port, ct_and(case["paths"], "gsps")).wait(timeout=120) == 0
    wait_for(
        lambda: analysis_state(node, study_uid).get("state") == "running", 30, "the analysis to start", interval_s=0.05
    )
    node.kill()
    assert analysis_state(node, study_uid).get("state") == "running"
    node.start()
    wait_for(lambda: analysis_state(node, study_uid).get("state") == "done", 60, "the analysis after the restart")
    objects = wait_for(
        lambda: (r := reports_in(pacs, study_uid)) and SR_CLASS in r and SEG_CLASS in r and r,
        30,
        "SR and SEG in Orthanc",
    )
    assert len(objects[SR_CLASS]) == 1 and len(objects[SEG_CLASS]) == 1
    log = node.log()
    assert len(re.findall(rf"study {re.escape(study_uid)} analysed", log)) == 1
    assert f"study {study_uid}: analysis interrupted (restart or dead worker), queued again" in log
    time.sleep(2)  # nothing is analysed or sent again afterwards
    assert len(re.findall(rf"study {re.escape(study_uid)} analysed", node.log())) == 1
    assert node.status()["outbox"]["delivered"] == 2


def test_unusable_ct_fails_with_its_reason_and_others_continue(noduled_server, phantoms, tmp_path, dcmtk) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken"
    shutil.copytree(Path(phantoms["sr"]["paths"]["ct_dir"]), broken)
    ct = sorted(broken.iterdir())
    ct[len(ct) // 2].unlink()  # a slice missing in the middle of the series
    node = noduled_server(node_config(None))
    bad = storescu(node.port, sorted(broken.iterdir()) + [Path(phantoms["sr"]["paths"]["sr"])])
    good = storescu(node.port, ct_and(phantoms["gsps"]["paths"], "gsps"))
    assert bad.wait(timeout=120) == 0 and good.wait(timeout=120) == 0
    bad_uid, good_uid = phantoms["sr"]["truth"]["study_uid"], phantoms["gsps"]["truth"]["study_uid"]
    failed = wait_for(
        lambda: (a := analysis_state(node, bad_uid)) and a.get("state") == "failed" and a,
        60,
        "the broken study to fail",
    )
    assert "slice" in failed["reason"] and "spacing" in failed["reason"], failed["reason"]
    assert wait_for(lambda: analysis_state(node, good_uid).get("state") == "done", 60, "the good study")
    assert f"study {bad_uid}: analysis failed:" in node.log()


def test_two_studies_interleaved_on_concurrent_associations(noduled_server, phantoms, dcmtk) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server(node_config(None))
    a = phantoms["sr"]
    b = phantoms["gsps"]
    senders = [storescu(node.port, ct_and(a["paths"], "sr")), storescu(node.port, ct_and(b["paths"], "gsps"))]
    assert [s.wait(timeout=120) for s in senders] == [0, 0]
    for case in (a, b):
        uid = case["truth"]["study_uid"]
        state = wait_for(
            lambda: (s := analysis_state(node, uid)) and s.get("state") == "done" and s, 90, f"analysis of {uid}"
        )
        assert state["category"] in (
            "4",
            "5",
        )  # the 28 mm nodule of solid-sizes (exact categories: the forwarding test)
        assert len([n for n in node.status()["studies"] if n["study_uid"] == uid]) == 1


def test_ct_without_seeds_awaits_them_and_new_seeds_replace_the_report(noduled_server, phantoms, dcmtk) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    case = phantoms["sr"]
    uid = case["truth"]["study_uid"]
    http_port = free_port()
    node = noduled_server({**node_config(None), "http": {"enabled": True, "host": "127.0.0.1", "port": http_port}})
    assert storescu(node.port, [Path(p) for p in case["paths"]["ct"]]).wait(timeout=120) == 0
    assert wait_for(lambda: analysis_state(node, uid).get("state") == "awaiting-seeds", 20, "awaiting seeds")
    assert storescu(node.port, [Path(case["paths"]["sr"])]).wait(timeout=60) == 0
    first = wait_for(
        lambda: (a := analysis_state(node, uid)) and a.get("state") == "done" and a,
        60,
        "the analysis once seeds arrived",
    )

    # the reader adds a presentation state: re-analysis, a new SR replacing the first
    assert storescu(node.port, [Path(case["paths"]["gsps"])]).wait(timeout=60) == 0
    second = wait_for(
        lambda: (
            (a := analysis_state(node, uid))
            and a.get("state") == "done"
            and a["report_sop_uid"] != first["report_sop_uid"]
            and a
        ),
        60,
        "the re-analysis",
    )
    srs = {
        dcmread(p).SOPInstanceUID: dcmread(p)
        for p in (node.data_dir / "archive" / uid).rglob("*.dcm")
        if dcmread(p, stop_before_pixels=True).Modality == "SR"
        and dcmread(p, stop_before_pixels=True).Manufacturer == "noduled"
    }
    assert set(srs) == {first["report_sop_uid"], second["report_sop_uid"]}
    newer, older = srs[second["report_sop_uid"]], srs[first["report_sop_uid"]]
    ref = newer.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == first["report_sop_uid"]
    old_uids = {f.tracking_uid for f in read_report(older).assessment.findings}
    new_uids = {f.tracking_uid for f in read_report(newer).assessment.findings}
    assert new_uids == old_uids  # the same nodules keep their tracking UIDs

    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=10) as rsp:
        assert rsp.status == 200 and json.loads(rsp.read())["status"] == "ok"
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as rsp:
        metrics_text = rsp.read().decode()
    assert 'noduled_studies_analysed_total{outcome="done"} 2.0' in metrics_text
    assert 'noduled_instances_received_total{outcome="stored"}' in metrics_text


@pytest.mark.parametrize("case", ["growth", "slow-growth", "ggn-growth"])
def test_rounds_are_compared_with_the_priors_in_the_archive(noduled_server, tmp_path, dcmtk, case) -> None:  # type: ignore[no-untyped-def]
    """Longitudinal phantoms, one round at a time on one node: every follow-up round is assessed as
    such, each nodule keeps its tracking UID across all rounds and gets the growth status truth.json states."""
    from test_images import write_study
    from tests.support.phantoms import generated_case

    studies = generated_case(case, size="small", seed=0)  # rendered once per process (test_priors_pipeline too)
    written = [write_study(s, tmp_path / f"t{i}") for i, s in enumerate(studies)]
    node = noduled_server(node_config(None))
    reports = []
    for study, paths in zip(studies, written):
        assert storescu(node.port, ct_and(paths, "sr")).wait(timeout=120) == 0
        state = wait_for(
            lambda: (a := analysis_state(node, study.study_uid)) and a.get("state") == "done" and a, 120, "the analysis"
        )
        sr_path = next(
            p
            for p in (node.data_dir / "archive" / study.study_uid).rglob("*.dcm")
            if dcmread(p, stop_before_pixels=True).SOPInstanceUID == state["report_sop_uid"]
        )
        reports.append(read_report(dcmread(sr_path)).assessment)
    assert [r.screening_round for r in reports] == ["baseline"] + ["follow-up"] * (len(studies) - 1)

    def truth_of(finding, study):  # type: ignore[no-untyped-def]
        c = finding.measurement.centroid_lps_mm
        return min(study.nodules, key=lambda n: sum((a - b) ** 2 for a, b in zip(n["centroid_lps_mm"], c)))

    uid_of: dict[str, str] = {}  # truth tracking UID -> ours, fixed at first sight
    for k, (study, report) in enumerate(zip(studies, reports)):
        expected = expected_statuses(study, round_="follow-up" if k else "baseline")
        for f in report.findings:
            truth = truth_of(f, study)
            assert f.status == expected[truth["id"]], (
                case,
                study.study_date,
                truth["id"],
                f.status,
                expected[truth["id"]],
            )
            assert (
                uid_of.setdefault(truth["tracking_uid"], f.tracking_uid) == f.tracking_uid
            )  # stable across all rounds
    if studies[-1].truth.get("resolved_nodules"):
        assert any("(resolved)" in note for note in reports[-1].notes)
