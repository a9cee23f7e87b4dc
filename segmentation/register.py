"""Registration of a prior CT to the current one, and nodule correspondence across time points.

Implements the image part of issue 8 ("find the same nodules in prior studies"):

* :func:`register` estimates a transform that maps points of the *current*
  study (LPS mm) to the *prior* study (LPS mm): a rigid stage (Euler3D), then
  an affine stage, then a coarse B-spline stage for breathing differences.
  All stages run on lung-masked, block-averaged (~3 mm) images with the HU
  clipped to the lung-to-soft-tissue range, by multi-resolution mean-squares
  registration (the two studies are CT of the same patient, so their HU agree).
  Translation is initialised by trying the scanner frame as it is, the
  centres of the two fields of view and the centres of mass of the two lung
  masks, keeping the start with the best metric; this tolerates several cm of
  table/repositioning shift and a few degrees of rotation.
* :class:`Registration` holds the composite transform and maps points both
  ways (the inverse by Newton/fixed-point iteration on the composite).
* :func:`find_in_prior` re-segments a nodule at its mapped position in the
  prior with the same algorithm as the current study
  (:func:`segmentation.nodule.segment_nodule`), searching the neighbourhood
  when the mapped point misses.
* :func:`match_nodules` assigns current to prior nodules one-to-one (Hungarian
  on the distance after mapping) and labels the rest new / resolved.

Pure computation: no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from segmentation.types import NoduleMeasurement, NoNoduleAtSeed

Vec3 = tuple[float, float, float]

#: HU window the registration compares (air-filled lung .. soft tissue); bone and contrast are clipped
CLIP_HU = (-1000.0, 200.0)
#: target voxel size (mm) of the working images (block averaging of the original voxels)
WORKING_SPACING_MM = 3.0
#: margin (mm) by which the lung mask is dilated to make the metric mask (includes pleura, diaphragm, mediastinum)
MASK_MARGIN_MM = 10.0
#: B-spline control-point spacing (mm): coarse, breathing-scale deformations only
BSPLINE_GRID_MM = 60.0
#: at most this many metric samples per stage (random subset with a fixed seed beyond it: deterministic)
MAX_METRIC_SAMPLES = 50_000
#: metric samples of each stage (random subset, fixed seed); the cost of a stage grows with them, and on the
#: phantom pairs (benchmarks.registration) these keep the mapped centroids within 0.4 mm (target 2 mm) at a
#: third of the time of 50 000 samples per linear stage and 12 500 for the B-spline
STAGE_SAMPLES = {"translation": 5_000, "rigid": 10_000, "affine": 15_000, "bspline": 6_000}
#: Gaussian smoothing (sigma, voxels of the working grid) of the coarse level of the linear stages; for the
#: translation starts the smoothed images are computed once (SimpleITK's per-level smoothing is the same
#: recursive Gaussian, filtering both images again for every start)
COARSE_SIGMA_VOXELS = 2.0
#: L-BFGS-B iterations of the B-spline stage (twice as many metric evaluations at most)
BSPLINE_ITERATIONS = 8
#: the stages whose metric filters whole gradient images per level (smoothed: the B-spline's fine steps need it;
#: on the phantom pairs it halves the B-spline's error); the others differentiate at the samples (faster)
GRADIENT_FILTER_STAGES: tuple[str, ...] = ("bspline",)
#: translation starts closer than this (mm) to one already tried are not tried again
SAME_START_MM = 5.0
#: the lung overlap check looks at every this-many-th voxel of the working grid along each axis
OVERLAP_STRIDE = 2
#: a registration is rejected when less than this fraction of the current lung lands in prior lung
MIN_LUNG_OVERLAP = 0.6


#: pixel types BinShrink averages without loss of precision (others are cast to float32 first)
_SHRINKABLE = (sitk.sitkFloat32, sitk.sitkFloat64)


class RegistrationError(RuntimeError):
    """The prior study could not be registered to the current one; the message says why."""


@dataclass(frozen=True)
class Registration:
    """Maps points of the CURRENT study (LPS mm) into the PRIOR study (LPS mm).

    ``transform`` is an ITK composite (fixed = current, moving = prior): a point
    of the current study goes through the B-spline, then the affine, then the
    rigid transform (``stages`` lists the stages in the order they were
    estimated).  ``metric_value`` is the final mean-squares metric (HU^2, on
    the clipped working images); ``lung_overlap`` the fraction of the current
    lung mask that maps into the prior lung mask.
    """

    transform: sitk.Transform
    metric_value: float
    stages: tuple[str, ...]
    seconds: float
    lung_overlap: float = float("nan")
    stage_seconds: tuple[tuple[str, float], ...] = ()  # wall seconds of each part (working images, stages, check)

    def current_to_prior(self, point_lps_mm: Sequence[float]) -> Vec3:
        """Map a point of the current study (LPS mm) into the prior study (LPS mm)."""
        p = self.transform.TransformPoint(tuple(float(v) for v in point_lps_mm))
        return (float(p[0]), float(p[1]), float(p[2]))

    def prior_to_current(
        self, point_lps_mm: Sequence[float], *, tolerance_mm: float = 1e-3, max_iterations: int = 50
    ) -> Vec3:
        """Map a point of the prior study (LPS mm) into the current study (inverse of :meth:`current_to_prior`).

        Solves ``current_to_prior(x) == point`` by Newton iteration with the
        Jacobian estimated by central differences (the transform is nearly
        affine and smooth, so a few iterations reach ``tolerance_mm``).
        Raises :class:`RegistrationError` if it does not converge.
        """
        y = np.asarray([float(v) for v in point_lps_mm])
        x = y.copy()
        r = np.zeros(3)
        for _ in range(max_iterations):
            r = np.asarray(self.transform.TransformPoint(tuple(x))) - y
            if np.linalg.norm(r) < tolerance_mm:
                return (float(x[0]), float(x[1]), float(x[2]))
            jac = self._jacobian(x)
            x = x - np.linalg.solve(jac, r)
        raise RegistrationError(
            f"the inverse mapping of ({y[0]:.1f}, {y[1]:.1f}, {y[2]:.1f}) mm did not converge "
            f"(residual {np.linalg.norm(r):.3f} mm after {max_iterations} iterations)"
        )

    def _jacobian(self, x: np.ndarray, h_mm: float = 0.5) -> np.ndarray:
        jac = np.empty((3, 3))
        for j in range(3):
            d = np.zeros(3)
            d[j] = h_mm
            jac[:, j] = (
                np.asarray(self.transform.TransformPoint(tuple(x + d)))
                - np.asarray(self.transform.TransformPoint(tuple(x - d)))
            ) / (2 * h_mm)
        return jac


@dataclass(frozen=True)
class NoduleMatch:
    """Correspondence of one nodule between the current study and a prior.

    ``current_index`` / ``prior_index`` index the centroid lists given to
    :func:`match_nodules`; ``distance_mm`` is the distance between the mapped
    current centroid and the prior centroid (None unless matched).
    """

    current_index: int | None
    prior_index: int | None
    distance_mm: float | None
    status: Literal["matched", "new", "resolved"]


# --------------------------------------------------------------------------- registration


def register(
    current: sitk.Image,
    prior: sitk.Image,
    *,
    current_lungs: sitk.Image | None = None,
    prior_lungs: sitk.Image | None = None,
    deformable: bool = True,
) -> Registration:
    """Register ``prior`` (moving) to ``current`` (fixed): rigid, affine, then (``deformable``) a coarse B-spline.

    ``current_lungs`` / ``prior_lungs`` are optional lung masks aligned with
    their images (as from :func:`segmentation.lungs.lung_mask`); without them
    the masks are computed on the downsampled images.  Raises
    :class:`RegistrationError` when the images do not overlap or the result
    does not superimpose the lungs.
    """
    t0 = time.perf_counter()
    clock = [t0]
    parts: list[tuple[str, float]] = []

    def lap(name: str) -> None:
        now = time.perf_counter()
        parts.append((name, now - clock[0]))
        clock[0] = now

    fixed = _working_image(current, "current")
    moving = _working_image(prior, "prior")
    fixed_lungs = _working_lungs(fixed, current, current_lungs, "current")
    moving_lungs = _working_lungs(moving, prior, prior_lungs, "prior")
    fixed_mask = _dilate(fixed_lungs, MASK_MARGIN_MM)
    moving_mask = _dilate(moving_lungs, MASK_MARGIN_MM)
    images = _Images.of(fixed, moving, fixed_mask, moving_mask)
    lap("working images")

    rigid = _initial_rigid(images, fixed_lungs, moving_lungs)
    lap("translation")
    stages = ["rigid"]
    rigid, _ = _run(images, rigid, None, kind="rigid")
    lap("rigid")

    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine, metric = _run(images, affine, rigid, kind="affine")
    stages.append("affine")
    linear = sitk.CompositeTransform([rigid, affine])  # affine applied first, then rigid
    lap("affine")

    transforms: list[sitk.Transform] = [rigid, affine]
    if deformable:
        mesh = [max(1, int(round(sz * sp / BSPLINE_GRID_MM))) for sz, sp in zip(fixed.GetSize(), fixed.GetSpacing())]
        bspline = sitk.BSplineTransformInitializer(fixed, mesh, 3)
        bspline, metric = _run(images, bspline, linear, kind="bspline")
        transforms.append(bspline)
        stages.append("bspline")
        lap("bspline")
    composite = sitk.CompositeTransform(transforms)  # last added is applied first
    overlap = _lung_overlap(fixed_lungs, moving_lungs, composite)
    lap("overlap check")
    if overlap < MIN_LUNG_OVERLAP:
        raise RegistrationError(
            f"registration failed: only {overlap:.0%} of the current lung maps into the prior lung "
            f"(at least {MIN_LUNG_OVERLAP:.0%} expected); the studies may not show the same region"
        )
    return Registration(
        transform=composite,
        metric_value=float(metric),
        stages=tuple(stages),
        seconds=time.perf_counter() - t0,
        lung_overlap=float(overlap),
        stage_seconds=tuple(parts),
    )


def _working_image(image: sitk.Image, which: str) -> sitk.Image:
    """Block-average to ~WORKING_SPACING_MM voxels and clip HU (float32)."""
    if image.GetDimension() != 3:
        raise RegistrationError(f"the {which} image is {image.GetDimension()}-D; registration needs a 3-D CT volume")
    size = image.GetSize()
    if min(size) < 2:
        raise RegistrationError(f"the {which} image ({size[0]} x {size[1]} x {size[2]} voxels) is too thin to register")
    factors = [max(1, int(round(WORKING_SPACING_MM / sp))) for sp in image.GetSpacing()]
    factors = [min(f, max(1, n // 8)) for f, n in zip(factors, size)]
    img = image
    if any(f > 1 for f in factors):  # shrink first: casting a full-size series costs more than the shrink
        img = sitk.BinShrink(img if img.GetPixelID() in _SHRINKABLE else sitk.Cast(img, sitk.sitkFloat32), factors)
    return cast(sitk.Image, sitk.Clamp(sitk.Cast(img, sitk.sitkFloat32), sitk.sitkFloat32, CLIP_HU[0], CLIP_HU[1]))


def _working_lungs(work: sitk.Image, image: sitk.Image, lungs: sitk.Image | None, which: str) -> sitk.Image:
    """Lung mask (uint8) on the working grid, resampled from ``lungs`` or from the lung mask of ``image``.

    When no lung can be delineated (e.g. a field of view that cuts through the
    chest wall), the lung-density voxels (-980 .. -400 HU on the block-averaged
    image; outside air is about -1000 HU) stand in for the lungs.
    """
    if lungs is None:
        from segmentation.lungs import lung_mask

        lungs = lung_mask(image)
    if lungs.GetPixelID() != sitk.sitkUInt8:
        lungs = sitk.Cast(lungs > 0, sitk.sitkUInt8)
    mask = sitk.Resample(lungs, work, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)  # working-grid size: cheap
    if np.count_nonzero(sitk.GetArrayViewFromImage(mask)) < 100:
        mask = sitk.Cast((work < -400.0) & (work > -980.0), sitk.sitkUInt8)
    if np.count_nonzero(sitk.GetArrayViewFromImage(mask)) < 100:
        raise RegistrationError(f"the {which} image shows no lung (no air-density region); cannot register it")
    return cast(sitk.Image, mask)


def _dilate(mask: sitk.Image, margin_mm: float) -> sitk.Image:
    radius = [max(1, int(round(margin_mm / sp))) for sp in mask.GetSpacing()]
    return cast(sitk.Image, sitk.BinaryDilate(mask, radius, sitk.sitkBall, 0, 1))


def _centre_of_mass(mask: sitk.Image) -> np.ndarray:
    arr = sitk.GetArrayViewFromImage(mask)
    c_zyx = ndimage.center_of_mass(arr > 0)
    return np.asarray(mask.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in c_zyx[::-1])))


def _field_centre(image: sitk.Image) -> np.ndarray:
    size = np.asarray(image.GetSize(), dtype=float)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2)))


def _initial_rigid(images: _Images, fixed_lungs: sitk.Image, moving_lungs: sitk.Image) -> sitk.Euler3DTransform:
    """Euler3D centred on the current lungs, translated by the best of a few candidate offsets.

    Candidates: no offset (same scanner frame), field-of-view centres, lung
    centres of mass.  Each is scored by the metric after a short
    translation-only registration at the coarsest level.
    """
    fixed, moving = images.fixed, images.moving
    centre = _centre_of_mass(fixed_lungs)
    offsets = [np.zeros(3), _field_centre(moving) - _field_centre(fixed), _centre_of_mass(moving_lungs) - centre]
    best = None
    tried: list[np.ndarray] = []
    for offset in offsets:
        if any(np.linalg.norm(offset - t) < SAME_START_MM for t in tried):
            continue  # (almost) the start of a translation already optimised: it converges to the same
        tried.append(offset)
        if _box_overlap(fixed, moving, offset) < 0.2:
            continue  # this start leaves (almost) no common field of view
        tr = sitk.TranslationTransform(3, tuple(float(v) for v in offset))
        try:
            tr, value = _run(images, tr, None, kind="translation")
        except RegistrationError:
            continue
        if best is None or value < best[1]:
            best = (np.asarray(tr.GetOffset()), value)
    if best is None:
        raise RegistrationError(
            "registration failed: the prior and current images do not overlap for any initial alignment "
            "(no common field of view)"
        )
    rigid = sitk.Euler3DTransform()
    rigid.SetCenter(tuple(float(v) for v in centre))
    rigid.SetTranslation(tuple(float(v) for v in best[0]))
    return rigid


def _box_overlap(fixed: sitk.Image, moving: sitk.Image, offset: np.ndarray) -> float:
    """Fraction of the fixed image's bounding box that, shifted by ``offset`` (mm), lies in the moving one's."""

    def box(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
        size = np.asarray(image.GetSize(), dtype=float)
        corners = np.array(
            [
                image.TransformContinuousIndexToPhysicalPoint(tuple(c * (size - 1)))
                for c in np.array(np.meshgrid([0, 1], [0, 1], [0, 1])).reshape(3, -1).T
            ]
        )
        return corners.min(axis=0), corners.max(axis=0)

    f_lo, f_hi = box(fixed)
    m_lo, m_hi = box(moving)
    f_lo, f_hi = f_lo + offset, f_hi + offset
    inter = np.clip(np.minimum(f_hi, m_hi) - np.maximum(f_lo, m_lo), 0, None)
    return float(np.prod(inter) / max(np.prod(f_hi - f_lo), 1e-9))


@dataclass(frozen=True)
class _Images:
    """The working images of one registration, and their smoothed copies for the coarse level."""

    fixed: sitk.Image
    moving: sitk.Image
    fixed_mask: sitk.Image
    moving_mask: sitk.Image
    fixed_coarse: sitk.Image
    moving_coarse: sitk.Image

    @classmethod
    def of(cls, fixed: sitk.Image, moving: sitk.Image, fixed_mask: sitk.Image, moving_mask: sitk.Image) -> _Images:
        def smoothed(image: sitk.Image) -> sitk.Image:
            sigma_mm = [COARSE_SIGMA_VOXELS * sp for sp in image.GetSpacing()]
            return cast(sitk.Image, sitk.SmoothingRecursiveGaussian(image, sigma_mm))

        return cls(fixed, moving, fixed_mask, moving_mask, smoothed(fixed), smoothed(moving))


def _run(images: _Images, transform: Any, moving_initial: Any, *, kind: str) -> tuple[Any, float]:
    """One multi-resolution registration stage; returns (optimized transform, final metric)."""
    reg = _method(images.fixed_mask, images.moving_mask, kind)
    if moving_initial is not None:
        reg.SetMovingInitialTransform(moving_initial)
    reg.SetInitialTransform(transform, inPlace=True)
    # the translation starts run on the images smoothed once (what ITK's level smoothing computes, every time)
    fixed, moving = (
        (images.fixed_coarse, images.moving_coarse) if kind == "translation" else (images.fixed, images.moving)
    )
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as exc:
        text = str(exc)
        if "outside" in text or "samples" in text.lower():
            raise RegistrationError(
                f"{kind} registration failed: too few points of the current lung map into the prior image "
                "(the studies do not overlap)"
            ) from None
        raise RegistrationError(f"{kind} registration failed: {text.strip().splitlines()[-1]}") from None
    return transform, reg.GetMetricValue()


def _method(fixed_mask: sitk.Image, moving_mask: sitk.Image, kind: str) -> sitk.ImageRegistrationMethod:
    """The registration method of one stage."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMeanSquares()
    reg.SetMetricFixedMask(fixed_mask)
    reg.SetMetricMovingMask(moving_mask)
    n_mask = int(np.count_nonzero(sitk.GetArrayViewFromImage(fixed_mask)))
    samples = min(MAX_METRIC_SAMPLES, STAGE_SAMPLES.get(kind, MAX_METRIC_SAMPLES))
    if n_mask > samples:  # large fields of view: a fixed random subset keeps each stage fast
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(samples / n_mask, seed=20240212)
    else:
        reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetInterpolator(sitk.sitkLinear)
    if kind not in GRADIENT_FILTER_STAGES:  # the image gradients at the samples only, not gradient images per level
        reg.MetricUseFixedImageGradientFilterOff()
        reg.MetricUseMovingImageGradientFilterOff()
    if kind == "translation":  # one coarse level, on the images smoothed by COARSE_SIGMA_VOXELS
        reg.SetShrinkFactorsPerLevel([2])
        reg.SetSmoothingSigmasPerLevel([0.0])
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=4.0, minStep=0.5, numberOfIterations=40, gradientMagnitudeTolerance=1e-6
        )
        reg.SetOptimizerScalesFromPhysicalShift()
    elif kind in ("rigid", "affine"):
        reg.SetShrinkFactorsPerLevel([2, 1])
        reg.SetSmoothingSigmasPerLevel([COARSE_SIGMA_VOXELS, 0.0])
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0,
            minStep=0.02,
            numberOfIterations=100,
            gradientMagnitudeTolerance=1e-6,
            relaxationFactor=0.6,
        )
        reg.SetOptimizerScalesFromPhysicalShift()
    else:  # bspline
        reg.SetShrinkFactorsPerLevel([1])
        reg.SetSmoothingSigmasPerLevel([0.0])
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(min(0.15, samples / max(1, n_mask)), seed=20240212)  # fixed seed
        reg.SetOptimizerAsLBFGSB(
            gradientConvergenceTolerance=1e-4,
            numberOfIterations=BSPLINE_ITERATIONS,
            maximumNumberOfCorrections=5,
            maximumNumberOfFunctionEvaluations=2 * BSPLINE_ITERATIONS,
        )
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    return reg


def _lung_overlap(fixed_lungs: sitk.Image, moving_lungs: sitk.Image, transform: sitk.Transform) -> float:
    """Fraction of current-lung voxels (whose mapped point lies inside the prior image) that land in prior lung.

    Counted on every OVERLAP_STRIDE-th voxel of the working grid along each axis (a fraction, not a volume)."""
    if OVERLAP_STRIDE > 1:
        fixed_lungs = sitk.Shrink(fixed_lungs, [OVERLAP_STRIDE] * fixed_lungs.GetDimension())
    warped = sitk.Resample(moving_lungs, fixed_lungs, transform, sitk.sitkNearestNeighbor, 255, sitk.sitkUInt8)
    w = sitk.GetArrayViewFromImage(warped)
    f = sitk.GetArrayViewFromImage(fixed_lungs) > 0
    inside = f & (w != 255)
    if inside.sum() < 0.2 * f.sum():
        return 0.0
    return float(np.count_nonzero(inside & (w == 1)) / np.count_nonzero(inside))


# --------------------------------------------------------------------------- nodules in the prior

#: grid step (mm) of the neighbourhood search when the mapped point misses the nodule
SEARCH_STEP_MM = 2.0
#: voxels denser than this (HU, after light smoothing) are candidate nodule points; ground glass is included
CANDIDATE_MIN_HU = -700.0
#: at most this many candidate points are tried with the segmentation
MAX_CANDIDATES = 12
#: size-aware choice in :func:`find_in_prior`: a doubling (or halving) of volume counts like this many mm of distance
VOLUME_MISMATCH_MM_PER_DOUBLING = 2.0


def find_in_prior(
    prior: sitk.Image,
    mapped_seed_lps_mm: Sequence[float],
    *,
    prior_lungs: sitk.Image | None = None,
    search_radius_mm: float = 8.0,
    expected_volume_mm3: float | None = None,
) -> NoduleMeasurement | None:
    """Re-segment, in the prior, the nodule whose current position maps to ``mapped_seed_lps_mm``.

    First :func:`segmentation.nodule.segment_nodule` at the mapped point; if it
    finds nothing there (or a nodule whose centroid lies farther than
    ``search_radius_mm``), candidate points within ``search_radius_mm`` (local
    density maxima on a ~2 mm grid, nearest first) are tried, and the result
    whose centroid is closest to the mapped point is returned.

    ``expected_volume_mm3`` (the nodule's current partial-volume volume) makes the choice
    size-aware: every structure found in the neighbourhood is scored by its
    centroid distance plus ``VOLUME_MISMATCH_MM_PER_DOUBLING`` per doubling of
    volume difference, so that a vessel fragment next to the mapped point does
    not win over the nodule a few mm away.  A seed-dependent volume (re-segmented
    from its centre it changed by more than ``RESEED_DISAGREEMENT``) is scored at
    the far end of that uncertainty: its mismatch counts ``log2(1 + RESEED_DISAGREEMENT)``
    doublings more, so a vessel fragment whose re-segmentation grew it towards the
    expected size does not win on that growth.  None when there is no nodule within
    ``search_radius_mm``.
    """
    from segmentation.nodule import RESEED_DISAGREEMENT
    from segmentation.production import measure_at_seed

    seed = np.asarray([float(v) for v in mapped_seed_lps_mm])

    def score(m: NoduleMeasurement) -> float:
        d = float(np.linalg.norm(np.asarray(m.centroid_lps_mm) - seed))
        # physical (partial-volume) sizes: the reported volume's blurred-edge shell would favour small fragments
        volume = m.partial_volume_mm3 if m.partial_volume_mm3 else m.volume_mm3
        if expected_volume_mm3 is None or expected_volume_mm3 <= 0 or volume <= 0:
            return d
        doublings = abs(float(np.log2(volume / expected_volume_mm3)))
        if m.quality.seed_dependent:
            doublings += float(np.log2(1.0 + RESEED_DISAGREEMENT))
        return d + VOLUME_MISMATCH_MM_PER_DOUBLING * doublings

    found: list[NoduleMeasurement] = []

    def attempt(point: Any) -> NoduleMeasurement | None:
        try:
            m = measure_at_seed(prior, tuple(float(v) for v in point), lung_mask=prior_lungs)
        except NoNoduleAtSeed:
            return None
        if np.linalg.norm(np.asarray(m.centroid_lps_mm) - seed) > search_radius_mm:
            return None
        if all(np.linalg.norm(np.subtract(m.centroid_lps_mm, f.centroid_lps_mm)) > 0.5 for f in found):
            found.append(m)
        return m

    direct = attempt(seed)
    if direct is not None and expected_volume_mm3 is None:
        return direct
    for point in _candidate_points(prior, seed, search_radius_mm):
        if found and expected_volume_mm3 is None and np.linalg.norm(point - seed) > min(map(score, found)) + 1.0:
            break  # candidates come nearest first; no farther start can beat a nodule this close
        if any(_inside(f, prior, point) for f in found):
            continue  # this start lies in a structure already segmented
        attempt(point)
    return min(found, key=score) if found else None


def _inside(m: NoduleMeasurement, image: sitk.Image, point: np.ndarray) -> bool:
    """Whether ``point`` (LPS mm) falls in the mask of measurement ``m`` (segmented on ``image``)."""
    if m.mask is None:
        return False
    idx = np.rint(np.asarray(image.TransformPhysicalPointToContinuousIndex(tuple(float(v) for v in point))[::-1]))
    local = idx.astype(int) - np.asarray(m.mask.origin_index_zyx)
    if np.any(local < 0) or np.any(local >= np.asarray(m.mask.mask.shape)):
        return False
    return bool(m.mask.mask[tuple(local)])


def _candidate_points(image: sitk.Image, seed: np.ndarray, radius_mm: float) -> list[np.ndarray]:
    """Dense local maxima within ``radius_mm`` of ``seed`` (LPS mm), nearest first, at most MAX_CANDIDATES."""
    spacing_zyx = np.asarray(image.GetSpacing()[::-1], dtype=float)
    size_zyx = np.asarray(image.GetSize()[::-1])
    c_zyx = np.asarray(image.TransformPhysicalPointToContinuousIndex(tuple(seed))[::-1])
    half = np.ceil((radius_mm + 2.0) / spacing_zyx).astype(int)
    lo = np.maximum(np.floor(c_zyx).astype(int) - half, 0)
    hi = np.minimum(np.ceil(c_zyx).astype(int) + half + 1, size_zyx)
    if np.any(hi <= lo):
        return []
    arr = sitk.GetArrayViewFromImage(image)[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float32)
    smooth = ndimage.gaussian_filter(arr, sigma=1.0 / spacing_zyx)
    footprint = np.maximum(1, np.round(SEARCH_STEP_MM / spacing_zyx)).astype(int) * 2 + 1
    peaks = (smooth == ndimage.maximum_filter(smooth, size=tuple(footprint))) & (smooth > CANDIDATE_MIN_HU)
    idx = np.argwhere(peaks) + lo
    if idx.size == 0:
        return []
    dist = np.linalg.norm((idx - c_zyx) * spacing_zyx, axis=1)
    keep = dist <= radius_mm
    idx, dist = idx[keep], dist[keep]
    order = np.argsort(dist, kind="stable")[:MAX_CANDIDATES]
    return [
        np.asarray(image.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in idx[i][::-1]))) for i in order
    ]


# --------------------------------------------------------------------------- matching


def match_nodules(
    current_centroids_lps: Sequence[Sequence[float]],
    prior_centroids_lps: Sequence[Sequence[float]],
    registration: Any,
    *,
    max_distance_mm: float = 10.0,
) -> list[NoduleMatch]:
    """One-to-one correspondence of current and prior nodules after mapping current -> prior.

    ``registration`` is a :class:`Registration` (anything with
    ``current_to_prior``).  The assignment minimises the total distance
    (Hungarian algorithm); pairs farther apart than ``max_distance_mm`` are not
    matched.  Returns one entry per current nodule in input order
    ("matched" or "new"), then one per unmatched prior nodule ("resolved").
    """
    current = [np.asarray(registration.current_to_prior(c), dtype=float) for c in current_centroids_lps]
    prior = [np.asarray(p, dtype=float) for p in prior_centroids_lps]
    pairs: dict[int, tuple[int, float]] = {}
    if current and prior:
        dist = np.linalg.norm(np.asarray(current)[:, None, :] - np.asarray(prior)[None, :, :], axis=2)
        big = max_distance_mm * 1e3 + float(dist.max())
        cost = np.where(dist <= max_distance_mm, dist, big)
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols):
            if dist[r, c] <= max_distance_mm:
                pairs[int(r)] = (int(c), float(dist[r, c]))
    out = []
    for i in range(len(current)):
        if i in pairs:
            out.append(NoduleMatch(i, pairs[i][0], pairs[i][1], "matched"))
        else:
            out.append(NoduleMatch(i, None, None, "new"))
    matched_prior = {c for c, _ in pairs.values()}
    out.extend(NoduleMatch(None, j, None, "resolved") for j in range(len(prior)) if j not in matched_prior)
    return out
