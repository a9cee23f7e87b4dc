"""The one production call: segment and measure the nodule at a seed.

``noduled measure``, ``noduled analyze``, the daemon and ``benchmarks.real_nodules`` all call
:func:`measure_at_seed` (and :func:`series_lung_mask` once per series), so research numbers are
production numbers.  Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import SimpleITK as sitk

from segmentation.types import NoduleMeasurement

#: an image narrower than this (mm, in-plane) cannot hold a chest: it is a crop without lung context
MIN_CHEST_WIDTH_MM = 150.0


def series_lung_mask(image: sitk.Image) -> sitk.Image | None:
    """The whole-series lung mask, computed once per series and passed to every :func:`measure_at_seed`.

    None for a crop around a nodule (narrower than ``MIN_CHEST_WIDTH_MM`` in-plane): without the chest
    wall and the air outside the body a "lung mask" of a crop is only its air-like voxels, which the
    segmentation finds by itself.
    """
    from segmentation.lungs import lung_mask

    width_mm = min(n * s for n, s in zip(image.GetSize()[:2], image.GetSpacing()[:2]))
    if width_mm < MIN_CHEST_WIDTH_MM:
        return None
    return lung_mask(image)


def measure_at_seed(
    image: sitk.Image,
    seed_lps_mm: Sequence[float],
    *,
    lung_mask: sitk.Image | None = None,
    solid_threshold_hu: float = -300.0,
) -> NoduleMeasurement:
    """Segment and measure the nodule at ``seed_lps_mm`` (LPS mm) in ``image`` (HU).

    ``lung_mask``: the whole-series lung mask from :func:`series_lung_mask`, or None on a crop
    without chest context.  Raises :class:`~segmentation.types.NoNoduleAtSeed`.
    """
    from segmentation.nodule import segment_nodule

    return segment_nodule(image, seed_lps_mm, lung_mask=lung_mask, solid_threshold_hu=solid_threshold_hu)
