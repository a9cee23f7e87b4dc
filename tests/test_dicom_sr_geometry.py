"""Image plane geometry (PS3.3 C.7.6.2.1.1) and the SCOORD pixel convention."""

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicom_sr.geometry import GeometryError, plane_of


def _header(**kw):
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    ds.ImagePositionPatient = kw.get("ipp", [-10.0, 20.0, 30.0])
    ds.ImageOrientationPatient = kw.get("iop", [0.0, 1.0, 0.0, 0.0, 0.0, -1.0])  # sagittal
    ds.PixelSpacing = kw.get("spacing", [2.0, 0.5])  # row spacing 2, column spacing 0.5
    ds.Rows, ds.Columns = 10, 10
    return ds


def test_centre_of_first_pixel_is_image_position():
    plane = plane_of(_header())
    assert np.allclose(plane.to_lps(0.5, 0.5), (-10, 20, 30))


def test_columns_follow_the_row_direction_and_rows_the_column_direction():
    plane = plane_of(_header())
    # one column right: +0.5 mm along the first cosine (y); one row down: +2 mm along the second (-z)
    assert np.allclose(plane.to_lps(1.5, 0.5), (-10, 20.5, 30))
    assert np.allclose(plane.to_lps(0.5, 1.5), (-10, 20, 28))


def test_from_lps_inverts_to_lps_and_measures_distance_from_plane():
    plane = plane_of(_header())
    c, r, d = plane.from_lps((-7.0, 21.25, 24.0))
    # normal = row x column cosines = (-1, 0, 0): the point is 3 mm on the -normal side
    assert np.allclose((c, r, d), (3.0, 3.5, -3.0))
    assert np.allclose(plane.to_lps(c, r), (-10.0, 21.25, 24.0))


def test_enhanced_multiframe_uses_the_frame_geometry():
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.4"
    ds.Rows = ds.Columns = 4
    shared = Dataset()
    orient, measures = Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [1.0, 1.0]
    shared.PlaneOrientationSequence = [orient]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for z in (0.0, 5.0):
        f, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0.0, 0.0, z]
        f.PlanePositionSequence = [pos]
        frames.append(f)
    ds.PerFrameFunctionalGroupsSequence = frames
    assert plane_of(ds, 2).to_lps(0.5, 0.5) == (0.0, 0.0, 5.0)
    with pytest.raises(GeometryError, match="has 2 frames; frame 3"):
        plane_of(ds, 3)


def test_missing_geometry_is_named():
    ds = _header()
    del ds.PixelSpacing
    with pytest.raises(GeometryError, match="image 1.2.3 has no PixelSpacing"):
        plane_of(ds)
