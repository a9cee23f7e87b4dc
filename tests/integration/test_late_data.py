"""Late data (issue 18): CT slices that arrive after the study was analysed make a new report.

A real ``noduled serve`` receiving from DCMTK ``storescu``: the study is complete when the
association is released (plus ``release_quiet_s``), so a pause in forwarding used to leave a
report on part of the series for good.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_sr.read_report import read_report
from tests.integration.test_pipeline_orthanc import analysis_state, node_config, storescu, wait_for

pytestmark = pytest.mark.integration


def test_late_ct_slices_make_a_new_report_referencing_the_first(noduled_server, tmp_path, dcmtk) -> None:  # type: ignore[no-untyped-def]
    from test_images import render_single_nodule, write_study

    study = render_single_nodule("solid", 8.0, seed=5)
    paths = write_study(study, tmp_path / "study")
    ct = [Path(p) for p in paths["ct"]]
    held_back = ct[-8:]  # the last slices, forwarded after a pause (the nodule is in the middle)
    node = noduled_server(node_config(None, release_quiet_s=0.5, stable_age_s=30.0))
    assert storescu(node.port, [*ct[:-8], Path(paths["sr"])]).wait(timeout=120) == 0
    first = wait_for(
        lambda: (a := analysis_state(node, study.study_uid)) and a.get("state") in ("done", "failed") and a,
        60,
        "the analysis of the partial series",
    )
    assert first["state"] == "done", first
    assert storescu(node.port, held_back).wait(timeout=60) == 0
    second = wait_for(
        lambda: (
            (a := analysis_state(node, study.study_uid))
            and a.get("state") == "done"
            and a["report_sop_uid"] != first["report_sop_uid"]
            and a
        ),
        60,
        "the re-analysis on the whole series",
    )
    archive = node.data_dir / "archive" / study.study_uid
    srs = {}
    for p in archive.rglob("*.dcm"):
        ds = dcmread(p)
        if ds.Modality == "SR" and ds.Manufacturer == "noduled":
            srs[ds.SOPInstanceUID] = ds
    assert set(srs) == {first["report_sop_uid"], second["report_sop_uid"]}
    newer, older = srs[second["report_sop_uid"]], srs[first["report_sop_uid"]]
    ref = newer.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == first["report_sop_uid"]
    assert {f.tracking_uid for f in read_report(newer).assessment.findings} == {
        f.tracking_uid for f in read_report(older).assessment.findings
    }
    images = {
        str(r.ReferencedSOPInstanceUID)
        for item in newer.CurrentRequestedProcedureEvidenceSequence
        for s in item.ReferencedSeriesSequence
        for r in s.ReferencedSOPSequence
    }
    assert {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in held_back} <= images
