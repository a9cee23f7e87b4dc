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
    assert [g.tracking_identifier for g in planar] == ["Exam"]  # the nodules' rulers are TID 1501 NUM lines
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
    # per nodule: a volumetric group on its SEG segment, and its two axis lines on a library image
    for finding in assessment.findings:
        mine = [g for g in groups if _items(g, "112040")[0].UID == finding.tracking_uid]
        assert all(_items(g, "112039")[0].TextValue == finding.tracking_id for g in mine)
        segment = [i for g in mine for i in _items(g, "121191")]
        assert len(segment) == 1 and segment[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
        # no top-level graphic: OHIF would draw only that (see dicom_sr.report)
        assert not [i for g in mine for i in g.ContentSequence if i.ValueType in ("SCOORD", "SCOORD3D")]
        lines = [
            c for g in mine for i in g.ContentSequence if i.ValueType == "NUM" for c in i.get("ContentSequence", [])
        ]
        lines = [c for c in lines if c.ValueType == "SCOORD"]
        assert [(c.RelationshipType, c.GraphicType) for c in lines] == [("INFERRED FROM", "POLYLINE")] * 2
        for c in lines:
            assert c.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID in library_uids


def _lines(group):
    """(NUM concept, line end points (column, row), its image UID) of the NUMs drawn as lines."""
    out = []
    for i in group.ContentSequence:
        for c in i.get("ContentSequence", []) if i.ValueType == "NUM" else []:
            if c.ValueType == "SCOORD":
                image = c.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                out.append(
                    (i.ConceptNameCodeSequence[0].CodeValue, np.asarray(c.GraphicData, float).reshape(-1, 2), image)
                )
    return out


def _geometry(group):
    container = next(i for i in group.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "GEOMETRY")
    return {
        i.ConceptNameCodeSequence[0].CodeValue: np.asarray(i.GraphicData, float).reshape(-1, 3)
        for i in container.ContentSequence
    }


def test_rulers_are_drawn_where_the_axes_are(case):
    ct, assessment, _, sr = case
    by_uid = {str(d.SOPInstanceUID): d for d in ct}
    groups = _groups(sr)
    for finding in assessment.findings:
        m = finding.measurement
        rulers, main = [g for g in groups if _items(g, "112040")[0].UID == finding.tracking_uid]
        drawn = _lines(rulers)
        assert [d[0] for d in drawn] == ["103339001", "103340004"]  # long axis, short axis
        for (_, points, image), endpoints in zip(drawn, (m.long_axis_endpoints_lps_mm, m.short_axis_endpoints_lps_mm)):
            header = by_uid[image]
            assert (
                abs(float(header.ImagePositionPatient[2]) - m.centroid_lps_mm[2]) <= 1.25
            )  # the slice through the centre
            for (c, r), expected in zip(points, endpoints):
                assert np.linalg.norm(expected_lps(header, c, r) - np.asarray(expected)) < 0.01
        nums = {
            i.ConceptNameCodeSequence[0].CodeValue: float(i.MeasuredValueSequence[0].NumericValue)
            for i in rulers.ContentSequence
            if i.ValueType == "NUM"
        }
        assert nums["103339001"] == round(m.long_axis_mm, 1) and nums["103340004"] == round(m.short_axis_mm, 1)
        geometry = _geometry(main)
        assert np.allclose(geometry["111010"][0], m.centroid_lps_mm, atol=1e-4)
        assert np.allclose(geometry["103339001"], m.long_axis_endpoints_lps_mm, atol=1e-4)
        assert np.allclose(geometry["103340004"], m.short_axis_endpoints_lps_mm, atol=1e-4)


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
    rulers, main, _exam = _groups(sr)
    # the axial ruler (long axis drawn on the key image) first, then the short axis (still on an axial
    # image) with its line; the long axis NUM without a line in the TID 1411 group, its true 3D end
    # points in the geometry
    assert [i.ConceptNameCodeSequence[0].CodeValue for i in rulers.ContentSequence if i.ValueType == "NUM"] == [
        "AXIAL-RULER",
        "103340004",
    ]
    assert [i for i in main.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "103339001"]
    assert [d[0] for d in _lines(rulers)] == ["AXIAL-RULER", "103340004"]
    assert np.allclose(_geometry(main)["103339001"], coronal.long_axis_endpoints_lps_mm, atol=1e-4)
    from dicom_sr.read_report import read_report

    back = read_report(sr).assessment.findings[0].measurement
    assert np.allclose(back.long_axis_endpoints_lps_mm, coronal.long_axis_endpoints_lps_mm, atol=1e-4)


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
    rulers, main, _exam = _groups(sr)
    ((name, ends, image),) = _lines(rulers)  # the short axis is off the key image: not drawn
    assert name == "AXIAL-RULER"
    header = {str(d.SOPInstanceUID): d for d in ct}[image]
    middle = expected_lps(header, *ends.mean(axis=0))
    assert np.linalg.norm(middle - c) < 0.7  # centred on the nodule, on the nearest slice
    # measured along the slice normal: drawn across the image with the long axis' length
    length = np.linalg.norm(expected_lps(header, *ends[0]) - expected_lps(header, *ends[1]))
    assert abs(length - m.long_axis_mm) < 0.1


def test_what_ohif_does_with_it(case):
    """Mirror of OHIF 3.13's SR loading (cornerstone-dicom-sr ``_getMeasurements``): merge groups by
    tracking UID; with no top-level SCOORD the merged group is read as cornerstone3D writes its own
    (``_processNonGeometricallyDefinedMeasurement``): Comment TEXTs become the first label lines, then
    each NUM without children or with a line; the lines are drawn; five label lines are shown.  The
    real check is the browser test (tests/viewer)."""
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
    exam = merged.pop(exam_uid)
    assert next(i for i in exam if i.ValueType == "SCOORD").GraphicType == "POINT"
    assert not [i for i in exam if i.ValueType == "NUM"]  # a bare arrow: no label over the nodule's
    for finding, (uid, items) in zip(assessment.findings, merged.items()):
        assert next(i for i in items if i.ValueType == "UIDREF").UID == uid  # OHIF takes the first UIDREF
        assert not [i for i in items if i.ValueType in ("SCOORD", "SCOORD3D")]
        labels = [i.TextValue + ": " for i in items if i.ConceptNameCodeSequence[0].CodeValue == "121106"]
        coords = []
        for i in items:
            if i.ValueType != "NUM":
                continue
            children = list(i.get("ContentSequence", []))
            if children:
                line = next((c for c in children if c.ValueType in ("SCOORD", "SCOORD3D")), None)
                if line is None:
                    continue  # OHIF skips it
                coords.append(line)
            value = i.MeasuredValueSequence[0]
            labels.append(
                f"{i.ConceptNameCodeSequence[0].CodeMeaning}: {float(value.NumericValue):.2f} "
                f"{value.MeasurementUnitsCodeSequence[0].CodeValue}"
            )
        assert coords and coords[0].ValueType == "SCOORD" and coords[0].GraphicType == "POLYLINE"
        assert coords[0].ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID in library_uids
        shown = "\n".join(labels[:5])
        assert shown.startswith(f"{finding.tracking_id}, "), shown
        assert f"NLCSP category {finding.category}" in shown and "mm3" in shown and "mean diameter" in shown, shown
        comparison = next((c for c in finding.comparisons if c.is_comparison_study), None)
        if comparison is not None and comparison.vdt_days is not None:
            assert f"VDT {comparison.vdt_days:.0f} d" in shown and f"{comparison.volume_change_pct:+.1f} %" in shown
        assert "Long axis: " in shown or shown.count("\n") == 4 and "Exam " in shown
        if finding.tracking_uid == assessment.decisive_tracking_uid:
            assert f"Exam NLCSP category {assessment.category} A, due {assessment.due_date.isoformat()}" in shown
            assert f"\n{assessment.management}: " in shown, shown


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


@pytest.mark.parametrize(
    ("protocol", "category", "flag", "text"),
    [("nlcsp", str(n), False, f"NLCSP category {n}") for n in range(7)]
    + [
        ("nlcsp", "2", True, "NLCSP category 2 A"),
        ("nlcsp", "", False, "no NLCSP category"),
        ("lung-rads-2022", "4A", False, "Lung-RADS category 4A"),
        ("lung-rads-2022", "4B", False, "Lung-RADS category 4B"),
        ("lung-rads-2022", "4X", True, "Lung-RADS category 4X S"),
        ("lung-rads-2022", "0", False, "Lung-RADS category 0"),
    ],
)
def test_categories_read_as_a_radiologist_writes_them(protocol, category, flag, text):
    """No "3.00 {category}": OHIF shows a category the way the report writes it (a Comment line)."""
    from dicom_sr.report import category_text

    assert category_text(protocol, category, additional_findings=flag) == text


def test_a_lung_rads_label(case):
    from dicom_sr.report import label_lines

    _, assessment, _, _ = case
    lr = replace(
        assessment,
        protocol="lung-rads-2022",
        category="4X",
        findings=tuple(replace(f, category=c) for f, c in zip(assessment.findings, ("4X", "4B"))),
    )
    decisive = next(f for f in lr.findings if f.tracking_uid == lr.decisive_tracking_uid)
    lines = label_lines(decisive, lr)
    assert lines[0].endswith(f"Lung-RADS category {decisive.category}")
    assert lines[-2].startswith("Exam Lung-RADS category 4X S") and lines[-1] == lr.management
