"""Seeds saved by OHIF 3.13 itself find their nodules through ``noduled analyze``.

The two SRs in the shared real-data folder were saved by OHIF 3.13 (STOW to Orthanc) on the
``noduled phantom multi --size small`` study (same UIDs): a Length, and a Bidirectional, Ellipse,
Circle, Probe and Arrow on nodules 6, 3, 7, 5 and 2.  The arrow's first point is its head.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dicom_sr.read_report import read_report

SHARED = Path("/work/shared/realdata/third-party-objects")
OHIF_SRS = [SHARED / "ohif-3.13-length-sr.dcm", SHARED / "ohif-3.13-multi-tool-sr.dcm"]
NODULED = str(Path(sys.executable).with_name("noduled"))


@pytest.mark.skipif(not all(p.exists() for p in OHIF_SRS), reason="shared real-data folder is not mounted")
def test_every_ohif_tool_seed_finds_its_nodule(tmp_path):
    subprocess.run(
        [NODULED, "phantom", "multi", "--size", "small", "--out", str(tmp_path / "case")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (study,) = sorted((tmp_path / "case").glob("study*"))
    args = [NODULED, "analyze", str(study / "CT"), "-o", str(tmp_path / "out")]
    for p in OHIF_SRS:
        args += ["-s", str(p)]
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    truth = json.loads((tmp_path / "case" / "truth.json").read_text())["studies"][0]["nodules"]
    findings = read_report(tmp_path / "out" / "report.dcm").assessment.findings
    assert len(findings) == 6  # Length + Bidirectional, Ellipse, Circle, Probe, Arrow
    found = set()
    for f in findings:
        assert f.measurement is not None, f"{f.tracking_id} (seed {f.seed and f.seed.tracking_id}): {f.error}"
        d = [
            np.linalg.norm(np.asarray(f.measurement.centroid_lps_mm) - np.asarray(t["centroid_lps_mm"])) for t in truth
        ]
        k = int(np.argmin(d))
        assert d[k] < 1.5, f"{f.tracking_id} measured {d[k]:.1f} mm from the nearest true nodule"
        found.add(k + 1)
    assert {6, 3, 7, 5, 2} <= found  # the multi-tool SR's nodules, the arrow's (2) included
