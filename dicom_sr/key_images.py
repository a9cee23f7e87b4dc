"""Key images for workstations that cannot show a TID 1500 SR: a Secondary Capture series.

Many PACS viewers show an SR as text at best.  This module renders the report as pictures
they can all display (pure: datasets and arrays in, datasets out, no I/O):

* one image per measured nodule: the axial CT image nearest its centre (the SR's key image) in a
  lung window (W 1500, L -600), with the long axis drawn as a ruler where the SR puts it (the
  long axis, or its projection on that image when it was measured coronal/sagittal) and
  "Nodule N: volume, mean diameter, NLCSP category" plus composition and growth burnt in;
* one summary image: the findings table, the exam category, management and due date.

Every image says, burnt in and in its header, that it is derived and not for diagnosis without
the source images: Image Type DERIVED\\SECONDARY, Burned In Annotation YES, a Derivation
Description, Source Image Sequence to the CT image (per-nodule images), Conversion Type WSD.
Rendering uses Pillow; the objects are highdicom ``SCImage`` with the CT's patient and study.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from pydicom.valuerep import DA, TM

from dicom_sr import codes
from dicom_sr.findings import ExamAssessment, NoduleFinding
from dicom_sr.geometry import ImagePlane, plane_of

__all__ = ["LUNG_WINDOW", "NOT_FOR_DIAGNOSIS", "KeyImageError", "RulerPixels", "build_key_images", "nodule_caption"]

LUNG_WINDOW = (-600.0, 1500.0)  # level, width (HU)
NOT_FOR_DIAGNOSIS = "DERIVED by noduled - NOT FOR DIAGNOSIS without the source images"
RULER_RGB = (255, 215, 0)
TEXT_RGB = (255, 255, 255)
WARN_RGB = (255, 80, 80)
MIN_SIZE_PX = 512  # small images are enlarged (nearest neighbour) so the text stays legible


class KeyImageError(ValueError):
    """The key images cannot be made from these inputs."""


@dataclass(frozen=True)
class RulerPixels:
    """Where a nodule's ruler was drawn: (column, row) end points in output pixel indices (centre = integer)."""

    tracking_uid: str
    start: tuple[float, float]
    end: tuple[float, float]


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, one size
        return ImageFont.load_default()


def _hu(ds: Dataset) -> np.ndarray:
    pixels = ds.pixel_array.astype(np.float32)
    return pixels * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)


def _windowed(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    lo = level - width / 2.0
    return (np.clip((hu - lo) / width, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _fmt(value: float | None, decimals: int, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.{decimals}f}" if decimals else f"{round(value):d}"
    return f"{text}{unit}"


def nodule_caption(finding: NoduleFinding, protocol: str = "nlcsp") -> tuple[str, str]:
    """The two lines burnt into a nodule's key image (presentation rounding as in the SR)."""
    m = finding.measurement
    assert m is not None
    name = codes.PROTOCOL_SHORT_NAMES.get(protocol, protocol)
    category = f"{name} category {finding.category}" if finding.category is not None else f"no {name} category"
    first = f"{finding.tracking_id}: {_fmt(m.volume_mm3, 0)} mm3, {_fmt(m.mean_diameter_mm, 1)} mm, {category}"
    parts = []
    composition = finding.characterization.composition
    if composition is not None and composition.value is not None:
        parts.append(str(composition.value))
    comparison = next((c for c in finding.comparisons if c.is_comparison_study), None)
    if comparison is not None:
        if comparison.volume_change_pct is not None:
            parts.append(
                f"volume {comparison.volume_change_pct:+.1f} % since {comparison.prior_study_date.isoformat()}"
            )
        if comparison.vdt_days is not None:
            parts.append(f"VDT {_fmt(comparison.vdt_days, 0)} d")
    if finding.status is not None:
        parts.append(str(finding.status))
    return first, "; ".join(parts)


def _orientation(plane: ImagePlane) -> tuple[str, str]:
    """Patient Orientation (0020,0020) letters of the row and column directions."""

    def letter(v: np.ndarray) -> str:
        k = int(np.argmax(np.abs(v)))
        return ("L", "P", "H")[k] if v[k] > 0 else ("R", "A", "F")[k]

    return letter(np.asarray(plane.row_direction)), letter(np.asarray(plane.column_direction))


def _v3(p: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    return float(p[0]), float(p[1]), float(p[2])


def _nearest(centre: Sequence[float], planes: list[ImagePlane]) -> int:
    return int(np.argmin([abs(p.from_lps(_v3(centre))[2]) for p in planes]))


def _ruler(finding: NoduleFinding, plane: ImagePlane) -> tuple[np.ndarray, np.ndarray]:
    """The long axis on this image (projected when measured off-plane), like the SR's ruler."""
    m = finding.measurement
    assert m is not None
    centre = np.asarray(plane.from_lps(_v3(m.centroid_lps_mm))[:2], dtype=np.float64)
    ends = np.array([plane.from_lps(_v3(p))[:2] for p in m.long_axis_endpoints_lps_mm], dtype=np.float64)
    if (
        np.all(np.isfinite(ends))
        and abs(plane.from_lps(_v3(np.mean(m.long_axis_endpoints_lps_mm, axis=0)))[2]) < 1e-3
        and float(np.linalg.norm(ends[1] - ends[0])) >= 0.5
    ):
        return ends[0], ends[1]  # measured on this image: the true end points
    half = (ends[1] - ends[0]) / 2.0 if np.all(np.isfinite(ends)) else np.zeros(2)
    if float(np.linalg.norm(half)) < 0.5:
        half = np.array([m.long_axis_mm / 2.0 / max(plane.column_spacing_mm, 1e-6), 0.0])
    return centre - half, centre + half


def _scale(ds: Dataset) -> int:
    return max(1, -(-MIN_SIZE_PX // max(int(ds.Rows), int(ds.Columns))))


def _nodule_picture(
    ds: Dataset, plane: ImagePlane, finding: NoduleFinding, hu: np.ndarray, protocol: str = "nlcsp"
) -> tuple[np.ndarray, RulerPixels]:
    s = _scale(ds)
    grey = _windowed(hu, *LUNG_WINDOW)
    image = Image.fromarray(grey).convert("RGB")
    if s > 1:
        image = image.resize((image.width * s, image.height * s), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    a, b = _ruler(finding, plane)
    # SCOORD image coordinates put pixel index i on [i, i + 1] (its centre at i + 0.5); Pillow draws
    # on pixel centres: output coordinate = scoord * s - 0.5 for an image enlarged s times
    pa, pb = (tuple(float(v * s - 0.5) for v in p) for p in (a, b))
    draw.line([pa, pb], fill=RULER_RGB, width=max(1, s))
    tick = 3 * s
    direction = np.asarray(pb) - np.asarray(pa)
    normal = np.array([-direction[1], direction[0]]) / max(float(np.linalg.norm(direction)), 1e-6) * tick
    for p in (pa, pb):
        draw.line([tuple(np.asarray(p) - normal), tuple(np.asarray(p) + normal)], fill=RULER_RGB, width=max(1, s))
    size = max(12, image.width // 40)
    font = _font(size)
    first, second = nodule_caption(finding, protocol)
    draw.text((8, 8), first, fill=TEXT_RGB, font=font)
    if second:
        draw.text((8, 8 + int(size * 1.4)), second, fill=TEXT_RGB, font=font)
    draw.text((8, image.height - int(size * 1.6)), NOT_FOR_DIAGNOSIS, fill=WARN_RGB, font=font)
    return np.asarray(image, dtype=np.uint8), RulerPixels(finding.tracking_uid, pa, pb)  # type: ignore[arg-type]


def _summary_picture(assessment: ExamAssessment, width: int = 1024) -> np.ndarray:
    size = 18
    font, bold = _font(size), _font(size + 6)
    rows: list[tuple[str, ...]] = [
        ("nodule", "composition", "volume mm3", "mean diam. mm", "vol. change %", "VDT d", "category")
    ]
    for f in assessment.findings:
        m = f.measurement
        comparison = next((c for c in f.comparisons if c.is_comparison_study), None)
        comp = f.characterization.composition
        rows.append(
            (
                f.tracking_id,
                str(comp.value) if comp is not None and comp.value is not None else "-",
                _fmt(m.volume_mm3, 0) if m is not None else "no nodule at seed",
                _fmt(m.mean_diameter_mm, 1) if m is not None else "-",
                _fmt(comparison.volume_change_pct, 1) if comparison is not None else "-",
                _fmt(comparison.vdt_days, 0) if comparison is not None else "-",
                f.category if f.category is not None else "-",
            )
        )
    columns = (0, 120, 270, 400, 550, 690, 800)
    line = int(size * 1.5)
    height = 200 + line * (len(rows) + 8)
    image = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    y = 16
    draw.text(
        (16, y),
        f"noduled {codes.PROTOCOL_SHORT_NAMES.get(assessment.protocol, '')} lung screening report - summary",
        fill=TEXT_RGB,
        font=bold,
    )
    y += int(bold.size * 1.8) if hasattr(bold, "size") else 36
    lines = [
        f"Exam {assessment.exam_date.isoformat()} ({assessment.screening_round})",
        f"Exam category: {codes.PROTOCOL_SHORT_NAMES.get(assessment.protocol, '')} Category {assessment.category or 'not assigned (incomplete: a marked nodule could not be measured)'}"
        + (" A" if assessment.additional_findings else "")
        + (f" - {assessment.descriptor}" if assessment.descriptor else ""),
        f"Management: {assessment.management or '-'}",
        f"Due date: {assessment.due_date.isoformat() if assessment.due_date else '-'}",
    ]
    for text in lines:
        draw.text((16, y), text, fill=TEXT_RGB, font=font)
        y += line
    y += line // 2
    for k, row in enumerate(rows):
        for x, cell in zip(columns, row):
            draw.text((16 + x, y), cell, fill=RULER_RGB if k == 0 else TEXT_RGB, font=font)
        y += line
    draw.text((16, height - 2 * line), NOT_FOR_DIAGNOSIS, fill=WARN_RGB, font=font)
    return np.asarray(image, dtype=np.uint8)


def _sc(
    ref: Dataset,
    pixels: np.ndarray,
    *,
    series_uid: str,
    series_number: int,
    instance_number: int,
    entropy: list[str],
    description: str,
    source: Dataset | None,
    orientation: tuple[str, str],
    pixel_spacing: tuple[float, float] | None,
    when: dt.datetime,
    manufacturer: str,
) -> Dataset:
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(entropy_srcs=["noduled-key-image", *entropy]),
        instance_number=instance_number,
        manufacturer=manufacturer,
        patient_orientation=orientation,
        pixel_spacing=pixel_spacing,  # type: ignore[arg-type]
        transfer_syntax_uid="1.2.840.10008.1.2.1",
    )
    if "Laterality" not in sc:
        sc.Laterality = ""  # Type 2C (chest: a paired-organ image of both sides): present, empty
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    sc.DerivationDescription = (
        f"{description}; rendered by noduled from the CT and its NLCSP report; {NOT_FOR_DIAGNOSIS}"
    )[:1024]
    sc.SeriesDescription = "noduled key images (derived, not for diagnosis)"
    sc.ImageComments = NOT_FOR_DIAGNOSIS
    sc.ContentDate = DA(when.strftime("%Y%m%d"))
    sc.ContentTime = TM(when.strftime("%H%M%S"))
    sc.SeriesDate, sc.SeriesTime = sc.ContentDate, sc.ContentTime
    if source is not None:
        item = Dataset()
        item.ReferencedSOPClassUID = source.SOPClassUID
        item.ReferencedSOPInstanceUID = source.SOPInstanceUID
        sc.SourceImageSequence = DicomSequence([item])
    return sc


def build_key_images(
    assessment: ExamAssessment,
    ct_datasets: Sequence[Dataset],
    *,
    volume_hu: np.ndarray | None = None,
    series_number: int = 9003,
    series_uid: str | None = None,
    content_datetime: dt.datetime | None = None,
    manufacturer: str = "noduled",
) -> tuple[list[Dataset], list[RulerPixels]]:
    """The key-image series (one SC per measured nodule, then the summary) and where each ruler is.

    ``ct_datasets`` are the analysed CT images (volume slice k = ``ct_datasets[k]``); their pixel
    data is used unless ``volume_hu`` (k, rows, columns) gives the HU volume already loaded.
    """
    if not ct_datasets:
        raise KeyImageError("no CT images were given")
    ct0 = ct_datasets[0]
    if str(ct0.StudyInstanceUID) != assessment.study_uid:
        raise KeyImageError(f"assessment is of study {assessment.study_uid}, the CT images of {ct0.StudyInstanceUID}")
    if volume_hu is not None and volume_hu.shape[0] != len(ct_datasets):
        raise KeyImageError(f"volume has {volume_hu.shape[0]} slices for {len(ct_datasets)} CT images")
    planes = [plane_of(ds) for ds in ct_datasets]
    when = content_datetime or dt.datetime.strptime(
        str(ct0.get("StudyDate") or "19000101") + str(ct0.get("StudyTime") or "000000").split(".")[0].ljust(6, "0")[:6],
        "%Y%m%d%H%M%S",
    )
    series = series_uid or generate_uid(
        entropy_srcs=["noduled-key-series", assessment.study_uid, str(ct0.SeriesInstanceUID)]
    )
    out: list[Dataset] = []
    rulers: list[RulerPixels] = []
    for finding in assessment.findings:
        m = finding.measurement
        if m is None:
            continue
        k = _nearest(m.centroid_lps_mm, planes)
        ds = ct_datasets[k]
        hu = volume_hu[k] if volume_hu is not None else _hu(ds)
        pixels, ruler = _nodule_picture(ds, planes[k], finding, hu, assessment.protocol)
        s = _scale(ds)
        out.append(
            _sc(
                ds,
                pixels,
                series_uid=series,
                series_number=series_number,
                instance_number=len(out) + 1,
                entropy=[
                    assessment.study_uid,
                    finding.tracking_uid,
                    " ".join(nodule_caption(finding, assessment.protocol)),
                ],
                description=f"{finding.tracking_id} on its key axial image, lung window W1500 L-600, long-axis ruler",
                source=ds,
                orientation=_orientation(planes[k]),
                pixel_spacing=(planes[k].row_spacing_mm / s, planes[k].column_spacing_mm / s),
                when=when,
                manufacturer=manufacturer,
            )
        )
        rulers.append(ruler)
    summary = _summary_picture(assessment)
    out.append(
        _sc(
            ct0,
            summary,
            series_uid=series,
            series_number=series_number,
            instance_number=len(out) + 1,
            entropy=[
                assessment.study_uid,
                "summary",
                assessment.category,
                assessment.management,
                str(assessment.due_date),
                *(" ".join(nodule_caption(f, assessment.protocol)) for f in assessment.findings if f.measurement),
            ],
            description="summary of the NLCSP report: findings table, exam category, management, due date",
            source=None,
            orientation=_orientation(planes[0]),
            pixel_spacing=None,
            when=when,
            manufacturer=manufacturer,
        )
    )
    return out, rulers
