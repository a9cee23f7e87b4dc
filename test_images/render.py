"""Rasterisation with partial volume, the scanner's PSF and correlated noise.

- ``Grid``: the voxel lattice (axial, identity direction; index (k, j, i) ->
  LPS (ox + i*sx, oy + j*sy, oz + k*sz)).
- ``paint_sdf`` / ``paint_star``: composite a solid into an HU volume with its
  exact partial-volume fraction, computed by supersampling (``factor`` per axis)
  only the voxels near the surface; interior voxels are classified from a
  signed distance (or from radius bounds for star shapes) without sampling.
- ``apply_psf``: Gaussian in-plane PSF and slice-sensitivity blur.
- ``fraction_inside``: the same for solids given only by an inside test
  (anatomy): voxels whose inside-ness differs from a face neighbour's are
  supersampled.
Pure computation, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from test_images.shapes import StarShape

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))

# Maps scan-frame points (..., 3) to the frame the anatomy is defined in.
PointMap = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Grid:
    """Voxel lattice: ``shape`` (nz, ny, nx), ``origin_lps_mm`` of voxel [0,0,0], ``spacing_mm`` (sx, sy, sz)."""

    shape: tuple[int, int, int]
    origin_lps_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]

    def index_box(self, lo_lps_mm, hi_lps_mm) -> tuple[slice, slice, slice] | None:
        """Index slices (k, j, i) covering the LPS box [lo, hi], or None when outside the grid."""
        o = np.asarray(self.origin_lps_mm)
        s = np.asarray(self.spacing_mm)
        lo = np.floor((np.asarray(lo_lps_mm) - o) / s).astype(int)
        hi = np.ceil((np.asarray(hi_lps_mm) - o) / s).astype(int) + 1
        n = np.array(self.shape[::-1])  # (nx, ny, nz)
        lo = np.clip(lo, 0, n)
        hi = np.clip(hi, 0, n)
        if np.any(hi <= lo):
            return None
        return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))

    def centres(self, box: tuple[slice, slice, slice], dtype=np.float64) -> np.ndarray:
        """LPS coordinates (nz, ny, nx, 3) of the voxel centres in ``box``."""
        k = np.arange(box[0].start, box[0].stop)
        j = np.arange(box[1].start, box[1].stop)
        i = np.arange(box[2].start, box[2].stop)
        o, s = self.origin_lps_mm, self.spacing_mm
        out = np.empty((k.size, j.size, i.size, 3), dtype=dtype)
        out[..., 0] = (o[0] + i * s[0])[None, None, :]
        out[..., 1] = (o[1] + j * s[1])[None, :, None]
        out[..., 2] = (o[2] + k * s[2])[:, None, None]
        return out

    def voxel_to_lps(self, kji) -> np.ndarray:
        """LPS mm of fractional voxel indices (k, j, i)."""
        k, j, i = np.asarray(kji, dtype=float).T
        o, s = self.origin_lps_mm, self.spacing_mm
        return np.stack([o[0] + i * s[0], o[1] + j * s[1], o[2] + k * s[2]], axis=-1)

    def lps_to_voxel(self, p) -> np.ndarray:
        """Fractional voxel indices (k, j, i) of LPS points."""
        p = np.asarray(p, dtype=float)
        o, s = np.asarray(self.origin_lps_mm), np.asarray(self.spacing_mm)
        f = (p - o) / s
        return f[..., ::-1]

    @property
    def half_diagonal_mm(self) -> float:
        return 0.5 * float(np.sqrt(sum(v * v for v in self.spacing_mm)))


def _subsample_offsets(spacing_mm, factor: int) -> np.ndarray:
    """Offsets (factor^3, 3) in mm of sub-voxel centres about a voxel centre."""
    f = (np.arange(factor) + 0.5) / factor - 0.5
    gx, gy, gz = np.meshgrid(f * spacing_mm[0], f * spacing_mm[1], f * spacing_mm[2], indexing="ij")
    return np.stack([gx.ravel(), gy.ravel(), gz.ravel()], axis=1)


def fraction_sdf(
    grid: Grid, box, sdf: Callable[[np.ndarray], np.ndarray], *, factor: int = 4, point_map: PointMap | None = None
) -> np.ndarray:
    """Partial-volume fraction (in ``box``) of the solid {sdf < 0}.

    ``sdf`` must be a signed distance (or a 1-Lipschitz under-estimate of it) in
    mm, negative inside.  Voxels with |sdf| below 1.5 half-diagonals are
    supersampled ``factor`` per axis; the others are 0 or 1.
    """
    pts = grid.centres(box, np.float32)
    body = pts if point_map is None else point_map(pts)
    d = sdf(body)
    frac = (d < 0).astype(np.float32)
    edge = np.abs(d) < 1.5 * grid.half_diagonal_mm
    if edge.any():
        idx = np.nonzero(edge)
        off = _subsample_offsets(grid.spacing_mm, factor).astype(np.float32)
        sub = pts[idx][:, None, :] + off[None, :, :]
        if point_map is not None:
            sub = point_map(sub)
        frac[idx] = (sdf(sub) < 0).mean(axis=1)
    return frac


def paint(hu: np.ndarray, box, frac: np.ndarray, value_hu) -> None:
    """Composite ``value_hu`` (scalar or array) with fraction ``frac`` into ``hu[box]`` in place."""
    region = hu[box]
    region += frac * (np.asarray(value_hu, dtype=np.float32) - region)


def fraction_star(
    grid: Grid, shape: StarShape, *, factor: int = 6
) -> tuple[tuple[slice, slice, slice] | None, np.ndarray | None]:
    """Box and partial-volume fraction of a star-shaped solid (exact up to supersampling)."""
    rmin, rmax = shape.radius_bounds_mm()
    c = np.asarray(shape.centre_lps_mm)
    box = grid.index_box(c - rmax, c + rmax)
    if box is None:
        return None, None
    pts = grid.centres(box)
    rho = np.sqrt(((pts - c) ** 2).sum(-1))
    hd = grid.half_diagonal_mm
    frac = np.zeros(rho.shape, dtype=np.float32)
    if shape.container is None:
        frac[rho + hd <= rmin] = 1.0
    edge = (rho - hd < rmax) & ~(frac > 0)
    if edge.any():
        idx = np.nonzero(edge)
        off = _subsample_offsets(grid.spacing_mm, factor)
        sub = (pts[idx][:, None, :] + off[None, :, :]).reshape(-1, 3)
        n = factor**3
        inside = np.zeros(sub.shape[0], dtype=bool)
        chunk = 2_000_000
        for s in range(0, sub.shape[0], chunk):
            inside[s : s + chunk] = shape.contains(sub[s : s + chunk])
        frac[idx] = inside.reshape(-1, n).mean(axis=1)
    return box, frac


def apply_psf(hu: np.ndarray, spacing_mm, *, fwhm_xy_mm: float = 0.9, fwhm_z_mm: float = 0.5) -> np.ndarray:
    """Gaussian PSF: in-plane FWHM ``fwhm_xy_mm``, through-plane FWHM ``fwhm_z_mm`` (on top of the voxel box)."""
    sigma = (
        fwhm_z_mm * FWHM_TO_SIGMA / spacing_mm[2],
        fwhm_xy_mm * FWHM_TO_SIGMA / spacing_mm[1],
        fwhm_xy_mm * FWHM_TO_SIGMA / spacing_mm[0],
    )
    return ndimage.gaussian_filter(hu, sigma=sigma, mode="nearest", truncate=3.0)


def fraction_inside(
    grid: Grid,
    box,
    inside: Callable[[np.ndarray], np.ndarray],
    *,
    factor: int = 4,
    point_map: PointMap | None = None,
    cache: dict | None = None,
) -> np.ndarray:
    """Partial-volume fraction (in ``box``) of the solid {inside(p)}: voxels whose inside-ness differs
    from a face neighbour's (evaluated one voxel beyond the box too) are supersampled ``factor`` per axis.

    ``cache`` (a dict) keeps the last box's mapped voxel centres for the next call on the same box.
    """
    n = grid.shape
    ext = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n[a])) for a, s in enumerate(box))
    key = tuple((s.start, s.stop) for s in ext)
    if cache is not None and key in cache:
        pts, body = cache[key]
    else:
        pts = grid.centres(ext, np.float32)
        body = pts if point_map is None else point_map(pts)
        if cache is not None:
            cache.clear()
            cache[key] = (pts, body)
    ins = inside(body)
    edge = np.zeros(ins.shape, dtype=bool)
    for ax in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax] = slice(1, None)
        b[ax] = slice(None, -1)
        flip = ins[tuple(a)] != ins[tuple(b)]
        edge[tuple(a)] |= flip
        edge[tuple(b)] |= flip
    crop = tuple(slice(s.start - e.start, s.start - e.start + (s.stop - s.start)) for s, e in zip(box, ext))
    frac = ins[crop].astype(np.float32)
    edge = edge[crop]
    if edge.any():
        idx = np.nonzero(edge)
        off = _subsample_offsets(grid.spacing_mm, factor).astype(np.float32)
        sub_c = pts[crop][idx]
        out = np.empty(len(sub_c), dtype=np.float32)
        chunk = max(1, 1_000_000 // off.shape[0])
        for s in range(0, len(sub_c), chunk):
            sub = sub_c[s : s + chunk, None, :] + off[None, :, :]
            if point_map is not None:
                sub = point_map(sub)
            out[s : s + chunk] = inside(sub).mean(axis=1)
        frac[idx] = out
    return frac
