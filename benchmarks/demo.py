"""``make demo``: noduled and a real Orthanc on loopback, two phantom studies, their reports.

Generates a screening study with SR seeds (``multi``) and one with GSPS seeds
(``part-solid``), starts Orthanc and noduled wired to each other, sends both
studies to noduled, waits until noduled's SR is in Orthanc, and prints
``noduled report`` of each SR fetched back from Orthanc.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.netns import reexec_in_private_network

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.e2e import Harness  # noqa: E402
from tests.support.servers import NODULED  # noqa: E402


def main() -> None:
    reexec_in_private_network()
    from test_images import generate_case, write_study

    with tempfile.TemporaryDirectory(prefix="noduled-demo-") as tmp:
        tmpdir = Path(tmp)
        studies = []
        for case, seeds in (("multi", "sr"), ("part-solid", "gsps")):
            study = generate_case(case, size="small", seed=0)[0]
            paths = write_study(study, tmpdir / case)
            studies.append((case, seeds, study, paths))
            print(f"generated phantom '{case}' ({len(study.nodules)} nodules, seeds as {seeds.upper()})")
        harness = Harness.start(tmpdir / "servers")
        print(f"noduled on 127.0.0.1:{harness.node.port}, Orthanc DICOM on 127.0.0.1:{harness.pacs.dicom_port}")
        try:
            for case, seeds, study, paths in studies:
                t0 = time.monotonic()
                harness.send([Path(p) for p in paths["ct"]] + [Path(paths[seeds])])
                sr_id = harness.wait_for_sr(study.study_uid)
                sr_path = tmpdir / f"{case}-report.dcm"
                sr_path.write_bytes(harness.pacs.rest("GET", f"/instances/{sr_id}/file"))  # type: ignore[arg-type]
                print(f"\n=== '{case}': SR in Orthanc {time.monotonic() - t0:.1f} s after sending; noduled report: ===")
                subprocess.run([NODULED, "report", str(sr_path)], check=False, env={**os.environ, "COLUMNS": "160"})
            print("\nhealth:", harness.health()["status"])
        finally:
            harness.stop()


if __name__ == "__main__":
    main()
