"""Data contracts of the image-analysis stage (DESIGN §3).

Frozen dataclasses, units in every name, no rounding: rounding happens only
when a number is presented (SR, tables).  Coordinates are LPS millimetres
(the DICOM patient coordinate system); voxel indices are (z, y, x) into the
series volume as loaded by :func:`segmentation.io.load_series`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Vec3 = tuple[float, float, float]
Plane = Literal["axial", "coronal", "sagittal"]


@dataclass(frozen=True, eq=False)
class NoduleMask:
    """Segmentation of one nodule inside its bounding box.

    ``mask`` is a boolean array (z, y, x) whose voxel ``[0, 0, 0]`` is voxel
    ``origin_index_zyx`` of the series volume.  ``fraction`` optionally holds
    the partial-volume weight (0..1) of each voxel (same shape), so that
    ``partial_volume_mm3 == fraction.sum() * voxel_volume_mm3``; ``readers_mask``
    is the outline in the radiologists' convention, whose volume the SR reports
    (``volume_mm3``).
    """

    origin_index_zyx: tuple[int, int, int]
    mask: np.ndarray
    fraction: np.ndarray | None = None
    readers_mask: np.ndarray | None = None  # the outline in the radiologists' convention (same shape), if known

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.mask.shape)  # type: ignore[return-value]

    @property
    def box(self) -> tuple[slice, slice, slice]:
        """Where the mask lies in the series volume: ``volume[box]`` has the mask's shape."""
        z, y, x = (slice(o, o + n) for o, n in zip(self.origin_index_zyx, self.mask.shape))
        return z, y, x

    @property
    def reported(self) -> np.ndarray:
        """The voxels whose volume is the reported ``volume_mm3``: the radiologists'-convention outline
        when known, else the mask.  What the SEG shows and ``noduled measure --mask-out`` writes, so
        that the outline on the radiologist's screen and the SR's volume are one object."""
        return self.readers_mask if self.readers_mask is not None else self.mask


@dataclass(frozen=True)
class MeasurementQuality:
    """Flags that tell the protocol how far to trust the volume."""

    touches_roi_edge: bool = False
    cut_by_field_of_view: bool = False
    juxtapleural_cut_applied: bool = False
    vessel_detachment_applied: bool = False
    possible_leak: bool = False
    too_small_for_volumetry: bool = False  # thinner than the blur with a sub-solid level (partial volume)
    seed_dependent: bool = False  # re-segmentation from the nodule's centre disagrees with the seed's
    volumetry_unreliable: bool = False  # True -> the protocol uses mean diameter
    reasons: tuple[str, ...] = ()


#: ``NoduleMeasurement.volume_convention``: what the reported ``volume_mm3`` counts.  Volumes of two
#: conventions differ by a blurred-edge shell (20-35 % on real nodules) and are never compared for growth.
RADIOLOGISTS_OUTLINE = "radiologists-outline"  # the outline LIDC readers draw: first pixel outside included
PARTIAL_VOLUME = "partial-volume"  # boundary voxels by their share of the contrast (noduled before 2026-12-02)


@dataclass(frozen=True)
class NoduleMeasurement:
    """Everything measured on one nodule at one time point."""

    # the SR's volume (mm3): in the radiologists' outline convention (the outline LIDC readers draw, the
    # first pixel outside the nodule included), which is what volume cut-offs and readers' volumes are
    # measured in; equal to ``readers_volume_mm3`` whenever the segmentation gives that outline, else the
    # partial-volume volume.  ``partial_volume_mm3`` is the physical estimate (phantom truth).
    volume_mm3: float
    mean_diameter_mm: float
    long_axis_mm: float
    short_axis_mm: float
    measurement_plane: Plane
    long_axis_endpoints_lps_mm: tuple[Vec3, Vec3]
    short_axis_endpoints_lps_mm: tuple[Vec3, Vec3]
    max_axial_diameter_mm: float
    mean_hu: float
    centroid_lps_mm: Vec3
    solid_volume_mm3: float | None = None
    solid_mean_diameter_mm: float | None = None
    hu_percentiles: dict[int, float] = field(default_factory=dict)  # {10: -420.0, 50: ..., 90: ...}
    mask: NoduleMask | None = None  # None when read back from an SR
    quality: MeasurementQuality = field(default_factory=MeasurementQuality)
    # volume in the radiologists' outline convention (LIDC: first pixel outside included), None when unknown
    readers_volume_mm3: float | None = None
    # partial-volume volume (mm3): boundary voxels counted by their share of the lung-to-nodule contrast, the
    # physical estimate (bias <= 3 % on solid phantoms 5-30 mm); None when read back from an SR
    partial_volume_mm3: float | None = None
    # the convention ``volume_mm3`` is in: RADIOLOGISTS_OUTLINE once segmentation.nodule reports the
    # readers' outline (every production measurement); PARTIAL_VOLUME for a bare partial-volume measurement
    # and for volumes read back from an SR of a version before that switch (its volume NUM names no convention)
    volume_convention: str = PARTIAL_VOLUME


Origin = Literal["reader", "algorithm"]


@dataclass(frozen=True)
class Characteristic:
    """One characterization attribute with where it came from."""

    value: object
    origin: Origin
    confidence: float | None = None  # 0..1 for algorithm values, None for the reader's


@dataclass(frozen=True)
class Characterization:
    """What the algorithm (or the reader) says about a nodule; None = unknown."""

    composition: Characteristic | None = None  # "solid" | "part-solid" | "non-solid"
    benign_calcification: Characteristic | None = None  # bool
    fat: Characteristic | None = None  # bool
    pleural_distance_mm: Characteristic | None = None  # float
    juxtapleural: Characteristic | None = None  # bool
    perifissural: Characteristic | None = None  # bool
    upper_lobe: Characteristic | None = None  # bool
    lobe: Characteristic | None = None  # "RUL"|"RML"|"RLL"|"LUL"|"LLL" or "right-upper" ...
    spiculated: Characteristic | None = None  # bool
    airway: Characteristic | None = None  # None | "subsegmental" | "subsegmental-secretions" | "segmental-or-proximal"
    cyst: Characteristic | None = None  # None | "thin-walled" | "thick-walled" | "multilocular"


class NoNoduleAtSeed(ValueError):
    """The seed does not lie in or near a nodule."""


class SeriesError(ValueError):
    """A CT series cannot be used for analysis; the message says why."""
