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
