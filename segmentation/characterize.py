"""Algorithmic characterization of a segmented nodule, each value with a confidence.

- composition: solid / part-solid / non-solid from the fraction of the
  nodule volume at or above the solid threshold (-300 HU);
- benign calcification: a large, central or diffuse calcified (>= 200 HU)
  portion of the nodule; a small eccentric fleck is not a benign pattern;
- fat: a macroscopic region of -150..-30 HU deep inside the nodule (hamartoma);
- pleural distance: from the nodule surface to the nearest voxel outside the
  lung (chest wall / mediastinum), juxtapleural when <= 1 mm;
- perifissural shape cue: a flat, lentiform solid nodule <= 10 mm (low confidence,
  no fissure detection);
- lobe: approximate, from the nodule's position inside the lung's bounding
  geometry (oblique fissure as a plane from the posterior upper third to the
  anterior base; horizontal fissure on the right).

Reader labels always win: :func:`merge_reader_attributes`.  Pure functions; no I/O.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from segmentation.types import Characteristic, Characterization, NoduleMeasurement

CALCIFIED_HU = 200.0
FAT_HU = (-150.0, -30.0)
JUXTAPLEURAL_MM = 1.0

#: Characterization fields a reader may assert (names shared with dicom_sr.findings.ReaderAttributes)
READER_FIELDS = (
    "composition",
    "benign_calcification",
    "fat",
    "juxtapleural",
    "perifissural",
    "airway",
    "cyst",
    "spiculated",
)


def characterize(
    image: sitk.Image,
    measurement: NoduleMeasurement,
    *,
    lung_mask: sitk.Image | None = None,
) -> Characterization:
    """Algorithm values (origin "algorithm", confidence 0..1) for what the reader may not have said."""
    if measurement.mask is None:
        return Characterization()
    spacing_zyx = np.array(image.GetSpacing()[::-1], dtype=float)
    nm = measurement.mask
    box = tuple(slice(o, o + n) for o, n in zip(nm.origin_index_zyx, nm.shape_zyx))
    hu = np.asarray(sitk.GetArrayViewFromImage(image)[box], dtype=np.float32)
    smoothed = ndimage.gaussian_filter(hu, 0.6 / spacing_zyx)
    mask = nm.mask
    depth = ndimage.distance_transform_edt(mask, sampling=spacing_zyx)
    fields: dict[str, Any] = {
        "composition": composition(measurement),
        "benign_calcification": calcification(smoothed, mask, depth, spacing_zyx),
        "fat": fat(smoothed, mask, depth),
        "perifissural": perifissural_shape(measurement),
    }
    if lung_mask is not None:
        fields.update(pleura_and_lobe(image, lung_mask, measurement, spacing_zyx))
    return Characterization(**fields)


def composition(m: NoduleMeasurement) -> Characteristic:
    """Solid / part-solid / non-solid from the solid share of the volume."""
    # the solid core's volume is a partial-volume volume: its share of the nodule's partial-volume volume
    # when known (a solid nodule's solid component is reported as the nodule's volume: share >= 1)
    total = m.partial_volume_mm3 if m.partial_volume_mm3 else m.volume_mm3
    share = (m.solid_volume_mm3 or 0.0) / total if total > 0 else 0.0
    if share >= 0.6:
        value, margin = "solid", share - 0.6
    elif share >= 0.02:
        value, margin = "part-solid", min(share - 0.02, 0.6 - share)
    else:
        value, margin = "non-solid", 0.02 - share
    confidence = min(0.99, 0.6 + 2.0 * margin)
    if m.quality.too_small_for_volumetry:
        # thinner than the blur: a solid nodule's attenuation is averaged down towards ground glass
        confidence = min(confidence, 0.3)
    return Characteristic(value, "algorithm", round(float(confidence), 2))


def calcification(smoothed: np.ndarray, mask: np.ndarray, depth: np.ndarray, spacing_zyx: np.ndarray) -> Characteristic:
    """Benign calcification: calcified voxels make >= 10 % of the nodule and sit centrally or diffusely."""
    calcified = mask & (smoothed >= CALCIFIED_HU)
    share = float(calcified.sum()) / max(int(mask.sum()), 1)
    if share < 0.03:
        return Characteristic(False, "algorithm", 0.9)
    centre = np.array(ndimage.center_of_mass(mask))
    c_centre = np.array(ndimage.center_of_mass(calcified))
    radius = max(float(depth.max()), 1e-3)
    offset = float(np.linalg.norm((c_centre - centre) * spacing_zyx)) / radius  # in units of the nodule radius
    benign = share >= 0.10 and (offset < 0.5 or share >= 0.5)
    confidence = 0.9 if (share >= 0.2 or share < 0.06) else 0.7
    return Characteristic(bool(benign), "algorithm", confidence)


def fat(smoothed: np.ndarray, mask: np.ndarray, depth: np.ndarray) -> Characteristic:
    """Macroscopic fat: voxels of -150..-30 HU at least 1.5 mm inside the nodule, >= 5 % of the nodule."""
    interior = mask & (depth >= 1.5)
    if interior.sum() < 5:
        return Characteristic(False, "algorithm", 0.5)
    fatty = interior & (smoothed >= FAT_HU[0]) & (smoothed <= FAT_HU[1])
    labels, n = ndimage.label(fatty)
    largest = int(np.bincount(labels.ravel())[1:].max()) if n else 0
    share = largest / max(int(mask.sum()), 1)
    present = share >= 0.05
    return Characteristic(bool(present), "algorithm", 0.9 if (share >= 0.1 or share < 0.02) else 0.6)


def perifissural_shape(m: NoduleMeasurement) -> Characteristic:
    """Lentiform cue: solid, <= 10 mm, and clearly flatter in one plane than in another (low confidence)."""
    flat = m.short_axis_mm / m.long_axis_mm if m.long_axis_mm > 0 else 1.0
    cue = flat < 0.6 and m.mean_diameter_mm <= 10.0 and m.mean_hu > -300.0
    return Characteristic(bool(cue), "algorithm", 0.4)


def pleura_and_lobe(
    image: sitk.Image, lung_mask: sitk.Image, m: NoduleMeasurement, spacing_zyx: np.ndarray
) -> dict[str, Any]:
    """Pleural distance, juxtapleural flag and approximate lobe from a whole-series lung mask."""
    lung = sitk.GetArrayViewFromImage(lung_mask)
    nm = m.mask
    assert nm is not None
    margin = np.ceil(25.0 / spacing_zyx).astype(int)
    lo = np.maximum(np.array(nm.origin_index_zyx) - margin, 0)
    hi = np.minimum(np.array(nm.origin_index_zyx) + np.array(nm.shape_zyx) + margin, lung.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    local_lung = np.asarray(lung[box], dtype=bool)
    nod = np.zeros(local_lung.shape, dtype=bool)
    off = np.array(nm.origin_index_zyx) - lo
    nod[off[0] : off[0] + nm.shape_zyx[0], off[1] : off[1] + nm.shape_zyx[1], off[2] : off[2] + nm.shape_zyx[2]] = (
        nm.mask
    )
    outside = ~(local_lung | nod)
    out: dict[str, Any] = {}
    if outside.any():
        dist = ndimage.distance_transform_edt(~outside, sampling=spacing_zyx)
        d_mm = max(float(dist[nod].min()) - 0.5 * float(spacing_zyx.min()), 0.0) if nod.any() else float("nan")
        out["pleural_distance_mm"] = Characteristic(round(d_mm, 2), "algorithm", 0.8)
        out["juxtapleural"] = Characteristic(
            bool(d_mm <= JUXTAPLEURAL_MM), "algorithm", 0.8 if abs(d_mm - 1) > 1 else 0.6
        )
    else:  # only lung within 25 mm of the nodule: far from the pleura (the distance is at least that)
        out["juxtapleural"] = Characteristic(False, "algorithm", 0.9)
    lobe, conf = approximate_lobe(
        lung, np.array(image.TransformPhysicalPointToContinuousIndex(m.centroid_lps_mm)[::-1]), spacing_zyx, image
    )
    if lobe is not None:
        out["lobe"] = Characteristic(lobe, "algorithm", conf)
        out["upper_lobe"] = Characteristic(lobe in ("RUL", "LUL"), "algorithm", conf)
    return out


def approximate_lobe(
    lung: np.ndarray, centroid_zyx: np.ndarray, spacing_zyx: np.ndarray, image: sitk.Image
) -> tuple[str | None, float]:
    """Lobe from position in the lung's box: oblique fissure plane (posterior 70 % height -> anterior 10 %)."""
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    if zs.size == 0:
        return None, 0.0
    direction = np.array(image.GetDirection()).reshape(3, 3)
    z_up = direction[2, 2] >= 0  # index z grows towards the head (LPS +z = superior)
    x_left = direction[0, 0] >= 0  # index x grows towards patient's left
    y_post = direction[1, 1] >= 0  # index y grows posteriorly
    z_lo, z_hi = zs.min(), zs.max()
    h = (centroid_zyx[0] - z_lo) / max(z_hi - z_lo, 1)
    if not z_up:
        h = 1 - h
    ys = np.flatnonzero(lung.any(axis=(0, 2)))
    a = (centroid_zyx[1] - ys.min()) / max(ys.max() - ys.min(), 1)  # 0 anterior .. 1 posterior
    if not y_post:
        a = 1 - a
    right = _is_right(lung, centroid_zyx, image, x_left)
    fissure_h = 0.1 + 0.6 * a  # oblique fissure height at this antero-posterior position
    upper = h > fissure_h
    margin = abs(h - fissure_h)
    conf = round(float(min(0.9, 0.5 + margin)), 2)
    if z_lo == 0 or z_hi == lung.shape[0] - 1:
        conf = round(conf * 0.5, 2)  # the scan range cuts the lung: its height, and so the lobe, is uncertain
    if right:
        if upper and h < 0.6 and a < 0.5:
            return "RML", round(conf * 0.8, 2)
        return ("RUL" if upper else "RLL"), conf
    return ("LUL" if upper else "LLL"), conf


def _is_right(lung: np.ndarray, centroid_zyx: np.ndarray, image: sitk.Image, x_left: bool) -> bool:
    """Laterality: the midline between the two lungs when both are in view, else x = 0 (the scanner's
    isocentre, near the patient's midline) in patient coordinates (LPS: +x is the patient's left)."""
    z = int(np.clip(round(float(centroid_zyx[0])), 0, lung.shape[0] - 1))
    labels, count = ndimage.label(np.asarray(lung[z], dtype=bool))
    if count >= 2:
        sizes = np.bincount(labels.ravel())[1:]
        a, b = np.argsort(sizes)[::-1][:2] + 1
        if sizes[b - 1] > 0.2 * sizes[a - 1]:
            xa = float(np.mean(np.nonzero(labels == a)[1]))
            xb = float(np.mean(np.nonzero(labels == b)[1]))
            mid_x = 0.5 * (xa + xb)
            return bool((centroid_zyx[2] < mid_x) == x_left)
    x_lps = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in centroid_zyx[::-1]])[0]
    return bool(x_lps < 0)


def merge_reader_attributes(algorithm: Characterization, reader: Any) -> Characterization:
    """Overlay the reader's assertions (any object with ReaderAttributes' field names); reader labels win."""
    if reader is None:
        return algorithm
    updates = {}
    for name in READER_FIELDS:
        value = getattr(reader, name, None)
        if value is not None:
            updates[name] = Characteristic(value, "reader", None)
    if "juxtapleural" in updates and updates["juxtapleural"].value and algorithm.pleural_distance_mm is None:
        updates["pleural_distance_mm"] = Characteristic(0.0, "reader", None)
    return replace(algorithm, **updates)
