"""Image statistics of the synthetic CT match the stated acquisition parameters.

Lung attenuation, nodule attenuation, noise SD in a uniform region, and the
edge spread (slanted-edge method on the oblique chest-wall plane) measured on
the generated images, as a physicist would check a phantom scan.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import curve_fit
from scipy.special import ndtr

from test_images import anatomy, generate_case, render_single_nodule
from test_images.motion import Motion


@pytest.fixture(scope="module")
def multi():
    (study,) = generate_case("multi", "small", seed=1)
    return study


def _centres(study):
    nz, ny, nx = study.hu.shape
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    return study.voxel_to_lps(np.stack([k.ravel(), j.ravel(), i.ravel()], axis=1)).reshape(nz, ny, nx, 3)


def test_lung_parenchyma_is_about_minus_850_hu(multi):
    from scipy import ndimage

    motion = Motion(
        **{
            k: tuple(v)
            for k, v in (
                ("rotation_deg", multi.truth["motion"]["rotation_deg_xyz"]),
                ("translation_mm", multi.truth["motion"]["translation_mm"]),
                ("breathing_mm", multi.truth["motion"]["breathing_mm"]),
            )
        }
    )
    lung = anatomy.lung_inside(motion.to_body(_centres(multi)))
    lung = ndimage.binary_erosion(lung, iterations=3)
    # keep away from the nodules
    pts = _centres(multi)
    for n in multi.nodules:
        lung &= np.linalg.norm(pts - np.asarray(n["centroid_lps_mm"]), axis=-1) > n["long_axis_mm"] + 5
    values = multi.hu[lung]
    assert values.size > 100_000
    assert np.median(values) == pytest.approx(-850.0, abs=20.0)


def test_noise_sd_in_the_uniform_region_is_the_requested_40_hu(multi):
    (region,) = multi.truth["uniform_regions"][:1]
    (k0, k1), (j0, j1), (i0, i1) = region["index_box_kji"]
    values = multi.hu[k0:k1, j0:j1, i0:i1]
    assert values.size >= 1000
    assert float(values.mean()) == pytest.approx(region["hu"], abs=6.0)
    assert float(values.std()) == pytest.approx(40.0, abs=4.0)


def test_noise_sd_is_selectable():
    study = render_single_nodule("juxtapleural", 8.0, noise_sd_hu=25.0, seed=4)
    (region,) = study.truth["uniform_regions"]
    (k0, k1), (j0, j1), (i0, i1) = region["index_box_kji"]
    values = study.hu[k0:k1, j0:j1, i0:i1]
    assert float(values.std()) == pytest.approx(25.0, rel=0.12)


def test_solid_and_ground_glass_nodule_attenuation(multi):
    pts = _centres(multi)
    checked = 0
    for n in multi.nodules:
        if n["kind"] not in ("solid", "ggn") or n["short_axis_mm"] < 5.5:
            continue
        core = np.linalg.norm(pts - np.asarray(n["centroid_lps_mm"]), axis=-1) < 0.3 * n["short_axis_mm"]
        assert float(multi.hu[core].mean()) == pytest.approx(n["hu"], abs=15.0), n["id"]
        checked += 1
    assert checked >= 2
    for n in multi.nodules:
        if n["kind"] == "ggn":
            assert -700 <= n["hu"] <= -500
        if n["kind"] == "solid":
            assert 30 <= n["hu"] <= 100


@pytest.mark.parametrize("psf_fwhm_mm", [0.9, 1.5])
def test_edge_spread_fwhm_matches_the_stated_psf(psf_fwhm_mm):
    """Slanted-edge method on the oblique chest wall: fit an error function to the edge profile."""
    study = render_single_nodule("juxtapleural", 8.0, noise_sd_hu=40.0, seed=2, texture_hu=0.0, psf_fwhm_mm=psf_fwhm_mm)
    plane = study.truth["chest_wall_plane"]
    n = np.asarray(plane["normal"])
    pts = _centres(study)
    d = pts @ n - plane["offset_mm"]
    nod = study.nodules[0]
    far = np.linalg.norm(pts - np.asarray(nod["centroid_lps_mm"]), axis=-1) > nod["long_axis_mm"] / 2 + 6
    sel = far & (np.abs(d) < 4.0)
    x, v = d[sel], study.hu[sel]
    assert x.size > 5000

    def esf(x, lo, hi, x0, sigma):
        return lo + (hi - lo) * ndtr((x - x0) / sigma)

    (lo, hi, x0, sigma), _ = curve_fit(esf, x, v, p0=(40.0, -850.0, 0.0, 0.5))
    assert lo == pytest.approx(40.0, abs=10.0) and hi == pytest.approx(-850.0, abs=10.0)
    assert abs(x0) < 0.1  # the edge is where the truth puts the pleura
    fwhm = sigma * 2 * math.sqrt(2 * math.log(2))
    assert fwhm == pytest.approx(psf_fwhm_mm, abs=0.12)


@pytest.mark.parametrize("spacing_mm", [(0.6, 0.6, 2.5), (0.8, 0.8, 0.625), (0.7, 0.7, 1.0)])
def test_rendered_contrast_volume_equals_truth_at_any_slice_spacing(spacing_mm):
    """PSF and partial volume conserve the nodule's 'mass': sum of contrast / nodule contrast = truth volume."""
    study = render_single_nodule(
        "solid",
        9.0,
        noise_sd_hu=0.0,
        spacing_mm=spacing_mm,
        seed=6,
        texture_hu=0.0,
        slice_thickness_mm=spacing_mm[2] * 1.25,
    )
    nod = study.nodules[0]
    contrast = (study.clean_hu + 850.0) / (nod["hu"] + 850.0)
    volume = float(contrast.sum()) * float(np.prod(study.spacing_mm))
    assert volume == pytest.approx(nod["volume_mm3"], rel=0.01)
    assert study.slice_thickness_mm == pytest.approx(spacing_mm[2] * 1.25)
