"""The TID 1500 SR: valid, readable by DCMTK and highdicom, and shaped the way OHIF needs."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicom_sr.report import ReportError, build_report
from dicom_sr.seg import build_segmentation
from tests.dicom_sr_support import dciodvfy_errors, expected_lps, make_assessment, make_ct_series, write


@pytest.fixture(scope="module")
def case():
    ct = make_ct_series(seed="report")
    assessment = make_assessment(ct)
    seg = build_segmentation(assessment.findings, ct)
    sr = build_report(assessment, ct, seg=seg)
    return ct, assessment, seg, sr


def _groups(sr):
    measurements = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126010")
    return list(measurements.ContentSequence)


def _items(item, code):
    return [c for c in item.get("ContentSequence", []) if c.ConceptNameCodeSequence[0].CodeValue == code]


def _bytes(ds):
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_sr_is_valid_and_renders(case, tmp_path):
    _, _, seg, sr = case
    path = write(sr, tmp_path / "sr.dcm")
    assert dciodvfy_errors(path) == []
    assert dciodvfy_errors(write(seg, tmp_path / "seg.dcm")) == []
    dump = subprocess.run([shutil.which("dsrdump") or "/usr/bin/dsrdump", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert "Comprehensive 3D SR" in dump.stdout and '"Nodule 2"' in dump.stdout
    assert "E:" not in dump.stderr


def test_highdicom_parses_it(case, tmp_path):
    path = write(case[3], tmp_path / "sr.dcm")
    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    report = hd.sr.MeasurementReport.from_sequence([sr])
    volumetric = report.get_volumetric_roi_measurement_groups()
    planar = report.get_planar_roi_measurement_groups()
    assert [g.tracking_identifier for g in volumetric] == ["Nodule 1", "Nodule 2"]
    assert [g.tracking_identifier for g in planar] == ["Nodule 1"] * 2 + ["Nodule 2"] * 2 + ["Exam"]
    volume = next(m for m in volumetric[0].get_measurements() if m.name.value == "118565006")
    assert volume.unit.value == "mm3"
    assert volume.value == round(case[1].findings[0].measurement.volume_mm3)


def test_header_copies_patient_and_study(case):
    ct, _, _, sr = case
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "AccessionNumber",
        "StudyDate",
        "StudyTime",
        "StudyID",
        "ReferringPhysicianName",
    ):
        assert sr.get(keyword) == ct[0].get(keyword), keyword
    assert sr.SeriesInstanceUID != ct[0].SeriesInstanceUID
    assert sr.Modality == "SR"
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    assert "99NLCSP" in [i.CodingSchemeDesignator for i in sr.CodingSchemeIdentificationSequence]
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"


def test_ohif_pitfalls(case):
    ct, assessment, seg, sr = case
    # root concept
    root = sr.ConceptNameCodeSequence[0]
    assert (root.CodeValue, root.CodingSchemeDesignator) == ("126000", "DCM")
    # Image Library present, and which images it holds
    library = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "111028"]
    assert len(library) == 1
    library_uids = {
        img.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for group in library[0].ContentSequence
        for img in group.ContentSequence
    }
    # every group has a tracking identifier and a tracking UID
    groups = _groups(sr)
    for g in groups:
        assert len(_items(g, "112039")) == 1 and len(_items(g, "112040")) == 1
    # per nodule: a volumetric group on its SEG segment, and a POLYLINE pair on a library image
    for finding in assessment.findings:
        mine = [g for g in groups if _items(g, "112040")[0].UID == finding.tracking_uid]
        assert all(_items(g, "112039")[0].TextValue == finding.tracking_id for g in mine)
        segment = [i for g in mine for i in _items(g, "121191")]
        assert len(segment) == 1 and segment[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
        regions = [i for g in mine for i in _items(g, "111030")]
        assert [r.GraphicType for r in regions] == ["POLYLINE", "POLYLINE"]
        for r in regions:
            assert r.ValueType == "SCOORD"
            image_uid = r.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
            assert image_uid in library_uids


def test_rulers_are_drawn_where_the_axes_are(case):
    ct, assessment, _, sr = case
    by_uid = {str(d.SOPInstanceUID): d for d in ct}
    groups = _groups(sr)
    for finding in assessment.findings:
        m = finding.measurement
        mine = [g for g in groups if _items(g, "112040")[0].UID == finding.tracking_uid and _items(g, "111030")]
        for g, endpoints, _length in zip(
            mine, (m.long_axis_endpoints_lps_mm, m.short_axis_endpoints_lps_mm), (m.long_axis_mm, m.short_axis_mm)
        ):
            region = _items(g, "111030")[0]
            header = by_uid[region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID]
            points = np.asarray(region.GraphicData, float).reshape(-1, 2)
            for (c, r), expected in zip(points, endpoints):
                assert np.linalg.norm(expected_lps(header, c, r) - np.asarray(expected)) < 0.01
        # the lengths are NUMs of the nodule's volumetric group (OHIF labels a ruler with them)
        volumetric = next(
            g for g in groups if _items(g, "112040")[0].UID == finding.tracking_uid and not _items(g, "111030")
        )
        nums = {
            i.ConceptNameCodeSequence[0].CodeValue: float(i.MeasuredValueSequence[0].NumericValue)
            for i in volumetric.ContentSequence
            if i.ValueType == "NUM"
        }
        assert nums["103339001"] == round(m.long_axis_mm, 1) and nums["103340004"] == round(m.short_axis_mm, 1)


def test_document_level_evaluations(case):
    _, assessment, _, sr = case
    container = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C0034375")
    by_code = {i.ConceptNameCodeSequence[0].CodeValue: i for i in container.ContentSequence}
    assert by_code["EXAM-CAT"].ConceptCodeSequence[0].CodeValue == "CAT4"
    assert by_code["A-FLAG"].ConceptCodeSequence[0].CodeValue == "373066001"  # Yes
    assert by_code["111053"].TextValue == assessment.management
    assert float(by_code["111055"].MeasuredValueSequence[0].NumericValue) == 3
    assert str(by_code["111054"].Date) == "20250610"


def test_same_inputs_same_object_and_a_new_analysis_replaces_the_old(case):
    ct, assessment, seg, sr = case
    assert _bytes(build_report(assessment, ct, seg=seg)) == _bytes(sr)
    changed = replace(assessment, category="3", management="Repeat LDCT in 3 months")
    second = build_report(changed, ct, seg=seg, predecessor=sr)
    assert second.SOPInstanceUID != sr.SOPInstanceUID
    assert second.SeriesInstanceUID == sr.SeriesInstanceUID
    assert second.InstanceNumber == sr.InstanceNumber + 1
    predecessors = [
        sop.ReferencedSOPInstanceUID
        for study in second.PredecessorDocumentsSequence
        for series in study.ReferencedSeriesSequence
        for sop in series.ReferencedSOPSequence
    ]
    assert predecessors == [sr.SOPInstanceUID]
    uids = lambda d: sorted({_items(g, "112040")[0].UID for g in _groups(d)})  # noqa: E731
    assert uids(second) == uids(sr)


def test_exam_without_nodules_and_a_seed_without_nodule(tmp_path):
    ct = make_ct_series(seed="empty")
    base = make_assessment(ct, with_prior=False)
    empty = replace(base, findings=(), category="1", decisive_tracking_uid=None, additional_findings=False)
    sr = build_report(empty, ct, seg=None)
    assert dciodvfy_errors(write(sr, tmp_path / "empty.dcm")) == []
    assert len(_groups(sr)) == 1  # the exam group TID 1500 requires
    missed = replace(base.findings[0], measurement=None, error="no nodule at seed (1, 2, 3)", category=None)
    sr2 = build_report(replace(base, findings=(missed,)), ct, seg=None)
    assert dciodvfy_errors(write(sr2, tmp_path / "missed.dcm")) == []
    (group,) = _groups(sr2)
    assert _items(group, "ERROR")[0].TextValue == "no nodule at seed (1, 2, 3)"


def test_coronal_axes_are_written_in_3d(tmp_path):
    ct = make_ct_series(seed="coronal")
    a = make_assessment(ct, with_prior=False)
    f = a.findings[0]
    m = f.measurement
    (x0, y0, z0), (x1, y1, z1) = m.long_axis_endpoints_lps_mm
    coronal = replace(
        m, measurement_plane="coronal", long_axis_endpoints_lps_mm=((x0, y0, z0 - 2.5), (x1, y1, z1 + 2.5))
    )
    sr = build_report(
        replace(a, findings=(replace(f, measurement=coronal),)), ct, seg=build_segmentation(a.findings[:1], ct)
    )
    assert dciodvfy_errors(write(sr, tmp_path / "coronal.dcm")) == []
    regions = [i for g in _groups(sr) for i in _items(g, "111030")]
    # the axial ruler (long axis projected on the key image), the true 3D long axis, the short axis
    # (still on an axial image), the exam's point
    assert [r.ValueType for r in regions] == ["SCOORD", "SCOORD3D", "SCOORD", "SCOORD"]
    assert np.allclose(
        np.asarray(regions[1].GraphicData, float).reshape(2, 3), coronal.long_axis_endpoints_lps_mm, atol=1e-4
    )


def test_study_mismatch_and_uncoded_values_are_refused(case):
    ct, assessment, seg, _ = case
    with pytest.raises(ReportError, match="belong to study"):
        build_report(replace(assessment, study_uid="1.2.3.4"), ct, seg=seg)
    with pytest.raises(ReportError, match=r"exam category is '4X'"):
        build_report(replace(assessment, category="4X"), ct, seg=seg)
    bad = replace(assessment.findings[1], status="enlarging")
    with pytest.raises(ReportError, match="growth status of Nodule 2 is 'enlarging'"):
        build_report(replace(assessment, findings=(assessment.findings[0], bad)), ct, seg=seg)


def test_person_observer_is_the_seed_reader(case):
    sr = case[3]
    names = [i.PersonName for i in sr.ContentSequence if i.ValueType == "PNAME"]
    assert names == ["Reader^Rita"]
    assert str(sr.ContentDate) == "20250310"  # deterministic: the study's date unless the caller says otherwise
    later = build_report(case[1], case[0], seg=case[2], content_datetime=dt.datetime(2025, 3, 11, 9, 0))
    assert str(later.ContentDate) == "20250311"


def test_our_own_objects_are_not_seed_objects(case):
    from dicom_sr.seeds import is_seed_object

    _, _, seg, sr = case
    assert not is_seed_object(sr) and not is_seed_object(seg)


def test_axes_off_the_ct_images_get_an_axial_ruler_first(tmp_path):
    """OHIF draws a tracked measurement from its first SCOORD: it must be a 2D line on the key image."""
    ct = make_ct_series(seed="sagittal")
    a = make_assessment(ct, with_prior=False)
    f = a.findings[0]
    m = f.measurement
    c = np.asarray(m.centroid_lps_mm)
    sag = replace(
        m,
        measurement_plane="sagittal",
        long_axis_endpoints_lps_mm=(tuple(c + [0, 0, -4]), tuple(c + [0, 0, 4])),
        short_axis_endpoints_lps_mm=(tuple(c + [0, -3, 1.0]), tuple(c + [0, 3, -1.0])),
    )
    sr = build_report(
        replace(a, findings=(replace(f, measurement=sag),)), ct, seg=build_segmentation(a.findings[:1], ct)
    )
    assert dciodvfy_errors(write(sr, tmp_path / "sag.dcm")) == []
    regions = [i for g in _groups(sr) for i in _items(g, "111030")]
    assert [(r.ValueType, r.GraphicType) for r in regions] == [
        ("SCOORD", "POLYLINE"),
        ("SCOORD3D", "POLYLINE"),
        ("SCOORD3D", "POLYLINE"),
        ("SCOORD", "POINT"),
    ]
    header = {str(d.SOPInstanceUID): d for d in ct}[
        regions[0].ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    ]
    ends = np.asarray(regions[0].GraphicData, float).reshape(2, 2)
    middle = expected_lps(header, *ends.mean(axis=0))
    assert np.linalg.norm(middle - c) < 0.7  # centred on the nodule, on the nearest slice
    # measured along the slice normal: drawn across the image with the long axis' length
    length = np.linalg.norm(expected_lps(header, *ends[0]) - expected_lps(header, *ends[1]))
    assert abs(length - m.long_axis_mm) < 0.1


def test_what_ohif_does_with_it(case):
    """Mirror of OHIF's SR loading (cornerstone-dicom-sr): merge groups by tracking UID, draw the
    first top-level 2D SCOORD, label it with every top-level NUM, find its image in the first
    Image Library Group (126200)."""
    _, assessment, _, sr = case
    library = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "111028")
    first_group = next(i for i in library.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "126200")
    library_uids = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in first_group.ContentSequence}
    merged: dict[str, list] = {}
    for group in _groups(sr):
        items = list(group.ContentSequence)
        uid = next(i for i in items if i.ConceptNameCodeSequence[0].CodeValue == "112040").UID
        merged.setdefault(uid, []).extend(items)
    exam_uid = list(merged)[-1]
    assert list(merged)[:-1] == [f.tracking_uid for f in assessment.findings]
    assert next(i for i in merged.pop(exam_uid) if i.ValueType == "SCOORD").GraphicType == "POINT"
    for uid, items in merged.items():
        assert next(i for i in items if i.ValueType == "UIDREF").UID == uid  # OHIF takes the first UIDREF
        graphic = next(i for i in items if i.ValueType == "SCOORD")
        assert graphic.RelationshipType == "CONTAINS"
        assert graphic.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID in library_uids
        assert graphic.GraphicType == "POLYLINE"
        labels = [i.ConceptNameCodeSequence[0].CodeMeaning for i in items if i.ValueType == "NUM"]
        assert labels[:3] == ["Volume", "Diameter", "NLCSP category"]  # OHIF shows the first five
        assert {"Long axis", "Short axis"} <= set(labels)


LIDC = Path("/work/shared/realdata/LIDC-IDRI-0001")


@pytest.mark.skipif(not LIDC.is_dir(), reason="shared real-data folder is not mounted")
def test_sr_and_seg_on_a_real_ct_series(tmp_path):
    """The LIDC scanner headers (GE LightSpeed) copy into a valid SR and SEG."""
    from dicom_sr.geometry import plane_of
    from dicom_sr.read_report import read_report
    from segmentation.types import NoduleMask

    ct = sorted((pydicom.dcmread(p) for p in LIDC.glob("*/*/*.dcm")), key=lambda d: float(d.ImagePositionPatient[2]))
    seed = (56.2, 86.2, -115.9)  # reference.json nodule
    k = int(np.argmin([abs(float(d.ImagePositionPatient[2]) - seed[2]) for d in ct]))
    plane = plane_of(ct[k])
    c, r, _ = (int(v) for v in plane.from_lps(seed))
    zz, yy, xx = np.mgrid[-6:7, -23:24, -23:24]
    mask = NoduleMask((k - 6, r - 23, c - 23), ((zz * 2.5) ** 2 + (yy * 0.703) ** 2 + (xx * 0.703) ** 2) < 16**2)
    base = make_assessment(make_ct_series(seed="lidc"), with_prior=False)
    long_axis = (plane.to_lps(c - 22, r + 0.5), plane.to_lps(c + 23, r + 0.5))
    short_axis = (plane.to_lps(c + 0.5, r - 20), plane.to_lps(c + 0.5, r + 21))
    f = base.findings[0]
    m = replace(
        f.measurement,
        mask=mask,
        centroid_lps_mm=seed,
        volume_mm3=6900.2,
        long_axis_endpoints_lps_mm=long_axis,
        short_axis_endpoints_lps_mm=short_axis,
    )
    a = replace(
        base,
        study_uid=str(ct[0].StudyInstanceUID),
        series_uid=str(ct[0].SeriesInstanceUID),
        findings=(replace(f, measurement=m),),
    )
    seg = build_segmentation(a.findings, ct)
    sr = build_report(a, ct, seg=seg)
    assert dciodvfy_errors(write(seg, tmp_path / "seg.dcm")) == []
    assert dciodvfy_errors(write(sr, tmp_path / "sr.dcm")) == []
    back = read_report(tmp_path / "sr.dcm").findings[0].measurement
    assert back.volume_mm3 == 6900
    assert np.allclose(back.long_axis_endpoints_lps_mm, long_axis, atol=1e-3)
