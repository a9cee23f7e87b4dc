"""Painting vessels and nodules into a volume, and the acquisition (PSF + noise).

Pure computation, no I/O.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from test_images.nodules import Nodule
from test_images.render import FWHM_TO_SIGMA, Grid, apply_psf, fraction_sdf, fraction_star, paint

VESSEL_HU = 40.0


def segment_sdf(p0, p1, r0: float, r1: float):
    """Signed distance (approx., exact for r0 == r1) to a tapered capsule from p0 (radius r0) to p1 (r1)."""
    a64 = np.asarray(p0, dtype=np.float64)
    ab64 = np.asarray(p1, dtype=np.float64) - a64
    L2 = float(ab64 @ ab64)

    def sdf(p: np.ndarray) -> np.ndarray:
        dt = p.dtype if p.dtype == np.float32 else np.float64
        a, ab = a64.astype(dt), ab64.astype(dt)
        dx, dy, dz = p[..., 0] - a[0], p[..., 1] - a[1], p[..., 2] - a[2]
        t = np.clip((dx * ab[0] + dy * ab[1] + dz * ab[2]) * dt.type(1.0 / L2), 0.0, 1.0)
        dx -= t * ab[0]
        dy -= t * ab[1]
        dz -= t * ab[2]
        return np.sqrt(dx * dx + dy * dy + dz * dz) - (r0 + (r1 - r0) * t)

    return sdf


def paint_segment(
    hu: np.ndarray,
    grid: Grid,
    p0,
    p1,
    r0: float,
    r1: float,
    value_hu: float,
    *,
    factor: int = 4,
    point_map=None,
    margin_mm: float = 0.0,
    sdf_points=None,
) -> None:
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


def paint_nodule(
    hu: np.ndarray, grid: Grid, nodule: Nodule, *, factor: int | None = None, vessel_hu: float = VESSEL_HU
) -> None:
    """Paint a nodule's vessels, then its components in order (outer first)."""
    for p0, p1, r in nodule.vessels:
        paint_segment(hu, grid, p0, p1, r, r, vessel_hu)
    for comp in nodule.components:
        f = factor if factor is not None else (6 if max(comp.shape.semi_axes_mm) < 6.0 else 4)
        box, frac = fraction_star(grid, comp.shape, factor=f)
        if box is not None:
            paint(hu, box, frac, comp.hu)


def _gain(sigma_px: float, truncate: float) -> float:
    """Sum of squares of the 1-D Gaussian kernel scipy uses for ``sigma_px`` and ``truncate``."""
    if sigma_px <= 0:
        return 1.0
    delta = np.zeros(int(2 * np.ceil(truncate * sigma_px + 0.5) + 3), dtype=np.float64)
    delta[delta.size // 2] = 1.0
    k = ndimage.gaussian_filter1d(delta, sigma_px, mode="constant", truncate=truncate)
    return float((k**2).sum())


def acquire(
    clean_hu: np.ndarray,
    spacing_mm,
    rng: np.random.Generator,
    *,
    noise_sd_hu: float = 40.0,
    slice_thickness_mm: float | None = None,
    psf_fwhm_xy_mm: float = 0.9,
    keep_clean: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Scanner model: PSF blur (in-plane FWHM ``psf_fwhm_xy_mm``; slice profile ~ thickness) and correlated noise.

    The slice sensitivity profile is the voxel box (slice spacing, from the
    partial-volume supersampling) convolved with a Gaussian of FWHM
    sqrt(max(thickness^2 - spacing^2, (0.5 thickness)^2)), so overlapping
    reconstructions (thickness > spacing) blur more in z.  Noise is white
    Gaussian noise passed through the same reconstruction kernel (as in a real
    scanner, the noise texture follows the kernel) and pre-scaled by the
    kernel's exact variance gain, so its SD after filtering is ``noise_sd_hu``.
    Returns (noisy HU clipped to the CT range, blurred noise-free HU or None
    when ``keep_clean`` is False, which saves one 3-D filtering pass).
    """
    t = float(slice_thickness_mm if slice_thickness_mm is not None else spacing_mm[2])
    fwhm_z = float(np.sqrt(max(t**2 - spacing_mm[2] ** 2, (0.5 * t) ** 2)))
    sig = (
        fwhm_z * FWHM_TO_SIGMA / spacing_mm[2],
        psf_fwhm_xy_mm * FWHM_TO_SIGMA / spacing_mm[1],
        psf_fwhm_xy_mm * FWHM_TO_SIGMA / spacing_mm[0],
    )
    gain = _gain(sig[0], 3.0) * _gain(sig[1], 3.0) * _gain(sig[2], 3.0)
    scale = np.float32(noise_sd_hu / np.sqrt(gain)) if noise_sd_hu > 0 else np.float32(0)
    blurred = None
    if keep_clean or noise_sd_hu <= 0:
        blurred = apply_psf(clean_hu, spacing_mm, fwhm_xy_mm=psf_fwhm_xy_mm, fwhm_z_mm=fwhm_z)
        if noise_sd_hu <= 0:
            noisy = blurred.copy()
        else:
            white = rng.standard_normal(size=clean_hu.shape, dtype=np.float32)
            white *= scale
            noisy = apply_psf(white, spacing_mm, fwhm_xy_mm=psf_fwhm_xy_mm, fwhm_z_mm=fwhm_z)
            noisy += blurred
    else:
        work = rng.standard_normal(size=clean_hu.shape, dtype=np.float32)
        work *= scale
        work += clean_hu
        noisy = apply_psf(work, spacing_mm, fwhm_xy_mm=psf_fwhm_xy_mm, fwhm_z_mm=fwhm_z)
        del work
    np.clip(noisy, -1024.0, 3071.0, out=noisy)
    return noisy.astype(np.float32, copy=False), blurred
