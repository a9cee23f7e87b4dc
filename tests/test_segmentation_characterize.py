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
