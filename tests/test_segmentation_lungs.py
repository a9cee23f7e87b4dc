"""segmentation.lungs: body air excluded, lungs kept, vessels and pleural nodules filled."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from segmentation.io import image_from_array
from segmentation.lungs import lung_mask


def test_two_lungs_inside_a_body():
    hu = np.full((20, 128, 128), -1000.0, dtype=np.float32)  # outside air
    yy, xx = np.mgrid[0:128, 0:128]
    body = ((yy - 64) / 55.0) ** 2 + ((xx - 64) / 60.0) ** 2 <= 1
    left = ((yy - 64) / 35.0) ** 2 + ((xx - 92) / 20.0) ** 2 <= 1
    right = ((yy - 64) / 35.0) ** 2 + ((xx - 36) / 20.0) ** 2 <= 1
    hu[:, body] = 40.0
    hu[:, left | right] = -850.0
    hu[:, 62:66, 90:94] = 40.0  # a vessel inside the left lung
    hu[:, 64:70, 72:76] = 40.0  # a juxtapleural nodule on the medial pleura of the left lung
    image = image_from_array(hu, (0, 0, 0), (1.0, 1.0, 2.0))
    mask = sitk.GetArrayFromImage(lung_mask(image)).astype(bool)
    assert mask[10, 64, 36] and mask[10, 64, 92]
    assert mask[10, 63, 91]  # vessel filled
    assert not mask[10, 5, 5]  # outside air
    assert not mask[10, 64, 64]  # mediastinum between the lungs
    assert not mask[10, 64, 120]  # chest wall
    assert abs(int(mask[10].sum()) - int((left | right)[...].sum())) < 0.1 * (left | right).sum()


def test_lung_cut_by_a_tight_field_of_view_is_still_lung():
    """A reconstruction field of view that cuts through the lung makes the lung touch the
    image border like the air outside the body; its density tells them apart."""
    from segmentation.io import image_from_array
    from test_images import generate_case

    study = generate_case("solid-sizes", size="small", seed=1, images=True)[0]
    image = image_from_array(study.hu, study.origin_lps_mm, study.spacing_mm)
    mask = sitk.GetArrayViewFromImage(lung_mask(image))
    assert mask.mean() > 0.2
    for n in study.nodules:  # every nodule lies inside the lung mask
        i, j, k = image.TransformPhysicalPointToIndex(tuple(n["centroid_lps_mm"]))
        assert mask[k, j, i] == 1, n["id"]

    # with one lung in view, laterality still comes out right (patient coordinates, not the lung's box)
    from segmentation.characterize import characterize
    from segmentation.nodule import segment_nodule

    lungs = lung_mask(image)
    for n in study.nodules:
        c = characterize(image, segment_nodule(image, n["seed_lps_mm"], lung_mask=lungs), lung_mask=lungs)
        assert c.lobe is not None and c.lobe.value[0] == n["lobe"][0], (n["id"], c.lobe, n["lobe"])
        assert not c.juxtapleural.value or n["attachment"] != "free", n["id"]


def test_decomposed_disk_closing_equals_ndimage_closing():
    """The row-decomposed closing used per slice is ndimage.binary_closing with the digital disk, exactly
    (borders included: outside the array is background), for every radius the mask can use."""
    from scipy import ndimage

    from segmentation.lungs import _binary_closing_disk

    rng = np.random.default_rng(7)
    for trial in range(200):
        radius = int(rng.integers(1, 10))
        shape = tuple(int(v) for v in rng.integers(1, 70, size=2))
        binary = rng.random(shape) < rng.random()
        if trial % 2:  # blobs with indentations, like a lung's outline
            binary = ndimage.binary_opening(binary, iterations=int(rng.integers(1, 3)))
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        disk = yy**2 + xx**2 <= radius**2
        expected = ndimage.binary_closing(binary, structure=disk)
        assert np.array_equal(_binary_closing_disk(binary, radius), expected), (trial, radius, shape)


def test_small_components_are_filled_like_ndimage():
    """Per-slice filling of small components (the shortcut for those under 7 pixels included) equals
    ndimage.binary_fill_holes of each component: a one-pixel hole closed by 7 pixels is filled."""
    from scipy import ndimage

    from segmentation.lungs import _fill_slices

    mask = np.zeros((2, 12, 12), dtype=bool)
    mask[0, 1, 2:4] = mask[0, 2, 2] = mask[0, 2, 4] = mask[0, 3, 2:5] = True  # 7 pixels round a hole
    mask[1, 5, 5:8] = mask[1, 6, 5] = mask[1, 6, 7] = True  # 5 pixels, open: nothing to fill
    mask[1, 9:11, 1] = True
    out = _fill_slices(mask, (1.0, 1.0, 1.0))
    assert out[0, 2, 3]
    for z in range(2):
        labels, count = ndimage.label(mask[z])
        expected = np.zeros_like(mask[z])
        for index in range(1, count + 1):
            expected |= ndimage.binary_fill_holes(labels == index)
        assert np.array_equal(out[z], expected)
