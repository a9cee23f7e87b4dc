"""The Secondary Capture key images: valid DICOM, labelled derived, the ruler drawn on the nodule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dicom_sr.geometry import plane_of
from dicom_sr.key_images import (
    NOT_FOR_DIAGNOSIS,
    RULER_RGB,
    KeyImageError,
    build_key_images,
    nodule_caption,
)
from tests.dicom_sr_support import (
    dciodvfy_errors,
    make_assessment,
    make_ct_series,
    write,
)


@pytest.fixture(scope="module")
def case():
    ct = make_ct_series(seed="key-images")
    assessment = make_assessment(ct)
    images, rulers = build_key_images(assessment, ct)
    return ct, assessment, images, rulers


def test_one_image_per_nodule_and_a_summary_all_valid(case, tmp_path):
    ct, assessment, images, _ = case
    assert len(images) == len(assessment.findings) + 1
    assert len({d.SOPInstanceUID for d in images}) == len(images)
    for k, ds in enumerate(images):
        assert dciodvfy_errors(write(ds, tmp_path / f"sc{k}.dcm")) == []
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
        assert ds.StudyInstanceUID == ct[0].StudyInstanceUID and ds.PatientID == ct[0].PatientID
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and ds.BurnedInAnnotation == "YES"
        assert NOT_FOR_DIAGNOSIS in ds.DerivationDescription and ds.InstanceNumber == k + 1
    for ds in images[:-1]:  # per-nodule images name the CT image they were made from
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID in {d.SOPInstanceUID for d in ct}


def test_the_ruler_is_drawn_on_the_nodule(case):
    ct, assessment, images, rulers = case
    by_uid = {d.SOPInstanceUID: d for d in ct}
    for finding, ds, ruler in zip(assessment.findings, images, rulers):
        source = by_uid[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
        plane = plane_of(source)
        scale = int(ds.Columns) // int(source.Columns)
        pixels = ds.pixel_array
        a, b = np.asarray(ruler.start), np.asarray(ruler.end)
        middle = (a + b) / 2
        col, row = (int(round(v)) for v in middle)
        assert tuple(pixels[row, col]) == RULER_RGB  # drawn there
        # back to the CT: the ruler's middle lies on the nodule (its centre, soft-tissue HU under it)
        scoord = (middle + 0.5) / scale
        lps = np.asarray(plane.to_lps(float(scoord[0]), float(scoord[1])))
        centre = np.asarray(finding.measurement.centroid_lps_mm)
        assert np.linalg.norm((lps - centre)[:2]) < 1.0
        hu = source.pixel_array[int(scoord[1]), int(scoord[0])]
        assert hu > -400, f"{finding.tracking_id}: {hu} HU under the ruler"
        # away from the nodule the image is the lung in a lung window (dark grey, not ruler colour)
        assert tuple(pixels[4 * scale, -4 * scale]) != RULER_RGB


def test_caption_says_volume_diameter_category_and_growth(case):
    _, assessment, _, _ = case
    first, second = nodule_caption(assessment.findings[0])
    m = assessment.findings[0].measurement
    assert first.startswith(f"{assessment.findings[0].tracking_id}: {round(m.volume_mm3)} mm3, ")
    assert f"NLCSP category {assessment.findings[0].category}" in first
    comparison = next((c for c in assessment.findings[0].comparisons if c.is_comparison_study), None)
    if comparison is not None and comparison.volume_change_pct is not None:
        assert f"{comparison.volume_change_pct:+.1f} %" in second


def test_the_study_must_match(case):
    ct, assessment, _, _ = case
    with pytest.raises(KeyImageError, match="study"):
        build_key_images(replace(assessment, study_uid="1.2.3"), ct)
