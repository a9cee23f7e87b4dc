"""Image-plane geometry: 2D image coordinates <-> patient LPS millimetres.

The mapping of PS3.3 C.7.6.2.1.1 (Image Plane Module), done by highdicom's spatial
transformers (``hd.spatial.ImageToReferenceTransformer`` and its inverse):
``P = S + F_row * dc * i + F_col * dr * j`` where ``S`` is Image Position
(Patient) (centre of the first pixel), ``F_row``/``F_col`` the two direction
cosines of Image Orientation (Patient), ``dr, dc`` Pixel Spacing (row
spacing, column spacing) and ``(i, j)`` the (column, row) pixel index.

SR SCOORD (PS3.3 C.18.6.1.2) and GSPS ``PIXEL`` graphic data (PS3.3
C.10.5.1.2) share one convention: ``(column, row)`` with ``0.0\\0.0`` at the
top-left corner of the top-left pixel, so the centre of pixel index
``(i, j)`` is ``(i + 0.5, j + 0.5)``.  Multi-frame (enhanced) images take
the geometry of the referenced frame from the functional groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from segmentation.types import Vec3

__all__ = ["ImagePlane", "GeometryError", "plane_of"]


class GeometryError(ValueError):
    """An image lacks the attributes that place its pixels in the patient."""


@dataclass(frozen=True)
class ImagePlane:
    """Where the pixels of one image (or frame) are in patient space."""

    sop_instance_uid: str
    sop_class_uid: str
    series_uid: str | None
    frame_of_reference_uid: str | None
    frame_number: int | None
    position_lps_mm: Vec3  # centre of pixel (0, 0)
    row_direction: Vec3  # direction of increasing column index
    column_direction: Vec3  # direction of increasing row index
    row_spacing_mm: float  # distance between rows
    column_spacing_mm: float  # distance between columns
    rows: int
    columns: int

    @property
    def normal(self) -> np.ndarray:
        return np.cross(np.asarray(self.row_direction), np.asarray(self.column_direction))

    @cached_property
    def _to_reference(self) -> hd.spatial.ImageToReferenceTransformer:
        return hd.spatial.ImageToReferenceTransformer(**self._geometry())

    @cached_property
    def _to_image(self) -> hd.spatial.ReferenceToImageTransformer:
        return hd.spatial.ReferenceToImageTransformer(**self._geometry())

    def _geometry(self) -> dict[str, Any]:
        return {
            "image_position": self.position_lps_mm,
            "image_orientation": (*self.row_direction, *self.column_direction),
            "pixel_spacing": (self.row_spacing_mm, self.column_spacing_mm),
        }

    def to_lps(self, column: float, row: float) -> Vec3:
        """LPS millimetres of SCOORD/PIXEL image coordinates ``(column, row)`` (highdicom's transformer)."""
        p = self._to_reference(np.array([[column, row]], dtype=float))[0]
        return (float(p[0]), float(p[1]), float(p[2]))

    def from_lps(self, point_lps_mm: Vec3) -> tuple[float, float, float]:
        """SCOORD ``(column, row)`` of a point projected onto this image, and its
        signed distance from the image plane (mm) (highdicom's transformer)."""
        c = self._to_image(np.asarray([point_lps_mm], dtype=float))[0]
        return float(c[0]), float(c[1]), float(c[2])


def _frame_item(ds: Dataset, frame_number: int) -> tuple[Dataset | None, Dataset | None]:
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        return shared, None
    if not 1 <= frame_number <= len(per_frame):
        raise GeometryError(
            f"image {ds.SOPInstanceUID} has {len(per_frame)} frames; frame {frame_number} was referenced"
        )
    return shared, per_frame[frame_number - 1]


def _functional(shared: Dataset | None, frame: Dataset | None, sequence: str, attribute: str) -> Any:
    for group in (frame, shared):
        if group is not None and sequence in group and attribute in group[sequence][0]:
            return group[sequence][0][attribute].value
    return None


def plane_of(ds: Dataset, frame_number: int | None = None) -> ImagePlane:
    """Geometry of an image, or of one frame of a multi-frame image."""
    uid = str(ds.get("SOPInstanceUID", "?"))
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared, frame = _frame_item(ds, frame_number or 1)
        ipp = _functional(shared, frame, "PlanePositionSequence", "ImagePositionPatient")
        iop = _functional(shared, frame, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = _functional(shared, frame, "PixelMeasuresSequence", "PixelSpacing")
    else:
        ipp = ds.get("ImagePositionPatient")
        iop = ds.get("ImageOrientationPatient")
        spacing = ds.get("PixelSpacing")
    missing = [
        name
        for name, value in (("ImagePositionPatient", ipp), ("ImageOrientationPatient", iop), ("PixelSpacing", spacing))
        if value is None or len(value) == 0
    ]
    if missing:
        raise GeometryError(f"image {uid} has no {', '.join(missing)}: its pixels cannot be placed in the patient")
    row_dir = np.asarray([float(v) for v in iop[:3]])
    col_dir = np.asarray([float(v) for v in iop[3:6]])
    return ImagePlane(
        sop_instance_uid=uid,
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        series_uid=str(ds.SeriesInstanceUID) if "SeriesInstanceUID" in ds else None,
        frame_of_reference_uid=str(ds.FrameOfReferenceUID) if "FrameOfReferenceUID" in ds else None,
        frame_number=frame_number,
        position_lps_mm=tuple(float(v) for v in ipp[:3]),  # type: ignore[arg-type]
        row_direction=tuple(row_dir / np.linalg.norm(row_dir)),
        column_direction=tuple(col_dir / np.linalg.norm(col_dir)),
        row_spacing_mm=float(spacing[0]),
        column_spacing_mm=float(spacing[1]),
        rows=int(ds.get("Rows", 0)),
        columns=int(ds.get("Columns", 0)),
    )


def nearest_slice(planes: list[ImagePlane], point_lps_mm: Vec3) -> int:
    """Index of the image whose plane is closest to a point."""
    return int(np.argmin([abs(p.from_lps(point_lps_mm)[2]) for p in planes]))
