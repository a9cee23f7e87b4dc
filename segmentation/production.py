"""The one production call: segment and measure the nodule at a seed.

``noduled measure``, ``noduled analyze``, the daemon and ``benchmarks.real_nodules`` all call
:func:`measure_at_seed` (and :func:`series_lung_mask` once per series), so research numbers are
production numbers.  Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

from segmentation import quality
from segmentation.types import NoduleMeasurement, NoNoduleAtSeed

if TYPE_CHECKING:
    from segmentation.nodule import RoiResult

#: segmentations from the mask's centre (its deepest voxel) at most, until the centre stays put
MAX_CENTRE_PASSES = 2
#: after the first re-segmentation, a centre that moves less than this share of the mask's depth stays put
CENTRE_TOLERANCE_OF_DEPTH = 0.25
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

    The seed's segmentation finds the nodule's centre (its deepest voxel); the centre's
    segmentation is the result, so where the reader clicked does not change it.  When that mask's
    own centre lies elsewhere (a seed that first found a neighbouring structure, or a mask that
    changed with its ROI) it is segmented again from there, up to ``MAX_CENTRE_PASSES`` times.  A
    large disagreement between the seed's and the final segmentation flags the volume
    seed-dependent (:mod:`segmentation.quality`).
    """
    from segmentation import nodule as nod

    seed = tuple(float(v) for v in seed_lps_mm)
    hu = sitk.GetArrayViewFromImage(image)
    lung = sitk.GetArrayViewFromImage(lung_mask) if lung_mask is not None else None
    spacing_zyx = np.array(image.GetSpacing()[::-1], dtype=float)
    seed_zyx = np.array(image.TransformPhysicalPointToContinuousIndex(seed)[::-1])
    if np.any(seed_zyx < -0.5) or np.any(seed_zyx > np.array(hu.shape) - 0.5):
        raise NoNoduleAtSeed(f"{nod._where(seed)}: the seed lies outside the image volume")
    result, box = segment_in_growing_roi(hu, lung, seed_zyx, spacing_zyx, seed)
    v1 = float(result.fraction.sum())
    first: tuple[np.ndarray, Any] | None = None
    here = seed_zyx
    for k in range(MAX_CENTRE_PASSES):
        # a cavitary nodule's centre is its cavity's: the seed there finds the same cavity and wall again
        core = result.mask if result.cavity is None else result.cavity
        centre = nod._deepest_voxel(core, spacing_zyx) + np.array([s.start for s in box])
        tolerance = 0.5 * float(spacing_zyx.min())
        if k > 0:
            # a large nodule's deepest voxels form a plateau: a move within it is no new centre
            tolerance = max(tolerance, CENTRE_TOLERANCE_OF_DEPTH * float(nod._depth(result.mask, spacing_zyx).max()))
        if np.linalg.norm((centre - here) * spacing_zyx) <= tolerance:
            break  # segmented from its own centre: converged
        start_mm = _roi_holding(result.mask, box, centre, spacing_zyx, hu.shape)
        try:
            second, box2 = segment_in_growing_roi(
                hu, lung, centre.astype(float), spacing_zyx, seed, at_least_mm=start_mm
            )
        except NoNoduleAtSeed:
            break
        if first is None:
            first = (result.mask, box)
        result, box, here = second, box2, centre
    v2 = float(result.fraction.sum())
    reseed_change = abs(float(np.log(max(v2, 1e-6) / max(v1, 1e-6)))) if first is not None else 0.0
    measured = nod.finish_measurement(image, result, box, seed, reseed_change, solid_threshold_hu=solid_threshold_hu)
    evidence = quality.gather(
        result.mask,
        result.smoothed,
        result.threshold_hu,
        box,
        first_mask=None if first is None else first[0],
        first_box=None if first is None else first[1],
    )
    diagnostics = getattr(nod._diagnostics, "last", None)
    if isinstance(diagnostics, dict):
        diagnostics.update(asdict(evidence))
    return replace(measured, quality=quality.assess(measured.quality, evidence))


def segment_in_growing_roi(
    hu: Any, lung: Any, seed_zyx: np.ndarray, spacing_zyx: np.ndarray, seed: Any, *, at_least_mm: float = 0.0
) -> tuple[RoiResult, tuple[slice, slice, slice]]:
    """:func:`~segmentation.nodule.segment_roi` in ROIs of growing size around ``seed_zyx`` until the
    nodule and its shell fit.

    The ROI grows only while the mask comes near a face of the box that can move: a face that is
    the image's own face (a crop that ends at the nodule, or the top slice) does not move when the
    ROI grows, and growing the other faces for it only repeats the work (on the LIDC crops the ROI
    went through every size up to the whole crop, 2.2 segmentations per pass).  ``at_least_mm``:
    start at this half-size at least (the previous pass's mask needed it).
    """
    from segmentation import nodule as nod

    result = None
    box = None
    shape = np.array(hu.shape)
    first = max(nod.first_roi_half_size(hu, seed_zyx, spacing_zyx, lung), at_least_mm)
    sizes = [h for h in nod.ROI_HALF_SIZES_MM if h >= first] or [nod.ROI_HALF_SIZES_MM[-1]]
    for half_mm in sizes:
        box = nod.roi_box(seed_zyx, half_mm, spacing_zyx, hu.shape)
        roi = np.asarray(hu[box], dtype=np.float32)
        roi_lung = np.asarray(lung[box], dtype=bool) if lung is not None else None
        local_seed = seed_zyx - np.array([s.start for s in box])
        try:
            result = nod.segment_roi(roi, local_seed, spacing_zyx, lung_roi=roi_lung, roi_half_mm=half_mm)
        except NoNoduleAtSeed as exc:
            if (
                half_mm == nod.ROI_HALF_SIZES_MM[-1]
                or nod._box_is_whole_image(box, hu.shape)
                or not getattr(exc, "retry_larger", False)
            ):
                raise NoNoduleAtSeed(f"{nod._where(seed)}: {exc}") from None
            continue
        if result.needs_larger_roi and not _near_movable_face(result.mask, box, shape, spacing_zyx):
            result = replace(result, needs_larger_roi=False)
        if not result.needs_larger_roi or nod._box_is_whole_image(box, hu.shape):
            break
    assert result is not None and box is not None
    return result, box


def _roi_holding(mask: np.ndarray, box: Any, centre: np.ndarray, spacing_zyx: np.ndarray, shape: Any) -> float:
    """The largest ROI half-size (mm) around ``centre`` whose box does not hold ``mask`` (in ``box``)
    with its shell: a re-segmentation of the same nodule from ``centre`` would only grow past it."""
    from segmentation import nodule as nod

    pts = np.argwhere(mask) + np.array([s.start for s in box])
    below = 0.0
    for half_mm in nod.ROI_HALF_SIZES_MM:
        b = nod.roi_box(centre.astype(float), half_mm, spacing_zyx, shape)
        inside = np.all((pts >= [s.start for s in b]) & (pts < [s.stop for s in b]), axis=1)
        if inside.all():
            local_pts = pts - np.array([s.start for s in b])
            sub = np.zeros([s.stop - s.start for s in b], dtype=bool)
            sub[tuple(local_pts.T)] = True
            if not _near_movable_face(sub, b, np.array(shape), spacing_zyx):
                return below
        below = half_mm
    return below


def _near_movable_face(mask: np.ndarray, box: Any, shape: np.ndarray, spacing_zyx: np.ndarray) -> bool:
    """The mask comes within the shell (``SHELL_MM[1]``) of a face of ``box`` that is not an image face."""
    from segmentation import nodule as nod

    pts = np.argwhere(mask)
    if pts.size == 0:
        return False
    m = np.ceil(nod.SHELL_MM[1] / spacing_zyx).astype(int)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    starts = np.array([s.start for s in box])
    stops = np.array([s.stop for s in box])
    near_lo = (lo <= m) & (starts > 0)
    near_hi = (hi >= np.array(mask.shape) - 1 - m) & (stops < shape)
    return bool(np.any(near_lo | near_hi))
