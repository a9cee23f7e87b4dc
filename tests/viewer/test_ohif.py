"""Our SR and SEG in the real OHIF viewer (3.13, npm @ohif/app's prebuilt dist/), in headless Chromium.

A real Orthanc (Debian orthanc + orthanc-dicomweb) holds two studies with the SR and SEG noduled wrote:
``noduled phantom multi --size small`` analysed by ``noduled analyze`` (seven nodules of mixed
kinds, a baseline round), and the follow-up round of the ``growth`` phantom pair analysed with its
prior the way the node does it (the baseline's CT re-measured, the baseline SR read back with
``read_report`` for the nodules' tracking identity and categories): growing, stable, decreased and
new nodules with their percent change and VDT.  OHIF reads them over DICOMweb from the same
127.0.0.1 origin (tests/support/ohif.py).  tests/viewer/ohif_check.mjs drives the page and reports
what OHIF made of the objects (its display-set and segmentation services) and what it drew (the
annotation SVG: the lines at the annotation's place, mapped back to patient coordinates with the
viewport's canvasToWorld, and the label's text lines as drawn).
Screenshots are written to ``tests/viewer/artifacts/`` (or $NODULED_VIEWER_ARTIFACTS): one per SR
measurement on its image (multi-sr-NN-Nodule_N.png, multi-sr-08-Exam.png, follow-up-sr-...) and
multi-seg.png, and each segment on the image through its centre, shown and hidden (multi-seg-NN.png,
multi-seg-NN-hidden.png).  Install: tests/setup/install_viewer_deps.sh (make test runs it).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_sr.seg import DISPLAY_COLOURS_RGB
from tests.support.ohif import NODE_DIR, ViewerServer, dicomweb_orthanc, ohif_dist

NODULED = str(Path(sys.executable).with_name("noduled"))
HERE = Path(__file__).resolve().parent
ARTIFACTS = Path(os.environ.get("NODULED_VIEWER_ARTIFACTS") or HERE / "artifacts")


def _follow_up_case(root: Path) -> dict:
    """The growth pair's follow-up round analysed with its prior, as the node does (in-process)."""
    from daemon.analysis.chain import AnalysisInputs, analyze
    from daemon.analysis.comparison import PriorExam, PriorNodule
    from dicom_sr.read_report import read_report
    from test_images import generate_case, write_study

    studies = generate_case("growth", size="small", seed=0)
    written = [write_study(s, root / f"t{i}") for i, s in enumerate(studies)]
    baseline_ct = [pydicom.dcmread(p) for p in written[0]["ct"]]
    baseline = analyze(AnalysisInputs(study_datasets=baseline_ct, seed_objects=[pydicom.dcmread(written[0]["sr"])]))
    back = read_report(baseline.report).assessment  # what the next round knows of the baseline: its SR
    assert back is not None
    prior = PriorExam(
        study_uid=studies[0].study_uid,
        exam_date=studies[0].study_date,
        ct_datasets=tuple(baseline_ct),
        reported=tuple(PriorNodule.of_finding(f) for f in back.findings if f.measurement is not None),
    )
    result = analyze(
        AnalysisInputs(
            study_datasets=[pydicom.dcmread(p) for p in written[1]["ct"]],
            seed_objects=[pydicom.dcmread(written[1]["sr"])],
            priors=[prior],
        )
    )
    out = root / "out"
    out.mkdir()
    result.report.save_as(out / "report.dcm", enforce_file_format=True)
    assert result.seg is not None
    result.seg.save_as(out / "seg.dcm", enforce_file_format=True)
    return {
        "ct": [Path(p) for p in written[1]["ct"]],
        "objects": [out / "report.dcm", out / "seg.dcm"],
        "truth": {"study_uid": studies[1].study_uid, "nodules": list(studies[1].nodules)},
        "baseline_uids": {f.tracking_uid for f in back.findings},
        "assessment": result.assessment,
        "sr": result.report,
    }


@pytest.fixture(scope="module")
def viewer(tmp_path_factory) -> dict:
    for tool in ("node", "chromium", "Orthanc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run tests/setup/install_viewer_deps.sh (make test does)")
    if not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is not installed: run tests/setup/install_viewer_deps.sh (make test does)")
    dist = ohif_dist()
    work = tmp_path_factory.mktemp("viewer")
    # the multi study through the command line, while the follow-up case is analysed here
    multi = subprocess.Popen(
        [
            "bash",
            "-c",
            f'"{NODULED}" phantom multi --size small --out "{work}/case" && '
            f'"{NODULED}" analyze "$(ls -d {work}/case/study*)/CT" -s "$(ls -d {work}/case/study*)/seeds_sr.dcm" -o "{work}/out"',
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    t0, cpu0 = time.monotonic(), time.process_time()
    follow = _follow_up_case(work / "growth")
    timings = {"follow_up_analysis_s": time.monotonic() - t0, "follow_up_analysis_cpu_s": time.process_time() - cpu0}
    log, _ = multi.communicate(timeout=600)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    timings["multi_done_after_s"] = time.monotonic() - t0
    timings["multi_analysis_cpu_s"] = children.ru_utime + children.ru_stime
    assert multi.returncode == 0, log[-3000:]
    (study_dir,) = sorted((work / "case").glob("study*"))
    truth = json.loads((work / "case" / "truth.json").read_text())["studies"][0]
    multi_ct = sorted((study_dir / "CT").glob("*.dcm"))
    orthanc = dicomweb_orthanc(work / "orthanc").start()
    server = None
    try:
        orthanc.upload(multi_ct + [work / "out" / "report.dcm", work / "out" / "seg.dcm"])
        orthanc.upload(follow["ct"] + follow["objects"])
        server = ViewerServer(dist, orthanc.http_port).start()
        if ARTIFACTS.exists():
            shutil.rmtree(ARTIFACTS)
        ARTIFACTS.mkdir(parents=True)
        t1 = time.monotonic()
        proc = subprocess.run(
            [
                "node",
                str(HERE / "ohif_check.mjs"),
                server.url,
                str(ARTIFACTS),
                f"{truth['study_uid']}:multi:seg",
                f"{follow['truth']['study_uid']}:follow-up",
            ],
            check=False,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=420,
        )
        timings["browser_s"] = time.monotonic() - t1
    finally:
        if server is not None:
            server.stop()
        orthanc.stop()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"the browser driver printed no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    page = json.loads(lines[-1])
    (ARTIFACTS / "page.json").write_text(json.dumps(page, indent=1))
    timings.update({f"browser_{k}_s": v.get("seconds") for k, v in page.get("studies", {}).items()})
    (ARTIFACTS / "timings.json").write_text(json.dumps(timings, indent=1))
    assert "fatal" not in page, page.get("fatal")
    for name in ("multi", "follow-up"):
        assert "fatal" not in page["studies"][name], page["studies"][name]["fatal"]
    headers = lambda paths: {
        str(d.SOPInstanceUID): d for d in (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)
    }  # noqa: E731
    return {
        "multi": {
            "page": page["studies"]["multi"],
            "truth": truth,
            "ct": headers(multi_ct),
            "sr": pydicom.dcmread(work / "out" / "report.dcm"),
            "seg": work / "out" / "seg.dcm",
        },
        "follow-up": {
            "page": page["studies"]["follow-up"],
            "truth": follow["truth"],
            "ct": headers(follow["ct"]),
            "sr": follow["sr"],
            "assessment": follow["assessment"],
            "baseline_uids": follow["baseline_uids"],
        },
    }


def _z(header) -> float:
    return float(header.ImagePositionPatient[2])


def _ruler_distances(case: dict) -> dict[int, float]:
    """For every true nodule: the in-plane distance (mm) from its true centre to its drawn ruler."""
    page, truth, ct = case["page"], case["truth"], case["ct"]
    nodules = [m for m in page["measurements"] if m["trackingId"].startswith("Nodule ")]
    spacing = abs(np.diff(sorted({_z(h) for h in ct.values()}))).min()
    out = {}
    for k, t in enumerate(truth["nodules"]):
        centre = np.asarray(t["centroid_lps_mm"], float)
        # the measurements OHIF put on the slice through this nodule's centre, nearest first
        here = [m for m in nodules if abs(_z(ct[m["sop"]]) - centre[2]) <= spacing / 2 + 1e-3]
        assert here, f"no ruler on the slice of the nodule at {centre.tolist()}"
        best = None
        for m in here:
            assert m["currentImageId"] == m["imageId"], "the viewport did not show the measurement's image"
            assert m["nLines"] == m["nExpected"] >= 1, "a line of the annotation is not drawn"
            pts = np.asarray(m["worldPoints"], float).reshape(-1, 2, 3)
            for a, b in pts:
                # the drawn line lies on the image through the centre: the in-plane distance from the
                # true centre to the line (its nearest point)
                p, q, c = a[:2], b[:2], centre[:2]
                t_ = float(np.clip(np.dot(c - p, q - p) / max(float(np.dot(q - p, q - p)), 1e-9), 0.0, 1.0))
                d = float(np.linalg.norm(p + t_ * (q - p) - c))
                best = d if best is None else min(best, d)
        assert best is not None, f"nothing drawn on the slice of the nodule at {centre.tolist()}"
        out[k] = best
    return out


def _sr_lines(sr: pydicom.Dataset, ct: dict) -> dict[str, list[np.ndarray]]:
    """Tracking UID -> the LPS end points of every line the SR hangs under a nodule's NUMs."""
    from dicom_sr.geometry import plane_of

    out: dict[str, list[np.ndarray]] = {}
    measurements = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    for group in measurements.ContentSequence:
        uid = next(i.UID for i in group.ContentSequence if i.ValueType == "UIDREF")
        for num in (i for i in group.ContentSequence if i.ValueType == "NUM"):
            for line in (c for c in num.get("ContentSequence", []) if c.ValueType == "SCOORD"):
                plane = plane_of(ct[line.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID])
                cr = np.asarray(line.GraphicData, float).reshape(-1, 2)
                out.setdefault(uid, []).append(np.array([plane.to_lps(float(c), float(r)) for c, r in cr]))
    return out


@pytest.mark.parametrize("name", ["multi", "follow-up"])
def test_ohif_draws_the_lines_where_the_sr_puts_them(viewer, name):
    """The drawn lines, mapped back to patient coordinates, are the SR's lines (no pixel-origin shift)."""
    case = viewer[name]
    written = _sr_lines(case["sr"], case["ct"])
    for m in case["page"]["measurements"]:
        if m["trackingId"] == "Exam":
            continue
        drawn = np.asarray(m["worldPoints"], float).reshape(-1, 2, 3)
        assert len(drawn) == len(written[m["uid"]]), m["trackingId"]
        for line in written[m["uid"]]:
            gap = min(min(np.abs(d - line).max(), np.abs(d[::-1] - line).max()) for d in drawn)
            assert gap < 0.05, (m["trackingId"], gap)


@pytest.mark.parametrize("name", ["multi", "follow-up"])
def test_every_nodule_has_a_ruler_on_its_slice_at_its_true_centre(viewer, name):
    case = viewer[name]
    nodules = [m for m in case["page"]["measurements"] if m["trackingId"].startswith("Nodule ")]
    assert len(nodules) == len(case["truth"]["nodules"]) == (7 if name == "multi" else 4)
    distances = _ruler_distances(case)
    (ARTIFACTS / f"{name}-distances.json").write_text(json.dumps(distances))
    assert max(distances.values()) <= 1.0, distances  # issue 13: within 1 mm of the true centre


def _label(m: dict) -> str:
    return "\n".join(m["labelLines"])


@pytest.mark.parametrize("name", ["multi", "follow-up"])
def test_each_ruler_is_labelled_like_the_report(viewer, name):
    """The label as OHIF draws it: Nodule N, composition, category; volume and mean diameter; growth
    and VDT against the prior (follow-up); the exam result on the decisive nodule's label."""
    case = viewer[name]
    for m in case["page"]["measurements"]:
        if m["trackingId"] == "Exam":
            assert m["graphicType"] == "POINT" and m["labels"] == []  # a bare arrow: no text over the nodule's
            continue
        text = _label(m)
        assert m["labelLines"][0].startswith(f"{m['trackingId']}, "), text
        assert re.search(r"(solid|part-solid|non-solid), NLCSP category [0-6]\b", text), text
        assert re.search(r"Volume \d+ mm3, mean diameter \d+\.\d mm", text), text
        assert "{category}" not in text and ".00 {" not in text, text
        comments = [line for line in m["labelLines"] if line.endswith(": ")]
        if len(comments) < 5:  # five lines are shown: the exam's lines may take the ruler's
            assert "Long axis: " in text or "Long axis drawn on the key axial image: " in text, text


def test_the_follow_up_labels_carry_growth_vdt_and_the_exam(viewer):
    case = viewer["follow-up"]
    a = case["assessment"]
    by_id = {m["trackingId"]: _label(m) for m in case["page"]["measurements"]}
    with_prior = 0
    for f in a.findings:
        if f.measurement is None:
            continue
        text = by_id[f.tracking_id]
        comparison = next((c for c in f.comparisons if c.is_comparison_study), None)
        if comparison is not None and comparison.volume_change_pct is not None:
            with_prior += 1
            assert f"volume {comparison.volume_change_pct:+.1f} % since " in text, text
            if comparison.vdt_days is not None and comparison.vdt_days > 0:
                assert f"VDT {comparison.vdt_days:.0f} d" in text, text
            else:  # a negative VDT (shrinking) is in the SR's NUMs, not on the label
                assert "VDT" not in text, text
        if f.status == "new":
            assert "New nodule" in text, text
        if f.tracking_uid == a.decisive_tracking_uid:
            assert f"Exam NLCSP category {a.category}" in text and f"\n{a.management}: " in text, text
            if a.due_date is not None:
                assert f"due {a.due_date.isoformat()}" in text, text
    assert with_prior >= 3  # growing, stable, decreased: compared with the baseline
    # the tracking identity carried over from the baseline SR (read back by read_report)
    assert len({f.tracking_uid for f in a.findings} & case["baseline_uids"]) >= 3


@pytest.mark.parametrize("name", ["multi", "follow-up"])
def test_no_label_lies_over_another(viewer, name):
    """Every label on a key image (the decisive nodule's and the exam's included) is readable."""
    for image, boxes in viewer[name]["page"]["textBoxes"].items():
        boxes = [b for b in boxes if b["box"][2] > 0 and b["box"][3] > 0]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                (ax, ay, aw, ah), (bx, by, bw, bh) = a["box"], b["box"]
                overlap = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
                assert overlap == 0, (image, a, b)


def test_the_seg_shows_one_distinctly_coloured_segment_per_nodule(viewer):
    segments = viewer["multi"]["page"]["segments"]
    assert [s["label"] for s in segments] == [f"Nodule {k}" for k in range(1, 8)]
    colours = [tuple(s["color"][:3]) for s in segments]
    assert len(set(colours)) == 7
    for shown, ours in zip(colours, DISPLAY_COLOURS_RGB):  # OHIF uses the SEG's recommended colours
        assert max(abs(a - b) for a, b in zip(shown, ours)) <= 3, (shown, ours)


def test_each_segment_is_drawn_on_its_nodule_with_the_segments_area(viewer):
    """What OHIF drew of each segment (the pixels that change when only that segment is hidden, on the
    image through its centre) lies where the SEG's segment is and covers its area there (0.99-1.02x on
    the multi phantom), so the outline a radiologist sees is the SEG's -- whose voxel volume is the SR's
    volume (tests/test_dicom_sr_seg.py)."""
    import highdicom as hd
    from skimage import io as skio

    case = viewer["multi"]
    views = case["page"]["segmentViews"]
    assert [v["index"] for v in views] == list(range(1, 8))
    seg = hd.seg.segread(case["seg"])
    for v in views:
        shown = skio.imread(v["shown"])[..., :3].astype(int)
        hidden = skio.imread(v["hidden"])[..., :3].astype(int)
        drawn = np.abs(shown - hidden).max(axis=-1) > 8
        assert drawn.sum() > 0, f"segment {v['index']} is not drawn"
        origin, right, down = (np.asarray(v[k], float) for k in ("origin", "right", "down"))
        ex, ey = right - origin, down - origin  # patient mm per screenshot pixel along x and y
        sop = re.search(r"/instances/([0-9.]+)", v["imageId"]).group(1)
        header = case["ct"][sop]
        ours = seg.get_pixels_by_source_instance([sop], segment_numbers=[v["index"]], skip_overlap_checks=True)
        ours = ours[0, ..., 0].astype(bool)
        assert ours.any(), f"segment {v['index']}: the viewer's centre image holds none of it"
        dr, dc = (float(x) for x in header.PixelSpacing)
        drawn_mm2 = drawn.sum() * float(np.linalg.norm(ex) * np.linalg.norm(ey))
        ours_mm2 = ours.sum() * dr * dc
        assert 0.9 * ours_mm2 <= drawn_mm2 <= 1.1 * ours_mm2, (v["index"], drawn_mm2, ours_mm2)
        y, x = np.argwhere(drawn).mean(axis=0)
        drawn_centre = origin + x * ex + y * ey
        iop = np.asarray(header.ImageOrientationPatient, float)
        r, c = np.argwhere(ours).mean(axis=0)
        ours_centre = np.asarray(header.ImagePositionPatient, float) + c * dc * iop[:3] + r * dr * iop[3:]
        assert np.linalg.norm((drawn_centre - ours_centre)[:2]) <= 1.0, (v["index"], drawn_centre, ours_centre)


@pytest.mark.parametrize("name", ["multi", "follow-up"])
def test_no_not_compatible_badge_and_no_console_errors(viewer, name):
    page = viewer[name]["page"]
    assert page["badge"]["isRehydratable"] is True  # OHIF's badge says "not compatible" exactly when False
    assert page["notCompatibleTextShown"] == 0
    assert page["errors"] == []
