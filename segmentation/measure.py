"""NLCSP measurements of a segmented nodule.

- volume (mm³): sum of the partial-volume weights times the voxel volume;
- long axis and the longest perpendicular short axis in the axial, coronal
  and sagittal planes, on the sub-voxel 0.5 iso-contour of the weights, in
  the slice where that plane's long axis is longest; the reported plane is
  the one with the longest long axis (NLCSP note 5b: "any orthogonal plane
  ... to reflect the true size"); mean diameter = (long + short) / 2;
- the maximum axial diameter (PanCan input);
- mean HU and HU percentiles of the voxels inside the mask;
- the solid component (smoothed HU >= ``solid_threshold_hu``, -300 HU by
  default): volume and mean diameter, measured the same way.

Endpoints are LPS mm.  Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage import measure as skmeasure

from segmentation.types import MeasurementQuality, NoduleMask, NoduleMeasurement, Plane

#: plane name -> the (z, y, x) axis the plane is perpendicular to
PLANE_AXIS: dict[Plane, int] = {"axial": 0, "coronal": 1, "sagittal": 2}
PERCENTILES = (10, 25, 50, 75, 90)


def measure_nodule(
    image: sitk.Image,
    nodule: NoduleMask,
    *,
    quality: MeasurementQuality | None = None,
    solid_threshold_hu: float = -300.0,
    smoothed_roi: np.ndarray | None = None,
    nodule_hu: float | None = None,
) -> NoduleMeasurement:
    """All NLCSP measurements of ``nodule`` (a mask in ``image``'s index space).

    ``nodule_hu`` is the level of the nodule's outer layer found by the
    segmentation; when it is at or above ``solid_threshold_hu`` the whole
    nodule is solid and the solid component is the nodule itself.
    """
    spacing_zyx = np.array(image.GetSpacing()[::-1], dtype=float)
    voxel_mm3 = float(np.prod(spacing_zyx))
    box = tuple(slice(o, o + n) for o, n in zip(nodule.origin_index_zyx, nodule.shape_zyx))
    hu = np.asarray(sitk.GetArrayViewFromImage(image)[box], dtype=np.float32)
    weights = nodule.fraction if nodule.fraction is not None else nodule.mask.astype(np.float32)
    to_lps = index_to_lps_fn(image, nodule.origin_index_zyx)

    axes = scale_axes(plane_axes(weights, spacing_zyx, to_lps), partial_volume_scale(weights))
    plane = max(axes, key=lambda p: axes[p]["long_mm"])
    best = axes[plane]
    inside = hu[nodule.mask] if nodule.mask.any() else hu.ravel()
    if nodule_hu is not None and nodule_hu >= solid_threshold_hu:
        solid_volume = float(weights.sum() * voxel_mm3)
        solid_mean = 0.5 * (best["long_mm"] + best["short_mm"])
    else:
        # light smoothing only: a small core's blur must not overlap the nodule's blurred outer edge
        lightly = ndimage.gaussian_filter(hu, SOLID_SMOOTHING_MM / spacing_zyx) if SOLID_SMOOTHING_MM > 0 else hu
        solid_w = solid_weights(lightly, weights, nodule.mask, spacing_zyx, solid_threshold_hu, nodule_hu)
        solid_volume = float(solid_w.sum() * voxel_mm3)
        solid_mean = 0.0
        if (solid_w > 0.5).sum() >= 2:
            solid_axes = scale_axes(plane_axes(solid_w, spacing_zyx, to_lps), partial_volume_scale(solid_w))
            sp = max(solid_axes, key=lambda p: solid_axes[p]["long_mm"])
            solid_mean = 0.5 * (solid_axes[sp]["long_mm"] + solid_axes[sp]["short_mm"])
    w_sum = float(weights.sum())
    centroid_idx = np.array(ndimage.center_of_mass(weights)) if w_sum > 0 else np.zeros(3)
    return NoduleMeasurement(
        volume_mm3=w_sum * voxel_mm3,
        mean_diameter_mm=0.5 * (best["long_mm"] + best["short_mm"]),
        long_axis_mm=best["long_mm"],
        short_axis_mm=best["short_mm"],
        measurement_plane=plane,
        long_axis_endpoints_lps_mm=best["long_ends"],
        short_axis_endpoints_lps_mm=best["short_ends"],
        max_axial_diameter_mm=axes["axial"]["long_mm"],
        mean_hu=float(inside.mean()),
        centroid_lps_mm=cast(tuple[float, float, float], tuple(float(v) for v in to_lps(centroid_idx[None, :])[0])),
        solid_volume_mm3=solid_volume,
        solid_mean_diameter_mm=solid_mean,
        hu_percentiles={p: float(v) for p, v in zip(PERCENTILES, np.percentile(inside, PERCENTILES))},
        mask=nodule,
        quality=quality or MeasurementQuality(),
    )


#: attenuation of solid soft tissue (HU) used as the solid level of small solid components
SOLID_TISSUE_HU = 30.0
#: Gaussian smoothing (mm) of the image the solid-component weights are taken from
SOLID_SMOOTHING_MM = 0.45
#: half-width (mm) of the partial-volume band around the solid core
SOLID_BAND_MM = 2.0


def solid_weights(
    smoothed: np.ndarray,
    weights: np.ndarray,
    mask: np.ndarray,
    spacing_zyx: np.ndarray,
    threshold_hu: float,
    ground_glass_hu: float | None,
) -> np.ndarray:
    """Partial-volume weights of the solid component inside a ground-glass nodule.

    Voxels at or above ``threshold_hu`` and a 1.5 mm band around them count
    (I - mu_gg) / (mu_solid - mu_gg) clipped to [0, 1], with mu_gg the
    nodule's ground-glass level and mu_solid the solid level (at least soft
    tissue, ``SOLID_TISSUE_HU``, since small cores lose contrast to blur).
    """
    inside = mask | (weights > 0.5)
    core = (smoothed >= threshold_hu) & inside
    if not core.any():
        return np.zeros(mask.shape, dtype=np.float32)
    rest = inside & ~core
    gg = ground_glass_hu if ground_glass_hu is not None else float(np.median(smoothed[rest])) if rest.any() else -600.0
    tissue = max(SOLID_TISSUE_HU, float(np.percentile(smoothed[core], 90)))
    near = (ndimage.distance_transform_edt(~core, sampling=spacing_zyx) <= SOLID_BAND_MM) & inside
    out = np.zeros(mask.shape, dtype=np.float32)
    out[near] = np.clip((smoothed[near] - gg) / max(tissue - gg, 1.0), 0.0, 1.0)
    deep = ndimage.distance_transform_edt(core, sampling=spacing_zyx) > SOLID_BAND_MM
    out[deep] = 1.0
    return out


def partial_volume_scale(weights: np.ndarray) -> float:
    """Length scale that makes the 0.5 iso-surface enclose the partial-volume volume.

    Blur moves the 0.5 iso-surface of a curved boundary inwards (by about
    sigma^2 / radius), so axes measured on it are short for small nodules;
    scaling them by (sum of weights / voxels above 0.5)^(1/3) undoes that.
    """
    above = int((weights > 0.5).sum())
    if above == 0:
        return 1.0
    return float(np.clip((float(weights.sum()) / above) ** (1.0 / 3.0), 0.9, 1.15))


def scale_axes(axes: dict[Plane, dict[str, Any]], factor: float) -> dict[Plane, dict[str, Any]]:
    """Axes lengths and endpoints scaled by ``factor`` about each axis' midpoint."""
    out = {}
    for plane, a in axes.items():
        b = dict(a)
        b["long_mm"] = a["long_mm"] * factor
        b["short_mm"] = a["short_mm"] * factor
        for key in ("long_ends", "short_ends"):
            p, q = np.array(a[key][0]), np.array(a[key][1])
            mid = 0.5 * (p + q)
            b[key] = (
                tuple(float(v) for v in mid + (p - mid) * factor),
                tuple(float(v) for v in mid + (q - mid) * factor),
            )
        out[plane] = b
    return out


def index_to_lps_fn(image: sitk.Image, origin_index_zyx: Sequence[int]) -> Callable[[np.ndarray], np.ndarray]:
    """Function mapping continuous (z, y, x) indices of a crop to LPS mm points (N, 3)."""
    origin = np.array(image.GetOrigin())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = np.array(image.GetSpacing())
    offset = np.array(origin_index_zyx, dtype=float)

    def to_lps(idx_zyx: np.ndarray) -> np.ndarray:
        xyz = (np.asarray(idx_zyx, dtype=float) + offset)[:, ::-1]
        return cast(np.ndarray, origin + (xyz * spacing) @ direction.T)

    return to_lps


def plane_axes(
    weights: np.ndarray, spacing_zyx: np.ndarray, to_lps: Callable[[np.ndarray], np.ndarray]
) -> dict[Plane, dict[str, Any]]:
    """Long/short axes (mm) and their LPS endpoints in each orthogonal plane."""
    out: dict[Plane, dict[str, Any]] = {}
    for plane, axis in PLANE_AXIS.items():
        out[plane] = _best_slice_axes(weights, axis, spacing_zyx, to_lps)
    return out


def _best_slice_axes(
    weights: np.ndarray, axis: int, spacing_zyx: np.ndarray, to_lps: Callable[[np.ndarray], np.ndarray]
) -> dict[str, Any]:
    in_plane = [a for a in range(3) if a != axis]
    areas = (weights > 0.5).sum(axis=tuple(in_plane))
    empty = {"long_mm": 0.0, "short_mm": 0.0, "long_ends": ((0.0,) * 3,) * 2, "short_ends": ((0.0,) * 3,) * 2}
    if areas.max() == 0:
        return empty
    candidates = np.flatnonzero(areas >= 0.6 * areas.max())
    best = None
    for k in candidates:
        sl = np.take(weights, k, axis=axis)
        res = section_axes(sl, spacing_zyx[in_plane])
        if res is not None and (best is None or res[0] > best[0][0]):
            best = (res, k)
    if best is None:
        return empty
    (long_mm, short_mm, long_pts, short_pts), k = best

    def lift(pts2d: np.ndarray) -> tuple[tuple[float, ...], ...]:
        full = np.zeros((len(pts2d), 3))
        full[:, axis] = k
        full[:, in_plane[0]] = pts2d[:, 0]
        full[:, in_plane[1]] = pts2d[:, 1]
        return tuple(tuple(float(v) for v in p) for p in to_lps(full))

    return {"long_mm": long_mm, "short_mm": short_mm, "long_ends": lift(long_pts), "short_ends": lift(short_pts)}


def section_axes(weights2d: np.ndarray, spacing_2d: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray] | None:
    """Long axis (max Feret diameter) and longest perpendicular chord of the 0.5 iso-contour of a 2-D section.

    Returns (long_mm, short_mm, long_endpoints_idx (2, 2), short_endpoints_idx (2, 2)) or None.
    """
    padded = np.pad(weights2d.astype(np.float64), 1)
    contours = [c - 1.0 for c in skmeasure.find_contours(padded, 0.5) if len(c) >= 3]
    if not contours:
        return None
    pts = np.concatenate(contours)
    mm = pts * spacing_2d
    if len(mm) > 600:
        from scipy.spatial import ConvexHull

        hull = mm[ConvexHull(mm).vertices]
    else:
        hull = mm
    d2 = ((hull[:, None, :] - hull[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
    long_mm = float(np.sqrt(d2[i, j]))
    if long_mm == 0:
        return None
    u = (hull[j] - hull[i]) / long_mm
    v = np.array([-u[1], u[0]])
    short_mm, s_lo, s_hi, t_best = 0.0, 0.0, 0.0, 0.0
    for c in contours:
        seg = c * spacing_2d
        a, b = seg[:-1], seg[1:]
        ta, tb = a @ u, b @ u
        sa, sb = a @ v, b @ v
        ts = np.linspace(min(ta.min(), tb.min()), max(ta.max(), tb.max()), 64)
        cross = (ta[None, :] - ts[:, None]) * (tb[None, :] - ts[:, None]) <= 0
        denom = np.where(tb != ta, tb - ta, 1.0)
        frac = (ts[:, None] - ta[None, :]) / denom[None, :]
        s = sa[None, :] + frac * (sb - sa)[None, :]
        hi = np.where(cross, s, -np.inf).max(axis=1)
        lo = np.where(cross, s, np.inf).min(axis=1)
        width = hi - lo
        width[~np.isfinite(width)] = 0
        k = int(np.argmax(width))
        if width[k] > short_mm:
            short_mm, s_lo, s_hi, t_best = float(width[k]), float(lo[k]), float(hi[k]), float(ts[k])
    long_pts = np.stack([hull[i], hull[j]]) / spacing_2d
    short_pts = np.stack([t_best * u + s_lo * v, t_best * u + s_hi * v]) / spacing_2d
    return long_mm, short_mm, long_pts, short_pts


def planimetric_volume_mm3(mask: np.ndarray, spacing_zyx: Sequence[float] | np.ndarray) -> float:
    """Volume of ``mask`` (z, y, x) in the convention of readers' outlines (LIDC, pylidc): each axial
    outline runs through the centres of the first pixels outside the nodule, so the planimetric
    polygon takes the mask plus half of its in-plane outline ring.  For comparison with reader
    volumes only; the measurement itself is the partial-volume volume."""
    ring = np.zeros((1, 3, 3), dtype=bool)
    ring[0, 1, :] = ring[0, :, 1] = True
    padded = np.pad(np.asarray(mask, dtype=bool), 1)
    outline = ndimage.binary_dilation(padded, ring) & ~padded
    return float((padded.sum() + 0.5 * outline.sum()) * np.prod(spacing_zyx))
