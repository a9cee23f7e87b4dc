"""The written DICOM: valid per dciodvfy, realistic CT headers, and seeds that point inside their nodules.

The SR and GSPS are read back as a seed reader would (highdicom / pydicom), the
image point converted to LPS here from the referenced CT header, and checked
against the ground truth.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from test_images import generate_case, write_study

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="DCMTK/dicom3tools dciodvfy not installed")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    (study,) = generate_case("benign", "small", seed=5)
    out = tmp_path_factory.mktemp("benign")
    paths = write_study(study, out)
    headers = {}
    for p in paths["ct"]:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        headers[ds.SOPInstanceUID] = ds
    return study, paths, headers


def _dciodvfy_errors(path) -> list[str]:
    res = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]


def test_ct_sr_and_gsps_pass_dciodvfy(written):
    study, paths, _ = written
    for p in (paths["ct"][0], paths["ct"][len(paths["ct"]) // 2], paths["sr"], paths["gsps"]):
        assert _dciodvfy_errors(p) == [], p


def test_ct_headers_are_realistic_and_pixels_round_trip(written):
    study, paths, headers = written
    k = len(paths["ct"]) // 3
    ds = pydicom.dcmread(paths["ct"][k])
    assert ds.Modality == "CT" and ds.StudyDescription == "LDCT LUNG SCREENING"
    assert ds.Manufacturer and ds.ConvolutionKernel and float(ds.KVP) == 120.0 and 0.3 < float(ds.CTDIvol) < 3.0
    assert ds.PatientID == study.patient["id"] and ds.PatientSex in ("M", "F")
    assert ds.PatientAge == f"{study.patient['age_years']:03d}Y" and 50 <= study.patient["age_years"] <= 80
    assert ds.StudyDate == study.study_date.strftime("%Y%m%d")
    assert ds.pixel_array.dtype == np.int16 and ds.PixelRepresentation == 1
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.abs(hu - study.hu[k]).max() <= 0.5 + 1e-6
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    z = float(ds.ImagePositionPatient[2])
    assert z == pytest.approx(study.origin_lps_mm[2] + k * study.spacing_mm[2], abs=1e-3)
    assert float(ds.SliceThickness) == pytest.approx(study.spacing_mm[2])
    assert float(ds.PixelSpacing[1]) == pytest.approx(study.spacing_mm[0])  # column spacing = x


def _image_point_to_lps(ct: pydicom.Dataset, col: float, row: float) -> np.ndarray:
    """SCOORD / PIXEL annotation (column, row), (0, 0) = top-left corner of the top-left pixel, to LPS mm."""
    ipp = np.array([float(v) for v in ct.ImagePositionPatient])
    iop = np.array([float(v) for v in ct.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in ct.PixelSpacing)
    return ipp + iop[:3] * (col - 0.5) * col_spacing + iop[3:] * (row - 0.5) * row_spacing


def _assert_inside(study, tracking_uid, p):
    nod = next(n for n in study.nodules if n["tracking_uid"] == tracking_uid)
    assert np.linalg.norm(p - np.asarray(nod["centroid_lps_mm"])) < 0.5 * nod["short_axis_mm"]
    k, j, i = np.rint(study.lps_to_voxel(p)).astype(int)
    assert study.clean_hu[k, j, i] > -300  # solid / calcified / fat nodules are far above lung (-850)
    return nod


def test_sr_seed_points_fall_inside_their_nodules(written):
    import highdicom as hd

    study, paths, headers = written
    sr = hd.sr.srread(paths["sr"])
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == len(study.nodules) == 3
    seen = set()
    for g in groups:
        roi = g.roi
        assert roi.graphic_type == hd.sr.GraphicTypeValues.POINT
        ((col, row),) = roi.value
        ref_uid = roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        p = _image_point_to_lps(headers[ref_uid], col, row)
        nod = _assert_inside(study, g.tracking_uid, p)
        for label in nod["labels"]:
            assert label in g.tracking_identifier.lower().split()
        seen.add(g.tracking_uid)
    assert seen == {n["tracking_uid"] for n in study.nodules}
    # the Image Library lists the referenced images
    ds = pydicom.dcmread(paths["sr"])
    names = [item.ConceptNameCodeSequence[0].CodeMeaning for item in ds.ContentSequence]
    assert "Image Library" in names and "Imaging Measurements" in names


def test_gsps_points_and_labels(written):
    study, paths, headers = written
    ds = pydicom.dcmread(paths["gsps"])
    assert ds.Modality == "PR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"
    found = {}
    for ann in ds.GraphicAnnotationSequence:
        ct = headers[ann.ReferencedImageSequence[0].ReferencedSOPInstanceUID]
        texts = [t.UnformattedTextValue for t in ann.get("TextObjectSequence", [])]
        for g in ann.GraphicObjectSequence:
            assert g.GraphicType == "POINT" and g.GraphicAnnotationUnits == "PIXEL"
            col, row = (float(v) for v in g.GraphicData)
            p = _image_point_to_lps(ct, col, row)
            nod = _assert_inside(study, g.TrackingUID, p)
            found[nod["id"]] = texts
    assert set(found) == {n["id"] for n in study.nodules}
    for n in study.nodules:
        assert any(all(label in t.lower() for label in n["labels"]) for t in found[n["id"]])


def test_json_seeds_match_the_sr_points(written):
    import highdicom as hd

    study, paths, headers = written
    seeds = json.loads(Path(paths["seeds_json"]).read_text())["seeds"]
    by_uid = {s["tracking_uid"]: np.asarray(s["position_lps_mm"]) for s in seeds}
    for g in hd.sr.srread(paths["sr"]).content.get_planar_roi_measurement_groups():
        ((col, row),) = g.roi.value
        ref_uid = g.roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        p = _image_point_to_lps(headers[ref_uid], col, row)
        assert np.allclose(p, by_uid[g.tracking_uid], atol=1e-3)
    for s in seeds:
        nod = next(n for n in study.nodules if n["tracking_uid"] == s["tracking_uid"])
        assert s["label"].split() == nod["labels"]
        # a reader's click is off-centre, within 30 % of the radius (plus half a slice from snapping to a slice)
        off = np.linalg.norm(np.asarray(s["position_lps_mm"]) - np.asarray(nod["centroid_lps_mm"]))
        assert off <= 0.3 * nod["short_axis_mm"] / 2 + 0.5 * study.spacing_mm[2] + 1e-6


def test_no_nodules_case_carries_the_exam_label(tmp_path):
    (study,) = generate_case("no-nodules", "small", seed=0, noise_sd_hu=20.0)
    paths = write_study(study, tmp_path)
    assert json.loads(Path(paths["seeds_json"]).read_text())["exam_labels"] == ["no-nodules"]
    assert _dciodvfy_errors(paths["sr"]) == [] and _dciodvfy_errors(paths["gsps"]) == []
    ds = pydicom.dcmread(paths["gsps"])
    texts = [t.UnformattedTextValue for a in ds.GraphicAnnotationSequence for t in a.get("TextObjectSequence", [])]
    assert "no-nodules" in " ".join(texts)
    sr = pydicom.dcmread(paths["sr"])
    assert "no-nodules" in str(sr.ContentSequence)
