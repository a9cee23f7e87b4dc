"""segmentation.io: DICOM series -> HU volume, and every refusal with its message."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from segmentation.io import decode_ahead, image_from_array, load_series
from segmentation.types import SeriesError

SERIES = "1.2.826.0.1.3680043.10.1"


def ct_slice(z: float, *, series=SERIES, value=0, iop=(1, 0, 0, 0, 1, 0), x0=-10.0, tilt=None, image_type=None):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series
    ds.Modality = "CT"
    ds.ImageType = image_type or ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [x0, -20.0, z]
    ds.ImageOrientationPatient = list(iop)
    ds.PixelSpacing = [0.8, 0.5]  # row spacing (y), column spacing (x)
    ds.Rows, ds.Columns = 4, 6
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
    if tilt is not None:
        ds.GantryDetectorTilt = tilt
    pixels = np.full((4, 6), value, dtype=np.int16)
    pixels[1, 2] = value + 7
    ds.PixelData = pixels.tobytes()
    return ds


def test_sorted_by_position_with_hu_geometry_and_headers():
    zs = [4.0, 0.0, 2.0, 6.0]
    loaded = load_series([ct_slice(z, value=int(z) * 10) for z in zs])
    img = loaded.image
    assert img.GetSize() == (6, 4, 4)
    assert img.GetSpacing() == pytest.approx((0.5, 0.8, 2.0))
    assert img.GetOrigin() == pytest.approx((-10.0, -20.0, 0.0))
    assert img.GetDirection() == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(img)
    # slice k holds z = 2k; stored value 10 z -> HU = 2 * 10 z - 1024
    assert [float(arr[k, 0, 0]) for k in range(4)] == [-1024.0, -984.0, -944.0, -904.0]
    assert float(arr[0, 1, 2]) == -1024.0 + 14.0
    assert [float(ds.ImagePositionPatient[2]) for ds in loaded.datasets] == [0.0, 2.0, 4.0, 6.0]
    assert loaded.series_uid == SERIES
    # voxel (x=2, y=1, z=0) is at x0 + 2 * 0.5, y0 + 1 * 0.8
    assert img.TransformIndexToPhysicalPoint((2, 1, 0)) == pytest.approx((-9.0, -19.2, 0.0))


def test_reads_a_folder_and_skips_non_dicom(tmp_path):
    for k, z in enumerate([0.0, 1.0, 2.0]):
        ct_slice(z).save_as(tmp_path / f"{k}.dcm", enforce_file_format=True)
    (tmp_path / "reads.xml").write_text("<LidcReadMessage/>")
    assert load_series(tmp_path).image.GetSize()[2] == 3


def test_mixed_series():
    with pytest.raises(SeriesError, match="mixed series: the images belong to 2 series"):
        load_series([ct_slice(0.0), ct_slice(1.0), ct_slice(2.0, series=SERIES + ".2")])


def test_missing_slice_names_both_spacings():
    with pytest.raises(SeriesError, match=r"missing slices.*1 mm and 2 mm"):
        load_series([ct_slice(z) for z in (0.0, 1.0, 2.0, 4.0, 5.0)])


def test_non_uniform_spacing_names_both_spacings():
    with pytest.raises(SeriesError, match=r"non-uniform slice spacing \(1 mm and 1.5 mm\)"):
        load_series([ct_slice(z) for z in (0.0, 1.0, 2.0, 3.5, 4.5)])


def test_gantry_tilt_from_header_and_from_geometry():
    with pytest.raises(SeriesError, match="gantry tilt 15 degrees"):
        load_series([ct_slice(z, tilt=15) for z in (0.0, 1.0, 2.0)])
    with pytest.raises(SeriesError, match="gantry tilt"):
        load_series([ct_slice(z, x0=-10.0 + 0.3 * z) for z in (0.0, 1.0, 2.0)])


def test_non_axial_orientation():
    coronal = (1, 0, 0, 0, 0, -1)
    with pytest.raises(SeriesError, match="is not axial"):
        load_series([ct_slice(z, iop=coronal) for z in (0.0, 1.0, 2.0)])


def test_localizer_mixed_in():
    scout = ct_slice(0.5, image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    with pytest.raises(SeriesError, match="1 localizer"):
        load_series([ct_slice(0.0), ct_slice(1.0), scout])


def test_no_pixel_data():
    sr = Dataset()
    sr.SeriesInstanceUID = SERIES
    with pytest.raises(SeriesError, match="no pixel data"):
        load_series([sr])


def test_image_from_array_geometry():
    img = image_from_array(np.zeros((3, 4, 5)), (1.0, 2.0, 3.0), (0.5, 0.6, 2.0))
    assert img.GetSize() == (5, 4, 3)
    assert img.TransformIndexToPhysicalPoint((1, 1, 1)) == pytest.approx((1.5, 2.6, 5.0))


def test_given_datasets_keep_their_pixels():
    slices = [ct_slice(z) for z in (0.0, 1.0, 2.0)]
    load_series(iter(slices))
    assert all("PixelData" in ds for ds in slices)


def test_slices_decoded_ahead_load_without_decoding_again_and_to_the_same_volume(monkeypatch):
    """What the preload does as instances arrive: decoded then, the load at the release only copies."""
    import pydicom.dataset
    import SimpleITK as sitk

    def slices() -> list[Dataset]:
        return [ct_slice(z, value=10 * k) for k, z in enumerate((2.0, 0.0, 1.0))]

    expected = sitk.GetArrayFromImage(load_series(slices()).image)
    ahead = slices()
    for ds in ahead:
        decode_ahead(ds)
    decoded = []
    real = pydicom.dataset.pixel_array  # the decoder a dataset's pixel_array calls
    monkeypatch.setattr(pydicom.dataset, "pixel_array", lambda ds, **opts: decoded.append(ds) or real(ds, **opts))
    got = sitk.GetArrayFromImage(load_series(ahead).image)
    assert decoded == []
    load_series(slices())
    assert len(decoded) == 3  # the check sees a decode when there is one
    assert got.tobytes() == expected.tobytes()


def test_a_slice_that_cannot_be_decoded_ahead_is_reported_by_the_load():
    bad = ct_slice(1.0)
    bad.PixelData = bad.PixelData[:-5]  # truncated
    decode_ahead(bad)  # nothing raised: the load says what is wrong
    with pytest.raises(SeriesError, match="cannot be decoded"):
        load_series([ct_slice(0.0), bad, ct_slice(2.0)])


def _straightforward(slices):
    """The volume computed the plain way: pydicom's decoder, one float32 array per slice, np.stack."""
    ordered = sorted(slices, key=lambda ds: float(ds.ImagePositionPatient[2]))
    return np.stack(
        [
            ds.pixel_array.astype(np.float32) * np.float32(float(ds.RescaleSlope))
            + np.float32(float(ds.RescaleIntercept))
            for ds in ordered
        ]
    )


@pytest.mark.parametrize("encoding", ["signed", "unsigned", "bits-stored-12", "implicit"])
def test_volume_equals_the_straightforward_computation(encoding, tmp_path):
    """The in-place fill (raw 16-bit read, or pydicom's decoder for other encodings) gives the same
    float32 voxels as decoding every slice and stacking; per-slice fractional slopes included."""
    import SimpleITK as sitk
    from pydicom.uid import ImplicitVRLittleEndian

    rng = np.random.default_rng(3)
    slices = []
    for k, z in enumerate([3.0, 0.0, 1.0, 2.0, 4.0]):
        ds = ct_slice(z)
        if encoding == "unsigned":
            ds.PixelRepresentation = 0
            pixels = rng.integers(0, 65535, size=(4, 6), dtype=np.uint16)
        elif encoding == "bits-stored-12":  # sign extension from bit 11: pydicom's decoder does it
            ds.BitsStored, ds.HighBit = 12, 11
            pixels = rng.integers(0, 4096, size=(4, 6)).astype(np.uint16).view(np.int16)
        else:
            pixels = rng.integers(-2000, 3000, size=(4, 6)).astype(np.int16)
        if encoding == "implicit":
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.PixelData = pixels.tobytes()
        ds.RescaleSlope, ds.RescaleIntercept = [1, 0.7, 2.5, 1, 0.1][k], [-1024, -1000.5, 0, 0, -3.3][k]
        slices.append(ds)
    expected = _straightforward(slices)
    got = sitk.GetArrayFromImage(load_series(slices).image)
    assert got.dtype == np.float32
    assert got.tobytes() == expected.tobytes()  # bit for bit
    # the same through files (the production path: pixel data read from disk, then released)
    for k, ds in enumerate(slices):
        ds.save_as(tmp_path / f"{k}.dcm", enforce_file_format=True)
    assert sitk.GetArrayFromImage(load_series(tmp_path).image).tobytes() == expected.tobytes()
