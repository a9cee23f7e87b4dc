"""The SEG: valid per dciodvfy, one segment per nodule, masks where the CT says."""

from __future__ import annotations

import io
from dataclasses import replace

import highdicom as hd
import numpy as np
import pytest

from dicom_sr.seg import SegmentationError, build_segmentation
from segmentation.types import NoduleMask
from tests.dicom_sr_support import dciodvfy_errors, make_assessment, make_ct_series, write


@pytest.fixture(scope="module")
def case():
    ct = make_ct_series(seed="seg")
    assessment = make_assessment(ct)
    return ct, assessment, build_segmentation(assessment.findings, ct)


def test_seg_is_valid_dicom(case, tmp_path):
    _, _, seg = case
    assert dciodvfy_errors(write(seg, tmp_path / "seg.dcm")) == []


def test_one_labelled_segment_per_nodule(case):
    ct, assessment, seg = case
    assert seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == ct[0].StudyInstanceUID and seg.SeriesInstanceUID != ct[0].SeriesInstanceUID
    items = seg.SegmentSequence
    assert [s.SegmentLabel for s in items] == ["Nodule 1", "Nodule 2"]
    assert [s.TrackingUID for s in items] == [f.tracking_uid for f in assessment.findings]
    for s in items:
        assert s.SegmentAlgorithmType == "SEMIAUTOMATIC"
        assert s.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
        assert s.SegmentedPropertyTypeCodeSequence[0].CodeValue == "27925004"
        assert s.SegmentAlgorithmName == "noduled"


def _segment_matches(back, ct, number: int, mask: NoduleMask) -> bool:  # type: ignore[no-untyped-def]
    """Segment ``number`` of the SEG read back holds exactly ``mask``'s reported voxels on the CT (64 x 64 slices)."""
    expected = np.zeros((len(ct), 64, 64), bool)
    z0, y0, x0 = mask.origin_index_zyx
    dz, dy, dx = mask.reported.shape
    expected[z0 : z0 + dz, y0 : y0 + dy, x0 : x0 + dx] = mask.reported
    got = back.get_pixels_by_source_instance(
        [str(d.SOPInstanceUID) for d in ct],
        segment_numbers=[number],
        skip_overlap_checks=True,
        assert_missing_frames_are_empty=True,
    )[..., 0]
    return bool(np.array_equal(got.astype(bool), expected))


def test_masks_land_on_the_right_voxels(case, tmp_path):
    ct, assessment, seg = case
    back = hd.seg.segread(write(seg, tmp_path / "seg.dcm"))
    for number, finding in enumerate(assessment.findings, start=1):
        assert _segment_matches(back, ct, number, finding.measurement.mask), finding.tracking_id


def test_the_segment_is_the_outline_whose_volume_the_sr_reports(case, tmp_path):
    """The SR's volume is the radiologists'-convention outline (one pixel outside the 50 % mask): the SEG
    shows that outline, so a viewer's volume of the segment is the SR's number, not the inner mask's."""
    from scipy import ndimage

    ct, assessment, _ = case
    f = assessment.findings[0]
    inner = f.measurement.mask
    padded = np.pad(inner.mask, 1)
    outline = ndimage.binary_dilation(padded, np.ones((1, 3, 3), bool))
    z0, y0, x0 = inner.origin_index_zyx
    m = NoduleMask((z0 - 1, y0 - 1, x0 - 1), padded, readers_mask=outline)
    voxel_mm3 = float(
        np.prod([float(ct[0].PixelSpacing[0]), float(ct[0].PixelSpacing[1]), float(ct[0].SliceThickness)])
    )
    reported = replace(f, measurement=replace(f.measurement, mask=m, volume_mm3=float(outline.sum()) * voxel_mm3))
    seg = build_segmentation([reported], ct)
    back = hd.seg.segread(write(seg, tmp_path / "seg.dcm"))
    assert _segment_matches(back, ct, 1, m)
    got = back.get_pixels_by_source_instance(
        [str(d.SOPInstanceUID) for d in ct], segment_numbers=[1], assert_missing_frames_are_empty=True
    )
    assert got.sum() * voxel_mm3 == pytest.approx(reported.measurement.volume_mm3)
    assert got.sum() > inner.mask.sum()


def test_deterministic(case):
    ct, assessment, seg = case
    again = build_segmentation(assessment.findings, ct)
    a, b = io.BytesIO(), io.BytesIO()
    seg.save_as(a, enforce_file_format=True)
    again.save_as(b, enforce_file_format=True)
    assert a.getvalue() == b.getvalue()


def test_mask_outside_the_volume_is_refused(case):
    ct, assessment, _ = case
    f = assessment.findings[0]
    bad = replace(f, measurement=replace(f.measurement, mask=NoduleMask((10, 60, 60), np.ones((4, 8, 8), bool))))
    with pytest.raises(SegmentationError, match="lies outside the CT volume"):
        build_segmentation([bad], ct)
    no_mask = replace(f, measurement=replace(f.measurement, mask=None))
    with pytest.raises(SegmentationError, match="none of the findings has a mask"):
        build_segmentation([no_mask], ct)


def test_each_segment_has_its_own_recommended_display_colour(case):
    """OHIF picks its own colours when the SEG gives none (it gave two of seven nodules the same)."""
    from highdicom.color import CIELabColor

    from dicom_sr.seg import DISPLAY_COLOURS_RGB, display_colour

    seg = case[2]
    labs = [tuple(s.RecommendedDisplayCIELabValue) for s in seg.SegmentSequence]
    assert len(set(labs)) == len(labs) == 2
    rgb = [CIELabColor.from_dicom_value(lab).to_rgb() for lab in labs]
    assert [tuple(round(v) for v in c) for c in rgb] == [DISPLAY_COLOURS_RGB[0], DISPLAY_COLOURS_RGB[1]]
    twelve = {display_colour(i).value for i in range(12)}
    assert len(twelve) == 12


def test_overlapping_masks_keep_every_voxel_of_each_segment(case, tmp_path):
    """Two nodules whose masks share voxels: each segment still holds all of its own (SegmentsOverlap YES)."""
    ct, assessment, _ = case
    first, second = assessment.findings[:2]
    m = first.measurement.mask
    shifted = NoduleMask((m.origin_index_zyx[0], m.origin_index_zyx[1] + 1, m.origin_index_zyx[2] + 1), m.mask.copy())
    overlapping = [first, replace(second, measurement=replace(second.measurement, mask=shifted))]
    seg = build_segmentation(overlapping, ct)
    assert seg.SegmentsOverlap == "YES"
    back = hd.seg.segread(write(seg, tmp_path / "seg.dcm"))
    for number, mask in ((1, m), (2, shifted)):
        assert _segment_matches(back, ct, number, mask), number
