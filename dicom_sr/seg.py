"""The nodule segmentation as a DICOM Segmentation (BINARY), built by highdicom.

One segment per nodule with a mask, labelled with its tracking identifier
("Nodule 1") and carrying its tracking UID, segmented property category
"Morphologically Abnormal Structure" (CID 7150) and type "Nodule"
(CID 7151), algorithm type SEMIAUTOMATIC (the reader placed the seed) with
the noduled algorithm identification.  Only the CT slices that hold part of
a mask are referenced as source images, so the object stays small.

Inputs follow DESIGN §3: a :class:`~segmentation.types.NoduleMask` is a
boolean (z, y, x) box whose voxel ``[0, 0, 0]`` is voxel
``origin_index_zyx`` of the volume, and slice ``k`` of the volume is
``ct_datasets[k]`` (sorted by position, ascending z).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import cast

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_sr import codes
from dicom_sr.findings import NoduleFinding
from segmentation.types import NoduleMask

__all__ = ["SegmentationError", "build_segmentation", "segment_numbers", "software_version"]


class SegmentationError(ValueError):
    """The masks cannot be written as a SEG of these CT images."""


def software_version() -> str:
    try:
        from importlib.metadata import version

        return version("noduled")
    except Exception:  # pragma: no cover - not installed
        return "0+unknown"


def segment_numbers(findings: Sequence[NoduleFinding]) -> dict[str, int]:
    """Segment number of each finding with a mask, by tracking UID (1-based, in order)."""
    out: dict[str, int] = {}
    for finding in findings:
        if finding.measurement is not None and finding.measurement.mask is not None:
            out[finding.tracking_uid] = len(out) + 1
    return out


def stabilise(ds: Dataset, when: dt.datetime, entropy: list[str]) -> Dataset:
    """Replace what highdicom stamps from the clock or at random with values derived
    from the inputs, so that the same inputs give byte-identical objects."""
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    for item in ds.get("ContributingEquipmentSequence") or []:
        if "ContributionDateTime" in item:
            item.ContributionDateTime = when.strftime("%Y%m%d%H%M%S")
    if "DimensionOrganizationSequence" in ds:
        old = {str(i.DimensionOrganizationUID) for i in ds.DimensionOrganizationSequence}
        new = generate_uid(entropy_srcs=["noduled-dimension-organization", *entropy])
        for item in ds.DimensionOrganizationSequence:
            item.DimensionOrganizationUID = new
        for item in ds.get("DimensionIndexSequence") or []:
            if str(item.get("DimensionOrganizationUID") or "") in old:
                item.DimensionOrganizationUID = new
    return ds


def _content_datetime(ct: Dataset) -> dt.datetime:
    date = str(ct.get("StudyDate") or ct.get("SeriesDate") or "19000101")
    time = str(ct.get("StudyTime") or "000000").split(".")[0].ljust(6, "0")[:6]
    return dt.datetime.strptime(date + time, "%Y%m%d%H%M%S")


# Recommended Display CIELab Value per segment: distinct, saturated hues a viewer draws over a
# grey CT (segment k takes entry k mod 12).  Without it viewers pick their own, and OHIF 3.13 gave
# two of our seven nodules the same colour.
DISPLAY_COLOURS_RGB: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)


def display_colour(index: int) -> hd.color.CIELabColor:
    """The recommended display colour of the segment at ``index`` (0-based)."""
    return hd.color.CIELabColor.from_rgb(*DISPLAY_COLOURS_RGB[index % len(DISPLAY_COLOURS_RGB)])


def _mask_frames(masks: list, index: dict[int, int]) -> Iterator[tuple[int, int, tuple[slice, slice], np.ndarray]]:  # type: ignore[type-arg]
    """(segment position, frame, the (rows, columns) box, the mask's slice there) of every mask slice on a frame."""
    for s, (_, _, m) in enumerate(masks):
        z0, y0, x0 = m.origin_index_zyx
        voxels = m.reported
        box = (slice(y0, y0 + voxels.shape[1]), slice(x0, x0 + voxels.shape[2]))
        for k in range(voxels.shape[0]):
            if z0 + k in index:
                yield s, index[z0 + k], box, voxels[k]


def _label_map(masks: list, index: dict[int, int], rows: int, cols: int) -> np.ndarray | None:  # type: ignore[type-arg]
    """The masks as one (frames, rows, columns) array of segment numbers 1..n (highdicom's label-map input,
    a seventh of the one-plane-per-segment array and no overlap test over it); None when two overlap."""
    pixels = np.zeros((len(index), rows, cols), dtype=np.uint8 if len(masks) < 256 else np.uint16)
    for s, frame, box, plane in _mask_frames(masks, index):
        region = pixels[frame][box]
        if np.any(region[plane]):
            return None
        region[plane] = s + 1
    return pixels


def build_segmentation(
    findings: Sequence[NoduleFinding],
    ct_datasets: list[Dataset],
    *,
    series_number: int = 9002,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    content_datetime: dt.datetime | None = None,
    manufacturer: str = "noduled",
    series_description: str = "noduled nodule segmentation",
) -> Dataset:
    """A BINARY highdicom Segmentation of every finding that has a mask: each segment holds the voxels
    whose volume the SR reports (:attr:`NoduleMask.reported`, the radiologists'-convention outline).

    UIDs not given are derived from the CT series and the tracking UIDs, so
    the same inputs give the same object; ``content_datetime`` defaults to
    the CT study date/time for the same reason.
    """
    if not ct_datasets:
        raise SegmentationError("no CT images were given to reference from the segmentation")
    numbers = segment_numbers(findings)
    if not numbers:
        raise SegmentationError("none of the findings has a mask; there is nothing to segment")
    n_slices = len(ct_datasets)
    rows, cols = int(ct_datasets[0].Rows), int(ct_datasets[0].Columns)
    masks = []
    for finding in findings:
        if finding.tracking_uid not in numbers:
            continue
        m = cast(NoduleMask, finding.measurement.mask)  # type: ignore[union-attr]
        z0, y0, x0 = m.origin_index_zyx
        dz, dy, dx = m.reported.shape
        if z0 < 0 or y0 < 0 or x0 < 0 or z0 + dz > n_slices or y0 + dy > rows or x0 + dx > cols:
            raise SegmentationError(
                f"mask of {finding.tracking_id} (origin {m.origin_index_zyx}, shape {m.reported.shape}) "
                f"lies outside the CT volume ({n_slices}, {rows}, {cols})"
            )
        masks.append((numbers[finding.tracking_uid], finding, m))
    slices = sorted(
        {m.origin_index_zyx[0] + k for _, _, m in masks for k in range(m.reported.shape[0]) if m.reported[k].any()}
    )
    if not slices:
        raise SegmentationError("all masks are empty")
    index = {k: i for i, k in enumerate(slices)}
    pixels = _label_map(masks, index, rows, cols)
    if pixels is None:  # two masks share voxels: one binary plane per segment
        pixels = np.zeros((len(slices), rows, cols, len(masks)), dtype=bool)
        for s, frame, box, plane in _mask_frames(masks, index):
            pixels[frame][box][..., s] |= plane
    algorithm = hd.AlgorithmIdentificationSequence(
        name=codes.ALGORITHM_NAME,
        family=codes.ALGORITHM_FAMILY,
        version=software_version(),
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1,
            segment_label=finding.tracking_id,
            segmented_property_category=codes.SEG_CATEGORY,
            segmented_property_type=codes.SEG_TYPE,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=finding.tracking_uid,
            tracking_id=finding.tracking_id,
            display_color=display_colour(i),
        )
        for i, (_, finding, _) in enumerate(masks)
    ]
    ref = ct_datasets[0]
    when = content_datetime or _content_datetime(ref)
    entropy = [str(ref.SeriesInstanceUID), *[f.tracking_uid for _, f, _ in masks]]
    seg = hd.seg.Segmentation(
        source_images=[ct_datasets[k] for k in slices],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_uid or generate_uid(entropy_srcs=["noduled-seg-series", *entropy]),
        series_number=series_number,
        sop_instance_uid=instance_uid or generate_uid(entropy_srcs=["noduled-seg", *entropy]),
        instance_number=1,
        manufacturer=manufacturer,
        manufacturer_model_name="noduled",
        software_versions=software_version(),
        device_serial_number="1",
        series_description=series_description,
        content_label="NODULES",
        content_description="Lung nodules segmented from reader seeds",
        content_date=when.date(),
        content_time=when.time(),
        series_date=when.date(),
        series_time=when.time(),
        omit_empty_frames=True,
    )
    return stabilise(seg, when, entropy)
