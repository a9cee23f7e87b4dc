"""A small lung-parenchyma block with one nodule: fast inputs for segmentation accuracy loops.

``render_single_nodule`` returns a :class:`PhantomStudy` (the same truth fields
as the chest cases) of roughly 64 x 64 x 48 voxels, enlarged for big nodules.
Pure computation, no I/O.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from scipy import ndimage

from test_images.nodules import KINDS, jittered_seed, make_nodule, nodule_truth
from test_images.render import Grid, fraction_sdf, paint
from test_images.scene import acquire, paint_nodule
from test_images.study import PhantomStudy, make_patient, make_uid

LUNG_HU = -850.0
WALL_HU = 40.0
FAT_HU = -100.0


def _lerp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Linear interpolation matrix (n_out, n_in) mapping a coarse axis onto a fine one (ends aligned)."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    i0 = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    w = pos - i0
    m = np.zeros((n_out, n_in), dtype=np.float32)
    m[np.arange(n_out), i0] = 1.0 - w
    m[np.arange(n_out), i0 + 1] += w
    return m


def smooth_texture(
    shape, rng: np.random.Generator, amplitude_hu: float, *, coarse: int = 4, sigma_coarse: float = 1.0
) -> np.ndarray:
    """Low-frequency parenchymal texture (zero mean, SD ~ ``amplitude_hu``) of ``shape``.

    Gaussian noise on a grid ``coarse`` times coarser, smoothed, then linearly
    upsampled axis by axis.
    """
    if amplitude_hu <= 0:
        return np.zeros(shape, dtype=np.float32)
    nz, ny, nx = shape
    cshape = tuple(max(2, int(np.ceil(n / coarse)) + 1) for n in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(cshape).astype(np.float32), sigma_coarse, mode="wrap")
    field *= np.float32(amplitude_hu / max(float(field.std()), 1e-6))
    my, mx = _lerp_matrix(ny, cshape[1]), _lerp_matrix(nx, cshape[2])
    plane = np.einsum("yj,kji,xi->kyx", my, field, mx, optimize=True).astype(np.float32)  # (nzc, ny, nx)
    out = np.empty(shape, dtype=np.float32)
    pos = np.linspace(0.0, cshape[0] - 1.0, nz)
    for k in range(nz):
        i0 = min(int(pos[k]), cshape[0] - 2)
        w = np.float32(pos[k] - i0)
        np.multiply(plane[i0], 1 - w, out=out[k])
        out[k] += w * plane[i0 + 1]
    return out


def find_uniform_region(clean_hu: np.ndarray, value_hu: float, *, size=(9, 23, 23), report=(5, 15, 15)) -> dict | None:
    """A box of voxels (k, j, i slices) whose noise-free value is exactly ``value_hu`` well inside a uniform area."""
    mask = np.abs(clean_hu - value_hu) < 0.5
    if not mask.any():
        return None
    eroded = ndimage.minimum_filter(mask.astype(np.uint8), size=size, mode="constant", cval=0)
    idx = np.argwhere(eroded > 0)
    if idx.size == 0:
        return None
    k, j, i = idx[len(idx) // 2]
    h = [r // 2 for r in report]
    return {
        "hu": float(value_hu),
        "index_box_kji": [
            [int(k - h[0]), int(k + h[0] + 1)],
            [int(j - h[1]), int(j + h[1] + 1)],
            [int(i - h[2]), int(i + h[2] + 1)],
        ],
    }


def render_single_nodule(
    kind: str = "solid",
    diameter_mm: float = 8.0,
    *,
    noise_sd_hu: float = 40.0,
    spacing_mm=(0.7, 0.7, 1.0),
    seed: int = 0,
    slice_thickness_mm: float | None = None,
    texture_hu: float = 10.0,
    jitter_fraction: float = 0.3,
    block_voxels: tuple[int, int, int] | None = None,
    psf_fwhm_mm: float = 0.9,
    **shape,
) -> PhantomStudy:
    """One nodule of ``kind`` in a lung block (``juxtapleural`` adds a chest-wall slab, ``perifissural`` a fissure).

    ``shape`` goes to :func:`test_images.nodules.make_nodule` (``elongation``,
    ``core_diameter_mm``, ``hu``, ``vessel_radius_mm``, ``n_vessels``,
    ``calcification``, ``orientation_rad``, ``labels``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown nodule kind {kind!r}; expected one of {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, 7001, KINDS.index(kind)])
    sx, sy, sz = (float(v) for v in spacing_mm)
    extent_mm = max(diameter_mm * 2.2 + 10.0, 0.0)
    if block_voxels is None:
        nx = max(64, int(np.ceil(extent_mm / sx)))
        ny = max(64, int(np.ceil(extent_mm / sy)))
        nz = max(48, int(np.ceil(extent_mm / sz)))
    else:
        nz, ny, nx = block_voxels
    if kind == "juxtapleural" and block_voxels is None:
        nx = max(nx, 96)  # room for a 30 mm chest-wall slab
    # nodule centre in a right-upper-lobe-like position, off the voxel lattice by a random sub-voxel shift
    centre = np.array([-80.0, -10.0, 60.0]) + rng.uniform(-0.5, 0.5, 3) * np.array([sx, sy, sz])
    origin = (centre[0] - (nx - 1) / 2 * sx, centre[1] - (ny - 1) / 2 * sy, centre[2] - (nz - 1) / 2 * sz)
    if kind == "juxtapleural":
        # chest wall towards the patient's right (-x) of the nodule
        origin = (origin[0] - 10.0, origin[1], origin[2])
    grid = Grid((nz, ny, nx), tuple(float(v) for v in origin), (sx, sy, sz))

    hu = np.full(grid.shape, LUNG_HU, dtype=np.float32)
    hu += smooth_texture(grid.shape, rng, texture_hu)
    container = None
    uniform_value = None
    r = diameter_mm / 2
    wall = None
    if kind == "juxtapleural":
        # an oblique pleural plane (a chest wall is never aligned with the voxel lattice); lung side: p.n > offset
        n_wall = np.array([1.0, 0.25, 0.12]) / np.linalg.norm([1.0, 0.25, 0.12])
        offset = float(n_wall @ centre - 0.55 * r)  # 45 % of the radius lies beyond the pleura
        wall = {
            "normal": [float(v) for v in n_wall],
            "offset_mm": offset,
            "note": "lung where p . normal > offset_mm; chest wall (40 HU) below, fat from offset - 30 mm",
        }

        def container(p, _n=n_wall, _o=offset):
            return p @ _n > _o

        box = (slice(0, nz), slice(0, ny), slice(0, nx))
        frac = fraction_sdf(grid, box, lambda p, _n=n_wall, _o=offset: p @ _n - _o)
        paint(hu, box, frac, WALL_HU)
        frac = fraction_sdf(grid, box, lambda p, _n=n_wall, _o=offset - 30.0: p @ _n - _o)
        paint(hu, box, frac, FAT_HU)
        uniform_value = WALL_HU
    plane_normal = None
    if kind == "perifissural":
        plane_normal = (0.0, -0.6, 0.8)
        n = np.asarray(plane_normal) / np.linalg.norm(plane_normal)
        box = (slice(0, nz), slice(0, ny), slice(0, nx))
        frac = fraction_sdf(grid, box, lambda p: np.abs((p - centre) @ n) - 0.15)
        paint(hu, box, frac, -100.0)
    nodule = make_nodule(
        kind, diameter_mm, centre, rng, nodule_id="N1", container=container, plane_normal=plane_normal, **shape
    )
    paint_nodule(hu, grid, nodule)
    clean = hu
    noisy, blurred = acquire(
        clean,
        grid.spacing_mm,
        rng,
        noise_sd_hu=noise_sd_hu,
        slice_thickness_mm=slice_thickness_mm,
        psf_fwhm_xy_mm=psf_fwhm_mm,
    )

    truth = nodule_truth(nodule)
    z0, dz = grid.origin_lps_mm[2], sz

    def snap(z):
        return z0 + round((z - z0) / dz) * dz

    truth["seed_lps_mm"] = jittered_seed(
        nodule, truth["centroid_lps_mm"], rng, jitter_fraction=jitter_fraction, snap_z=snap
    )
    study_date = dt.date(2025, 3, 3)
    case = f"single-{kind}"
    patient = make_patient(case, seed, study_date)
    study_uid = make_uid(case, seed, diameter_mm, "study")
    truth.update(
        {
            "id": "N1",
            "tracking_uid": make_uid(case, seed, diameter_mm, "nodule", "N1"),
            "lobe": "RUL",
            "upper_lobe": True,
        }
    )
    study_truth = {
        "case": case,
        "seed": seed,
        "study_index": 0,
        "study_uid": study_uid,
        "study_date": study_date.isoformat(),
        "shape_kji": list(grid.shape),
        "origin_lps_mm": list(grid.origin_lps_mm),
        "spacing_mm": list(grid.spacing_mm),
        "noise_sd_hu": noise_sd_hu,
        "psf_fwhm_mm": psf_fwhm_mm,
        "lung_hu": LUNG_HU,
        "chest_wall_plane": wall,
        "uniform_regions": [r for r in [find_uniform_region(clean, uniform_value)] if r] if uniform_value else [],
        "nodules": [truth],
    }
    return PhantomStudy(
        hu=noisy,
        origin_lps_mm=grid.origin_lps_mm,
        spacing_mm=grid.spacing_mm,
        study_date=study_date,
        patient=patient,
        study_uid=study_uid,
        series_uid=make_uid(case, seed, diameter_mm, "series"),
        frame_of_reference_uid=make_uid(case, seed, diameter_mm, "for"),
        nodules=[truth],
        truth=study_truth,
        slice_thickness_mm=slice_thickness_mm if slice_thickness_mm is not None else sz,
        noise_sd_hu=noise_sd_hu,
        case=case,
        seed=seed,
        clean_hu=blurred,
    )
