"""segmentation.characterize: composition, calcification, fat, and reader labels winning."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segmentation.characterize import characterize, merge_reader_attributes
from segmentation.io import image_from_array
from segmentation.nodule import segment_nodule


def nodule(outer_hu: float, inner_hu: float | None = None, inner_r: float = 3.0, r: float = 6.0):
    rng = np.random.default_rng(0)
    zz, yy, xx = np.indices((40, 40, 40))
    d = np.sqrt((zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2)
    hu = np.where(d <= r, outer_hu, -850.0)
    if inner_hu is not None:
        hu = np.where(d <= inner_r, inner_hu, hu)
    hu = hu + rng.normal(0, 15, hu.shape)
    image = image_from_array(hu.astype(np.float32), (0, 0, 0), (1, 1, 1))
    return image, segment_nodule(image, (20.0, 20.0, 20.0))


def test_solid_nodule():
    image, m = nodule(40.0)
    c = characterize(image, m)
    assert c.composition.value == "solid" and c.composition.origin == "algorithm"
    assert c.benign_calcification.value is False
    assert c.fat.value is False


def test_ground_glass_nodule():
    image, m = nodule(-600.0)
    assert characterize(image, m).composition.value == "non-solid"


def test_part_solid_nodule():
    image, m = nodule(-600.0, 40.0)
    assert characterize(image, m).composition.value == "part-solid"


def test_central_calcification_is_benign():
    image, m = nodule(40.0, 500.0)
    assert characterize(image, m).benign_calcification.value is True


def test_fat_containing_nodule():
    image, m = nodule(40.0, -90.0, inner_r=3.5)
    assert characterize(image, m).fat.value is True


@dataclass
class Reader:
    composition: str | None = None
    fat: bool | None = None
    juxtapleural: bool | None = None


def test_reader_labels_win():
    image, m = nodule(40.0)
    merged = merge_reader_attributes(characterize(image, m), Reader(composition="part-solid", juxtapleural=True))
    assert merged.composition.value == "part-solid" and merged.composition.origin == "reader"
    assert merged.juxtapleural.value is True and merged.juxtapleural.origin == "reader"
    assert merged.fat.origin == "algorithm"


def chest_with_nodule(centre_zyx, r_vox=4):
    """Body, two lungs (right lung at low x = patient right in LPS), one solid nodule."""
    rng = np.random.default_rng(1)
    z, y, x = np.indices((60, 96, 96))
    body = ((y - 48) / 44.0) ** 2 + ((x - 48) / 46.0) ** 2 <= 1
    right = ((y - 48) / 34.0) ** 2 + ((x - 26) / 18.0) ** 2 <= 1
    left = ((y - 48) / 34.0) ** 2 + ((x - 70) / 18.0) ** 2 <= 1
    hu = np.where(right | left, -850.0, np.where(body, 40.0, -1000.0))
    d = np.sqrt((z - centre_zyx[0]) ** 2 + (y - centre_zyx[1]) ** 2 + (x - centre_zyx[2]) ** 2)
    hu = np.where(d <= r_vox, 40.0, hu) + rng.normal(0, 10, hu.shape)
    image = image_from_array(hu.astype(np.float32), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    seed = (float(centre_zyx[2]), float(centre_zyx[1]), float(centre_zyx[0]))
    return image, segment_nodule(image, seed)


def test_pleural_contact_and_upper_right_lobe():
    from segmentation.lungs import lung_mask

    image, m = chest_with_nodule((50, 48, 11))  # against the lateral wall of the right lung, near the apex
    c = characterize(image, m, lung_mask=lung_mask(image))
    assert c.juxtapleural.value is True
    assert c.pleural_distance_mm.value <= 1.0
    assert c.upper_lobe.value is True
    assert c.lobe.value in ("RUL", "RML")


def test_central_nodule_is_not_juxtapleural_and_lower_left():
    from segmentation.lungs import lung_mask

    image, m = chest_with_nodule((6, 60, 70))  # middle of the left lung, near the base, posterior
    c = characterize(image, m, lung_mask=lung_mask(image))
    assert c.juxtapleural.value is False
    assert c.pleural_distance_mm.value > 5.0
    assert c.lobe.value == "LLL"
