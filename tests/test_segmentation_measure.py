"""segmentation.measure: axes, plane choice, volume and HU statistics on known masks."""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.io import image_from_array
from segmentation.measure import measure_nodule, section_axes
from segmentation.types import NoduleMask


def test_section_axes_of_an_ellipse():
    yy, xx = np.mgrid[0:60, 0:80]
    ellipse = (((xx - 40) / 30.0) ** 2 + ((yy - 30) / 15.0) ** 2 <= 1).astype(float)
    long_mm, short_mm, long_pts, short_pts = section_axes(ellipse, np.array([0.5, 0.5]))
    assert long_mm == pytest.approx(30.0, abs=0.6)
    assert short_mm == pytest.approx(15.0, abs=0.6)
    d_long = (long_pts[1] - long_pts[0]) / np.linalg.norm(long_pts[1] - long_pts[0])
    d_short = (short_pts[1] - short_pts[0]) / np.linalg.norm(short_pts[1] - short_pts[0])
    assert abs(d_long @ d_short) < 0.05  # perpendicular


def test_plane_with_the_longest_axis_is_reported_and_endpoints_are_lps():
    # box elongated along z (cranio-caudal): the coronal or sagittal plane must be reported
    hu = np.full((40, 20, 20), -850.0, dtype=np.float32)
    hu[5:35, 6:14, 6:14] = 40.0
    image = image_from_array(hu, (100.0, 200.0, -50.0), (1.0, 1.0, 1.0))
    mask = hu > -400
    m = measure_nodule(image, NoduleMask((0, 0, 0), mask, mask.astype(np.float32)))
    assert m.measurement_plane in ("coronal", "sagittal")
    assert m.long_axis_mm > 29.0
    assert m.max_axial_diameter_mm == pytest.approx(np.hypot(8, 8), abs=1.0)
    assert m.volume_mm3 == pytest.approx(30 * 8 * 8)
    assert m.mean_diameter_mm == pytest.approx((m.long_axis_mm + m.short_axis_mm) / 2)
    zs = sorted(p[2] for p in m.long_axis_endpoints_lps_mm)
    assert zs[0] == pytest.approx(-50.0 + 4.5, abs=1.0) and zs[1] == pytest.approx(-50.0 + 34.5, abs=1.0)
    assert m.mean_hu == pytest.approx(40.0)
    assert m.hu_percentiles[50] == pytest.approx(40.0)
    assert m.centroid_lps_mm == pytest.approx((109.5, 209.5, -30.5))


def test_solid_component_of_a_part_solid_mask():
    hu = np.full((30, 30, 30), -850.0, dtype=np.float32)
    zz, yy, xx = np.indices(hu.shape)
    r = np.sqrt((zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 15) ** 2)
    hu[r <= 10] = -600.0
    hu[r <= 4] = 30.0
    image = image_from_array(hu, (0, 0, 0), (1, 1, 1))
    mask = r <= 10
    m = measure_nodule(image, NoduleMask((0, 0, 0), mask), nodule_hu=-600.0)
    assert m.solid_volume_mm3 == pytest.approx(4 / 3 * np.pi * 4**3, rel=0.15)
    assert m.solid_mean_diameter_mm == pytest.approx(8.0, abs=1.0)
