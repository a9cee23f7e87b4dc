"""Seeds from real viewers' objects, from our own synthetic SR/GSPS, and from JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_sr.seeds import SeedError, is_seed_object, read_exam_labels, read_seeds
from tests.dicom_sr_support import expected_lps, image_header, make_ct_series

THIRD = Path("/work/shared/realdata/third-party-objects")
CORNERSTONE = THIRD / "dcmjs-cornerstone-tid1500.dcm"
DCMJS_SAMPLE = THIRD / "dcmjs-sample-sr.dcm"
HIGHDICOM = THIRD / "highdicom-tid1500-multiple-groups.dcm"
SOFTNETA = THIRD / "softneta-gsps.dcm"

pytestmark = pytest.mark.skipif(not THIRD.is_dir(), reason="shared real-data folder is not mounted")


def _referenced_images(path: Path) -> set[str]:
    ds = pydicom.dcmread(path)
    uids = set()
    for elem_ds in [ds]:
        for seq in ("CurrentRequestedProcedureEvidenceSequence",):
            for study in elem_ds.get(seq) or []:
                for series in study.ReferencedSeriesSequence:
                    uids |= {str(s.ReferencedSOPInstanceUID) for s in series.ReferencedSOPSequence}
    for series in ds.get("ReferencedSeriesSequence") or []:
        uids |= {str(s.ReferencedSOPInstanceUID) for s in series.ReferencedImageSequence}
    return uids


def _headers(path: Path) -> dict[str, Dataset]:
    return {uid: image_header(uid) for uid in _referenced_images(path)}


def test_every_third_party_object_is_a_seed_object():
    for path in sorted(THIRD.glob("*.dcm")):
        assert is_seed_object(pydicom.dcmread(path)), path.name


@pytest.mark.parametrize("path", [CORNERSTONE, DCMJS_SAMPLE, HIGHDICOM, SOFTNETA], ids=lambda p: p.name)
def test_2d_marks_without_the_images_are_a_clear_error(path):
    with pytest.raises(SeedError, match=r"marks image [0-9.]+, which is not in the study's images"):
        read_seeds(path)


@pytest.mark.parametrize("path", [CORNERSTONE, DCMJS_SAMPLE, HIGHDICOM, SOFTNETA], ids=lambda p: p.name)
def test_every_third_party_object_reads_with_image_headers(path):
    seeds = read_seeds(path, images=_headers(path))
    assert seeds
    for seed in seeds:
        assert all(np.isfinite(seed.position_lps_mm))
        assert seed.seed_object_uid == str(pydicom.dcmread(path).SOPInstanceUID)


def test_softneta_gsps_ellipse_seeds_at_its_centre():
    headers = _headers(SOFTNETA)
    (seed,) = read_seeds(SOFTNETA, images=headers)
    # the ellipse's major axis runs from (1714.37, 991.42) to (2506.86, 991.42) in image pixels
    centre = ((1714.3681640625 + 2506.859375) / 2, 991.4224243164062)
    header = headers[seed.referenced_sop_instance_uid]
    assert np.linalg.norm(np.asarray(seed.position_lps_mm) - expected_lps(header, *centre)) < 0.5
    assert seed.source == "gsps"
    assert "Mean: 2651.41" in seed.label  # the text of the annotation travels with the mark
    assert seed.series_uid == header.SeriesInstanceUID  # the study's image headers are authoritative


def test_cornerstone_point_and_bidirectional():
    headers = _headers(CORNERSTONE)
    seeds = read_seeds(CORNERSTONE, images=headers)
    assert len(seeds) == 6  # arrow, 2 ellipses, bidirectional, 2 lengths
    arrow = next(s for s in seeds if "ArrowAnnotate" in (s.tracking_id or ""))
    header = headers[arrow.referenced_sop_instance_uid]
    assert np.linalg.norm(np.asarray(arrow.position_lps_mm) - expected_lps(header, 169.5, 360)) < 0.5
    assert arrow.tracking_uid == "2.25.957619585401316267806321583073461065454"
    assert "ExampleText" in arrow.label
    bidi = next(s for s in seeds if "Bidirectional" in (s.tracking_id or ""))
    ds = pydicom.dcmread(CORNERSTONE)
    group = [
        g
        for g in ds.ContentSequence[-1].ContentSequence
        if any(getattr(i, "TextValue", "").endswith("Bidirectional") for i in g.ContentSequence)
    ][0]
    lines = [
        np.asarray(n.ContentSequence[0].GraphicData, float).reshape(2, 2)
        for n in group.ContentSequence
        if n.ValueType == "NUM"
    ]
    # the two axes cross near the middle; the seed is the mean of their midpoints
    mid = np.mean([line.mean(axis=0) for line in lines], axis=0)
    header = headers[bidi.referenced_sop_instance_uid]
    assert np.linalg.norm(np.asarray(bidi.position_lps_mm) - expected_lps(header, *mid)) < 0.5


def test_highdicom_sr_scoord3d_point_and_circle_on_a_real_ct_header():
    ct_small = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    seeds = read_seeds(HIGHDICOM, images={str(ct_small.SOPInstanceUID): ct_small})
    by_id = {s.tracking_id: s for s in seeds}
    assert set(by_id) == {"LungNodule0001", "Aorta0001", "Vertebra0001"}  # "Image0001" has no mark
    # SCOORD3D: LPS as written
    assert np.allclose(by_id["Vertebra0001"].position_lps_mm, (123.5, 234.1, -23.7), atol=1e-3)
    # SCOORD CIRCLE centred on (45, 55) of CT_small
    nodule = by_id["LungNodule0001"]
    assert np.linalg.norm(np.asarray(nodule.position_lps_mm) - expected_lps(ct_small, 45, 55)) < 0.5
    assert nodule.reader == "Doe^John"
    assert nodule.series_uid == str(ct_small.SeriesInstanceUID)


def test_dcmjs_sample_quirks_are_tolerated():
    # units coded "1" and an over-long short string: still read
    seeds = read_seeds(DCMJS_SAMPLE, images=_headers(DCMJS_SAMPLE))
    assert len(seeds) == 1 and "Bidirectional" in seeds[0].tracking_id


# --------------------------------------------------------------------------- our own marks
def _sr_with(scoord: Dataset, ct: list[Dataset], label: str) -> Dataset:
    """A minimal Comprehensive SR with one measurement group holding ``scoord``."""
    import highdicom as hd

    k = 5
    region_src = hd.sr.SourceImageForRegion(str(ct[k].SOPClassUID), str(ct[k].SOPInstanceUID))
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
        referenced_region=hd.sr.ImageRegion(scoord["type"], np.asarray(scoord["data"], np.float32), region_src),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(),
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "CT unspecified body region"),
        imaging_measurements=[group],
    )
    return hd.sr.ComprehensiveSR(
        evidence=ct,
        content=report[0],
        series_instance_uid=generate_uid(),
        series_number=50,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="Viewer",
    )


@pytest.mark.parametrize(
    ("gtype", "data", "centre"),
    [
        ("POINT", [[22.5, 20.5]], (22.5, 20.5)),
        ("POLYLINE", [[16.5, 20.5], [28.5, 20.5]], (22.5, 20.5)),
        ("CIRCLE", [[22.5, 20.5], [26.5, 20.5]], (22.5, 20.5)),
        ("ELLIPSE", [[17.5, 20.5], [27.5, 20.5], [22.5, 17.5], [22.5, 23.5]], (22.5, 20.5)),
    ],
)
def test_sr_shapes_seed_at_their_centre_on_a_rotated_series(gtype, data, centre):
    ct = make_ct_series(rotated=True, seed="rot")
    sr = _sr_with({"type": gtype, "data": data}, ct, "Nodule 1 part-solid")
    images = {str(d.SOPInstanceUID): d for d in ct}
    (seed,) = read_seeds(sr, images=images)
    assert np.linalg.norm(np.asarray(seed.position_lps_mm) - expected_lps(ct[5], *centre)) < 0.5
    assert seed.attributes.composition == "part-solid"
    assert seed.series_uid == str(ct[0].SeriesInstanceUID)
    assert seed.referenced_sop_instance_uid == str(ct[5].SOPInstanceUID)


def test_gsps_display_units_use_the_displayed_area():
    ct = make_ct_series(seed="gsps")
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    ds.SOPInstanceUID = generate_uid()
    img = Dataset()
    img.ReferencedSOPClassUID = ct[3].SOPClassUID
    img.ReferencedSOPInstanceUID = ct[3].SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = ct[3].SeriesInstanceUID
    series.ReferencedImageSequence = [img]
    ds.ReferencedSeriesSequence = [series]
    area = Dataset()
    area.DisplayedAreaTopLeftHandCorner = [17, 1]  # a zoomed, panned view of columns 17..48
    area.DisplayedAreaBottomRightHandCorner = [48, 64]
    ds.DisplayedAreaSelectionSequence = [area]
    graphic = Dataset()
    graphic.GraphicAnnotationUnits = "DISPLAY"
    graphic.GraphicDimensions = 2
    graphic.NumberOfGraphicPoints = 1
    graphic.GraphicData = [0.25, 0.5]
    graphic.GraphicType = "POINT"
    text = Dataset()
    text.UnformattedTextValue = "GGN"
    annotation = Dataset()
    annotation.GraphicLayer = "L1"
    annotation.GraphicObjectSequence = [graphic]
    annotation.TextObjectSequence = [text]
    free = Dataset()
    free.GraphicLayer = "L1"
    t2 = Dataset()
    t2.UnformattedTextValue = "additional"
    free.TextObjectSequence = [t2]
    ds.GraphicAnnotationSequence = [annotation, free]
    ds.ContentCreatorName = "Smith^Anna"
    (seed,) = read_seeds(ds, images={str(d.SOPInstanceUID): d for d in ct})
    # 0.25 of a 32-column displayed area starting at column 17 -> pixel coordinate 16 + 8 = 24; row 0.5*64 = 32
    assert np.linalg.norm(np.asarray(seed.position_lps_mm) - expected_lps(ct[3], 24.0, 32.0)) < 0.5
    assert seed.attributes.composition == "non-solid"
    assert seed.attributes.actionable_additional_findings is True  # free text: exam-level labels reach every seed
    assert seed.reader == "Smith^Anna"


def test_json_seeds(tmp_path):
    path = tmp_path / "seeds.json"
    path.write_text(
        json.dumps(
            {
                "series_uid": "1.2.3",
                "seeds": [
                    {"position_lps_mm": [1, 2, 3], "label": "pfn"},
                    {"position_lps_mm": [4.5, -6, 7], "reader": "Doe^J"},
                ],
            }
        )
    )
    a, b = read_seeds(path)
    assert a.position_lps_mm == (1.0, 2.0, 3.0) and a.attributes.perifissural is True and a.series_uid == "1.2.3"
    assert b.reader == "Doe^J" and b.source == "json"
    assert read_seeds({"points": [[0, 0, 0]]})[0].position_lps_mm == (0.0, 0.0, 0.0)
    with pytest.raises(SeedError, match="seed 1 position_lps_mm must be 3 finite numbers"):
        read_seeds([{"position_lps_mm": [1, 2]}])


def test_not_a_seed_object():
    ct = make_ct_series(n_slices=2, seed="x")
    assert not is_seed_object(ct[0])
    with pytest.raises(SeedError, match="is not a seed object"):
        read_seeds(ct[0])


def test_exam_level_labels_without_marks():
    ct = make_ct_series(n_slices=2, seed="nn")
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.11.1"
    ds.SOPInstanceUID = generate_uid()
    img = Dataset()
    img.ReferencedSOPClassUID = ct[0].SOPClassUID
    img.ReferencedSOPInstanceUID = ct[0].SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = ct[0].SeriesInstanceUID
    series.ReferencedImageSequence = [img]
    ds.ReferencedSeriesSequence = [series]
    text = Dataset()
    text.UnformattedTextValue = "Read: No-Nodules"
    annotation = Dataset()
    annotation.GraphicLayer = "L1"
    annotation.TextObjectSequence = [text]
    ds.GraphicAnnotationSequence = [annotation]
    assert read_seeds(ds, images={str(d.SOPInstanceUID): d for d in ct}) == []
    assert is_seed_object(ds)  # the pipeline must see the reader's "no nodules"
    labels = read_exam_labels(ds)
    assert labels.no_nodules is True and labels.composition is None
    assert read_exam_labels({"labels": "infection", "seeds": []}).infection_or_inflammation is True
    text.UnformattedTextValue = "nothing to say"
    assert not is_seed_object(ds)
