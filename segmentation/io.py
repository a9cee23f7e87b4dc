"""Load one axial CT series as a SimpleITK image in Hounsfield units (LPS).

:func:`load_series` accepts a folder, a list of files or a list of pydicom
datasets of ONE series, sorts the slices along the slice normal, applies the
modality LUT (rescale slope/intercept) and returns a float32 image whose
origin, spacing and direction map voxel indices to DICOM patient
coordinates (LPS, mm).  Series that cannot be analysed raise
:class:`segmentation.types.SeriesError` naming the reason: mixed series,
localizers mixed in, missing pixel data, non-axial orientation, gantry
tilt, missing slices or non-uniform spacing.

This is the only module of :mod:`segmentation` that reads files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from segmentation.types import SeriesError

#: slice normals within this angle (degrees) of the patient z axis count as axial
AXIAL_TOLERANCE_DEG = 10.0
#: relative tolerance on slice spacing before it is called non-uniform
SPACING_RELATIVE_TOLERANCE = 0.05
#: an in-plane shift of successive slices larger than this (mm per mm along z) is a gantry tilt
TILT_TOLERANCE = 0.01


@dataclass(frozen=True)
class LoadedSeries:
    """A CT series as a volume plus its headers in the volume's slice order."""

    image: sitk.Image  # float32 HU, LPS, (x, y, z) indexing as SimpleITK does
    datasets: tuple[Dataset, ...]  # sorted like the volume's z index; pixel data released when read from files
    series_uid: str


#: the attributes :func:`load_series` reads from every image (besides the pixel data)
_READ_PER_IMAGE = (
    "SeriesInstanceUID",
    "ImageType",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "GantryDetectorTilt",
    "PixelSpacing",
    "Rows",
    "Columns",
    "RescaleSlope",
    "RescaleIntercept",
)


def decode_ahead(ds: Dataset) -> None:
    """Decode ``ds``'s pixel data and the attributes :func:`load_series` reads, now: pydicom keeps both
    on the dataset, so a later :func:`load_series` of such datasets only copies (for images parsed while
    the rest of their study arrives).  What cannot be decoded is left for :func:`load_series` to report."""
    try:
        for keyword in _READ_PER_IMAGE:
            ds.get(keyword)
        if "PixelData" in ds:
            ds.pixel_array  # noqa: B018 (kept by pydicom until the pixel data changes)
    except Exception:
        return


def image_from_array(
    hu_zyx: np.ndarray,
    origin_lps_mm: Sequence[float],
    spacing_mm_xyz: Sequence[float],
    direction: Sequence[float] | None = None,
) -> sitk.Image:
    """Wrap a (z, y, x) HU array as a float32 SimpleITK image (identity direction by default)."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(hu_zyx, dtype=np.float32))
    image.SetOrigin(tuple(float(v) for v in origin_lps_mm))
    image.SetSpacing(tuple(float(v) for v in spacing_mm_xyz))
    if direction is not None:
        image.SetDirection(tuple(float(v) for v in direction))
    return image


def load_series(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str] | Dataset]) -> LoadedSeries:
    """Read one CT series (folder, file paths or datasets) into an HU volume.

    Files in a folder that are not DICOM (e.g. XML reads) are ignored; DICOM
    objects without pixel data (SR, presentation states) are ignored too when
    at least one image is present.
    """
    if not isinstance(sources, (str, os.PathLike)):
        sources = list(sources)
    datasets = _read_all(sources)
    images = [ds for ds in datasets if "PixelData" in ds]
    if not images:
        raise SeriesError(f"series has no pixel data ({len(datasets)} DICOM objects, none with images)")
    series_uid = _single_series_uid(images)
    _reject_localizers(images, series_uid)
    row, col, normal = _orientation(images, series_uid)
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in images])
    order = np.argsort(positions @ normal, kind="stable")
    images = [images[i] for i in order]
    positions = positions[order]
    spacing_z = _slice_spacing(positions, normal, images, series_uid)
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in images}
    if len(shapes) > 1:
        raise SeriesError(f"series {series_uid} mixes image sizes {sorted(shapes)}")
    rows, columns = shapes.pop()
    image, volume = _new_volume(len(images), rows, columns)  # filled slice by slice: no stacking, no copy
    for index, ds in enumerate(images):
        _hu_into(ds, series_uid, volume[index])
    del volume  # the view must not outlive the image that owns its memory
    pixel_spacing = [float(v) for v in images[0].PixelSpacing]  # (row spacing = y, column spacing = x)
    image.SetOrigin(tuple(float(v) for v in positions[0]))
    image.SetSpacing((pixel_spacing[1], pixel_spacing[0], spacing_z))
    image.SetDirection(tuple(float(v) for v in np.column_stack([row, col, normal]).ravel()))
    if not _given_datasets(sources):  # ours to trim: keep headers only, the volume holds the pixels
        for ds in images:
            if "PixelData" in ds:
                del ds.PixelData
    return LoadedSeries(image=image, datasets=tuple(images), series_uid=series_uid)


# ---------------------------------------------------------------- helpers


def _new_volume(slices: int, rows: int, columns: int) -> tuple[sitk.Image, np.ndarray]:
    """A float32 SimpleITK image (x = columns, y = rows, z = slices) and a writable (z, y, x) NumPy view of
    its own pixel buffer, which the caller fills and drops before the image is used.

    SimpleITK offers a read-only view (``GetArrayViewFromImage``) or a copy (``GetImageFromArray``); the
    copy costs a second 300 MB buffer and its page faults, 0.3-0.9 s of a full-size series' 1.6 s load on
    a 2-core machine.  The view here is over the same memory ``GetArrayViewFromImage`` exposes (the
    image's buffer, unique to this new image), only without the read-only flag."""
    import ctypes

    image = sitk.Image([columns, rows, slices], sitk.sitkFloat32)
    readonly = sitk.GetArrayViewFromImage(image)  # (z, y, x) over the image's own buffer
    buffer = (ctypes.c_float * readonly.size).from_address(readonly.ctypes.data)
    return image, np.ctypeslib.as_array(buffer).reshape(slices, rows, columns)


def _given_datasets(sources: Any) -> bool:
    """True when the caller passed Dataset objects (never modify those)."""
    return not isinstance(sources, (str, os.PathLike)) and any(isinstance(s, Dataset) for s in sources)


def _read_all(sources: Any) -> list[Dataset]:
    if isinstance(sources, (str, os.PathLike)):
        folder = Path(sources)
        if not folder.is_dir():
            raise SeriesError(f"{folder} is not a folder")
        paths: list[Any] = sorted(p for p in folder.rglob("*") if p.is_file())
    else:
        paths = list(sources)
    datasets: list[Dataset] = []
    for item in paths:
        if isinstance(item, Dataset):
            datasets.append(item)
            continue
        try:
            datasets.append(pydicom.dcmread(item))
        except (InvalidDicomError, IsADirectoryError):
            continue  # not DICOM (XML read, README ...)
    if not datasets:
        raise SeriesError(f"no DICOM objects found in {sources!s}")
    return datasets


def _single_series_uid(images: list[Dataset]) -> str:
    uids = sorted({str(ds.get("SeriesInstanceUID", "")) for ds in images})
    if len(uids) > 1:
        counts = ", ".join(
            f"{uid} ({sum(str(ds.get('SeriesInstanceUID', '')) == uid for ds in images)} images)" for uid in uids
        )
        raise SeriesError(f"mixed series: the images belong to {len(uids)} series: {counts}")
    return uids[0]


def _reject_localizers(images: list[Dataset], series_uid: str) -> None:
    localizers = [ds for ds in images if "LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])]]
    if localizers:
        raise SeriesError(
            f"series {series_uid} has {len(localizers)} localizer (scout) image(s) mixed in with "
            f"{len(images) - len(localizers)} axial images"
        )
    missing = [ds for ds in images if "ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds]
    if missing:
        raise SeriesError(
            f"series {series_uid} has {len(missing)} image(s) without Image Position/Orientation (Patient)"
        )


def _orientation(images: list[Dataset], series_uid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iops = np.array([[float(v) for v in ds.ImageOrientationPatient] for ds in images])
    if np.abs(iops - iops[0]).max() > 1e-3:
        raise SeriesError(
            f"series {series_uid} mixes image orientations (localizers or reformats mixed in with axial images)"
        )
    row, col = iops[0, :3], iops[0, 3:]
    row = row / np.linalg.norm(row)
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    angle_deg = float(np.degrees(np.arccos(min(1.0, abs(normal[2])))))
    if angle_deg > AXIAL_TOLERANCE_DEG:
        raise SeriesError(
            f"series {series_uid} is not axial: slice normal {tuple(np.round(normal, 3))} is "
            f"{angle_deg:.0f} degrees from the patient z axis"
        )
    tilt = float(images[0].get("GantryDetectorTilt", 0) or 0)
    if abs(tilt) > 0.01:
        raise SeriesError(f"series {series_uid} was acquired with gantry tilt {tilt:g} degrees")
    return row, col, normal


def _slice_spacing(positions: np.ndarray, normal: np.ndarray, images: list[Dataset], series_uid: str) -> float:
    if len(positions) < 2:
        raise SeriesError(f"series {series_uid} has only {len(positions)} slice: a volume needs at least 2")
    steps = np.diff(positions, axis=0)
    along = steps @ normal
    if np.any(along < 1e-3):
        dup = int(np.sum(along < 1e-3))
        raise SeriesError(f"series {series_uid} has {dup} duplicate slice position(s)")
    sideways = np.linalg.norm(steps - np.outer(along, normal), axis=1) / along
    if sideways.max() > TILT_TOLERANCE:
        angle = float(np.degrees(np.arctan(sideways.max())))
        raise SeriesError(
            f"series {series_uid} has gantry tilt: successive slices shift sideways by {angle:.1f} degrees"
        )
    nominal = float(np.median(along))
    odd = np.abs(along - nominal) > SPACING_RELATIVE_TOLERANCE * nominal
    if odd.any():
        other = float(along[odd][np.argmax(np.abs(along[odd] - nominal))])
        ratio = other / nominal
        if abs(ratio - round(ratio)) < SPACING_RELATIVE_TOLERANCE and round(ratio) >= 2:
            gaps = int(np.sum(np.round(along[odd] / nominal) - 1))
            raise SeriesError(
                f"series {series_uid} has missing slices: about {gaps} slice(s) missing "
                f"(slice spacing {nominal:.3g} mm and {other:.3g} mm)"
            )
        raise SeriesError(f"series {series_uid} has non-uniform slice spacing ({nominal:.3g} mm and {other:.3g} mm)")
    # use the overall extent for the spacing: less rounding error than one step
    return float((positions[-1] - positions[0]) @ normal / (len(positions) - 1))


def _hu_into(ds: Dataset, series_uid: str, out: np.ndarray) -> None:
    """Write the HU of one slice into ``out`` (float32, the slice's shape), in place: bit for bit
    ``pixel_array.astype(float32) * float32(slope) + float32(intercept)``, without the temporaries."""
    pixels = _decoded_pixels(ds, series_uid)
    slope = np.float32(float(ds.get("RescaleSlope", 1) or 1))
    intercept = np.float32(float(ds.get("RescaleIntercept", 0) or 0))
    # one pass per operation, each in the float32 loop (16-bit integers convert to float32 exactly);
    # x * 1 and x + 0 are x in float32 (integer pixels are never -0.0), so those passes are skipped
    if slope != 1:
        np.multiply(pixels, slope, out=out, dtype=np.float32)
        if intercept != 0:
            out += intercept
    elif intercept != 0:
        np.add(pixels, intercept, out=out, dtype=np.float32)
    else:
        out[...] = pixels


def _decoded_pixels(ds: Dataset, series_uid: str) -> np.ndarray:
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # decoder missing, truncated data ...
        raise SeriesError(
            f"series {series_uid}: pixel data of instance {ds.get('SOPInstanceUID', '?')} cannot be decoded ({exc})"
        ) from exc
    if pixels.ndim != 2:
        raise SeriesError(
            f"series {series_uid}: instance {ds.get('SOPInstanceUID', '?')} is not a single-frame image "
            f"(pixel array shape {pixels.shape})"
        )
    return pixels
