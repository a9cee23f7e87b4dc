"""Painting vessels and nodules into a volume, and the acquisition (PSF + noise).

Pure computation, no I/O.
"""

from __future__ import annotations

import numpy as np

from test_images.nodules import Nodule
from test_images.render import Grid, apply_psf, correlated_noise, fraction_sdf, fraction_star, paint

VESSEL_HU = 40.0


def segment_sdf(p0, p1, r0: float, r1: float):
    """Signed distance (approx., exact for r0 == r1) to a tapered capsule from p0 (radius r0) to p1 (r1)."""
    a = np.asarray(p0, dtype=np.float64)
    b = np.asarray(p1, dtype=np.float64)
    ab = b - a
    L2 = float(ab @ ab)

    def sdf(p: np.ndarray) -> np.ndarray:
        ap = p - a
        t = np.clip((ap @ ab) / L2, 0.0, 1.0)
        closest = a + t[..., None] * ab
        d = np.sqrt(((p - closest) ** 2).sum(-1))
        return d - (r0 + (r1 - r0) * t)

    return sdf


def paint_segment(hu: np.ndarray, grid: Grid, p0, p1, r0: float, r1: float, value_hu: float,
                  *, factor: int = 4, point_map=None, margin_mm: float = 0.0, sdf_points=None) -> None:
    """Paint a tapered cylinder with partial volume.

    ``p0``/``p1`` place the bounding box (scanner frame); when points are mapped
    by ``point_map`` to another frame, ``sdf_points`` are the ends in that frame.
    """
    lo = np.minimum(p0, p1) - max(r0, r1) - 1.0 - margin_mm
    hi = np.maximum(p0, p1) + max(r0, r1) + 1.0 + margin_mm
    box = grid.index_box(lo, hi)
    if box is None:
        return
    q0, q1 = (p0, p1) if sdf_points is None else sdf_points
    frac = fraction_sdf(grid, box, segment_sdf(q0, q1, r0, r1), factor=factor, point_map=point_map)
    paint(hu, box, frac, value_hu)


def paint_nodule(hu: np.ndarray, grid: Grid, nodule: Nodule, *, factor: int | None = None,
                 vessel_hu: float = VESSEL_HU) -> None:
    """Paint a nodule's vessels, then its components in order (outer first)."""
    for p0, p1, r in nodule.vessels:
        paint_segment(hu, grid, p0, p1, r, r, vessel_hu)
    for comp in nodule.components:
        f = factor if factor is not None else (6 if max(comp.shape.semi_axes_mm) < 6.0 else 4)
        box, frac = fraction_star(grid, comp.shape, factor=f)
        if box is not None:
            paint(hu, box, frac, comp.hu)


def acquire(clean_hu: np.ndarray, spacing_mm, rng: np.random.Generator, *, noise_sd_hu: float = 40.0,
            slice_thickness_mm: float | None = None, psf_fwhm_xy_mm: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Scanner model: PSF blur (in-plane FWHM ``psf_fwhm_xy_mm``; slice profile ~ thickness), correlated noise.

    The slice sensitivity profile is the voxel box (slice spacing) convolved
    with a Gaussian of FWHM sqrt(max(thickness^2 - spacing^2, (0.5 thickness)^2)),
    so overlapping reconstructions (thickness > spacing) blur more in z.
    Returns (noisy HU clipped to the CT range, blurred noise-free HU).
    """
    t = float(slice_thickness_mm if slice_thickness_mm is not None else spacing_mm[2])
    fwhm_z = float(np.sqrt(max(t**2 - spacing_mm[2] ** 2, (0.5 * t) ** 2)))
    blurred = apply_psf(clean_hu, spacing_mm, fwhm_xy_mm=psf_fwhm_xy_mm, fwhm_z_mm=fwhm_z)
    noisy = blurred + correlated_noise(blurred.shape, noise_sd_hu, rng)
    np.clip(noisy, -1024.0, 3071.0, out=noisy)
    return noisy.astype(np.float32, copy=False), blurred.astype(np.float32, copy=False)
