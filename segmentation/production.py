"""The one production call: segment and measure the nodule at a seed.

``noduled measure``, ``noduled analyze``, the daemon and ``benchmarks.real_nodules`` all call
:func:`measure_at_seed` (and :func:`series_lung_mask` once per series), so research numbers are
production numbers.  Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import SimpleITK as sitk

from segmentation.types import NoduleMeasurement


def series_lung_mask(image: sitk.Image) -> sitk.Image:
    """The whole-series lung mask (computed once per series and passed to every :func:`measure_at_seed`)."""
    from segmentation.lungs import lung_mask

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
