"""Cheap failure detection for the production call: evidence that a segmentation is grossly wrong.

:func:`segmentation.production.measure_at_seed` segments twice (from the seed, then from the
nodule's centre) and hands both results here.  Each check is a few array operations on the
ROI the segmentation already computed; none uses anything but the image.  A check that fires
marks the volume unreliable, so the protocol falls back to the mean diameter:

- **seed dependence by shape**: the seed's and the centre's masks overlap by Dice below
  ``MIN_PASS_DICE`` (the volume check in :mod:`segmentation.nodule` sees only a x2 change);
- **bordering dense tissue**: more than ``MAX_DENSE_CONTACT`` of the voxels just outside the
  mask are denser than the growing threshold -- the mask is a piece cut out of, or grown into,
  a vessel, the chest wall, a fissure or another opacity, and where it ends is not the nodule's
  own boundary;
- **a single slice**: the mask lies in one slice only, so its volume is the slice's partial
  volume times an area and tells nothing about the nodule's extent along z.

The thresholds were chosen on the even-numbered patients of the LIDC development set (a check
was kept when it flagged at most ~3 % of the masks with Dice >= 0.8 there) and checked on the
odd-numbered ones.  Pure computation, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from segmentation.types import MeasurementQuality

#: the seed's and the centre's masks overlap less than this (Dice): the result depends on the seed
MIN_PASS_DICE = 0.8
#: more than this share of the voxels just outside the mask are dense tissue: not the nodule's own edge
MAX_DENSE_CONTACT = 0.45
#: a mask in at most this many slices has no volume of its own (slice partial volume)
MAX_SLICES_WITHOUT_VOLUME = 1


@dataclass(frozen=True)
class Evidence:
    """What the checks look at (also reported in the diagnostics)."""

    pass_dice: float  # Dice of the seed's and the centre's masks (1.0 with one pass)
    dense_contact: float  # share of the one-voxel shell outside the mask that is denser than the threshold
    slices: int  # slices the mask spans


def gather(
    mask: np.ndarray,
    smoothed: np.ndarray,
    threshold_hu: float,
    box: Any,
    first_mask: np.ndarray | None = None,
    first_box: Any = None,
) -> Evidence:
    """The evidence for the final ``mask`` (ROI ``box``; ``smoothed`` and ``threshold_hu`` of its
    segmentation) and, when there were two passes, the seed's ``first_mask`` in ``first_box``."""
    shell = ndimage.binary_dilation(mask) & ~mask
    n_shell = int(shell.sum())
    contact = float((shell & (smoothed > threshold_hu)).sum()) / n_shell if n_shell else 0.0
    slices = int(np.any(mask, axis=(1, 2)).sum())
    pass_dice = 1.0 if first_mask is None else mask_dice(mask, box, first_mask, first_box)
    return Evidence(pass_dice=pass_dice, dense_contact=contact, slices=slices)


def mask_dice(a: np.ndarray, box_a: Any, b: np.ndarray, box_b: Any) -> float:
    """Dice of two masks given in boxes (tuples of slices) of the same image."""
    lo = [min(sa.start, sb.start) for sa, sb in zip(box_a, box_b)]
    hi = [max(sa.start + na, sb.start + nb) for sa, sb, na, nb in zip(box_a, box_b, a.shape, b.shape)]
    shape = tuple(h - lo_ for h, lo_ in zip(hi, lo))
    ga = np.zeros(shape, dtype=bool)
    gb = np.zeros(shape, dtype=bool)
    oa = [s.start - lo_ for s, lo_ in zip(box_a, lo)]
    ob = [s.start - lo_ for s, lo_ in zip(box_b, lo)]
    ga[oa[0] : oa[0] + a.shape[0], oa[1] : oa[1] + a.shape[1], oa[2] : oa[2] + a.shape[2]] = a
    gb[ob[0] : ob[0] + b.shape[0], ob[1] : ob[1] + b.shape[1], ob[2] : ob[2] + b.shape[2]] = b
    total = int(ga.sum()) + int(gb.sum())
    return 2.0 * float((ga & gb).sum()) / total if total else 1.0


def assess(quality: MeasurementQuality, evidence: Evidence) -> MeasurementQuality:
    """``quality`` with the flags (and reasons) the ``evidence`` calls for; volumetry unreliable if any."""
    reasons = list(quality.reasons)
    changes: dict[str, bool] = {}
    if evidence.pass_dice < MIN_PASS_DICE:
        changes["seed_dependent"] = True
        reasons.append(
            f"re-segmented from the nodule's centre, the mask overlaps the seed's by Dice {evidence.pass_dice:.2f} "
            f"(< {MIN_PASS_DICE:.2f}): volume depends on the seed"
        )
    if evidence.dense_contact > MAX_DENSE_CONTACT:
        changes["possible_leak"] = True
        reasons.append(
            f"{100 * evidence.dense_contact:.0f} % of the mask's outer surface borders other dense tissue "
            "(vessel, chest wall, fissure or another opacity): its boundary there is not the nodule's own"
        )
    if evidence.slices <= MAX_SLICES_WITHOUT_VOLUME:
        changes["too_small_for_volumetry"] = True
        reasons.append("nodule segmented in a single slice: its volume is the slice's partial volume, unreliable")
    if not changes:
        return quality
    return replace(quality, **changes, volumetry_unreliable=True, reasons=tuple(reasons))
