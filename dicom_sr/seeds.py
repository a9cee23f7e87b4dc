"""Seed points from the objects radiologists' viewers save (DESIGN §3, §6).

Reads three kinds of seed object into :class:`~dicom_sr.findings.Seed`:

* **SR** (Enhanced, Comprehensive, Comprehensive 3D, Extensible; TID 1500 as
  OHIF/cornerstone/dcmjs and highdicom write it, or any SR with spatial
  coordinates): one seed per measurement group (125007, DCM) that holds an
  SCOORD (POINT, MULTIPOINT, POLYLINE, CIRCLE, ELLIPSE on an image) or an
  SCOORD3D (POINT, MULTIPOINT, POLYLINE, POLYGON, ELLIPSE, ELLIPSOID); an SR
  without measurement groups gives one seed per spatial coordinate item.
* **Presentation states** (grayscale / colour softcopy): one seed per graphic
  object (PIXEL or DISPLAY units) and per text object that has an anchor
  point but no graphic beside it.
* **JSON**: ``{"seeds": [{"position_lps_mm": [x, y, z], "label": "..."}]}``
  (or the bare list, or ``{"points": [[x, y, z], ...]}``).

A point seeds at itself; a line, polygon, circle, ellipse or ellipsoid at its
centre; a group with several shapes (a bidirectional's two axes) at the mean
of their centres.  An arrow seeds at its head: OHIF/cornerstone3D's
ArrowAnnotate adapter (@cornerstonejs/adapters, as bundled in OHIF 3.13)
writes the arrow as a two-point line whose *first* point is the arrowhead
(``point = arrowFirst ? points[0] : points[1]`` is written first), tracked as
``Cornerstone3DTools@^0.1.0:ArrowAnnotate``; the tail is where the label sits,
often outside the nodule.  The other cornerstone3D tools, checked against the
same adapters: Length (2-point POLYLINE: its middle), Bidirectional (two
POLYLINEs: the mean of their middles), EllipticalROI (ELLIPSE, 4 axis end
points: their mean), CircleROI (CIRCLE: centre first, then a point on the
circle: the first point), Probe (POINT), RectangleROI (closed 5-point
POLYLINE corner0, 1, 3, 2, corner0: the mean of the 4 corners),
PlanarFreehandROI / SplineROI (closed POLYLINE repeating its first vertex: the
mean of the vertices).  Image coordinates are mapped to LPS with the referenced
image's position, orientation and spacing (:mod:`dicom_sr.geometry`);
SCOORD3D are LPS already.

Lenient with what does not move a seed (units coded "1", over-long strings,
missing optional attributes), strict with what would: a 2D mark on an image
that is not in ``images`` raises :class:`SeedError` naming the image, as
does contradictory reader labelling.  Reader labels (DESIGN §6) are parsed
from tracking identifiers, text values, finding code meanings and
presentation-state text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_sr import tree
from dicom_sr.findings import ReaderAttributes, Seed
from dicom_sr.geometry import GeometryError, ImagePlane, plane_of
from dicom_sr.labels import LabelConflict, merge, parse_labels

__all__ = ["SeedError", "read_seeds", "read_exam_labels", "is_seed_object", "SR_SOP_CLASSES", "PS_SOP_CLASSES"]

SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.35": "Extensible SR",
}
PS_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.11.1": "Grayscale Softcopy Presentation State",
    "1.2.840.10008.5.1.4.1.1.11.2": "Color Softcopy Presentation State",
    "1.2.840.10008.5.1.4.1.1.11.3": "Pseudo-Color Softcopy Presentation State",
}

_MEASUREMENT_GROUP = ("125007", "DCM")
_TRACKING_ID = ("112039", "DCM")
_TRACKING_UID = ("112040", "DCM")
_FINDING = {("121071", "DCM"), ("404684003", "SCT"), ("G-C0E3", "SRT")}
_PERSON_OBSERVER = ("121008", "DCM")
_OUR_SCHEME = "99NLCSP"


class SeedError(ValueError):
    """A seed object cannot be turned into seed points; the message says why."""


# --------------------------------------------------------------------------- small helpers
_concept = tree.concept
_children = tree.children
_walk = tree.walk
_value_type = tree.value_type
_floats = tree.floats


def _frames(value: Any) -> list[int]:
    """Referenced Frame Number (IS, VM 1-n) as a list of ints."""
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes, int, float)):
        return [int(value)]
    return [int(v) for v in value]


def _centre(graphic_type: str, points: np.ndarray, where: str) -> np.ndarray:
    """Centre of a shape given as an (n, d) array of points."""
    t = graphic_type.upper()
    if len(points) == 0:
        raise SeedError(f"{where}: {t} has no points")
    if t == "CIRCLE":
        return cast(np.ndarray, points[0])
    if t in ("POLYLINE", "POLYGON") and len(points) > 2 and np.allclose(points[0], points[-1]):
        points = points[:-1]  # closed outline: do not count the first vertex twice
    if t == "ELLIPSE" and len(points) != 4:
        raise SeedError(f"{where}: ELLIPSE needs 4 points, has {len(points)}")
    if t == "ELLIPSOID" and len(points) != 6:
        raise SeedError(f"{where}: ELLIPSOID needs 6 points, has {len(points)}")
    if t not in ("POINT", "MULTIPOINT", "POLYLINE", "POLYGON", "ELLIPSE", "ELLIPSOID", "INTERPOLATED"):
        raise SeedError(f"{where}: graphic type {t!r} cannot be used as a seed")
    return cast(np.ndarray, points.mean(axis=0))


def _labels(text: str, where: str) -> ReaderAttributes:
    try:
        return parse_labels(text)
    except LabelConflict as exc:
        raise SeedError(f"{where}: {exc}") from None


def _person(value: Any) -> str | None:
    if value is None:
        return None
    name = str(value).strip()
    if not name or all(part.strip().lower() in ("", "unknown") for part in name.split("^")):
        return None
    return name


def _is_ours(ds: Dataset) -> bool:
    if str(ds.get("Manufacturer") or "").strip().lower() == "noduled":
        return True
    for item in ds.get("CodingSchemeIdentificationSequence") or []:
        if str(item.get("CodingSchemeDesignator") or "") == _OUR_SCHEME:
            return True
    return False


# --------------------------------------------------------------------------- image lookup
class _Images:
    def __init__(self, images: Mapping[str, Dataset] | None, object_uid: str, evidence: dict[str, str]):
        self.images = images
        self.object_uid = object_uid
        self.evidence = evidence

    def lps(self, sop_uid: str, frame: int | None, column: float, row: float) -> tuple[np.ndarray, ImagePlane]:
        if self.images is None or sop_uid not in self.images:
            have = "no image headers were given" if self.images is None else f"{len(self.images)} images were given"
            raise SeedError(
                f"seed object {self.object_uid} marks image {sop_uid}, which is not in the study's images "
                f"({have}); its image coordinates cannot be placed in the patient"
            )
        try:
            plane = plane_of(self.images[sop_uid], frame)
        except GeometryError as exc:
            raise SeedError(f"seed object {self.object_uid}: {exc}") from None
        return np.asarray(plane.to_lps(column, row)), plane

    def series_of(self, sop_uid: str | None) -> str | None:
        if sop_uid is None:
            return None
        if self.images is not None and sop_uid in self.images and "SeriesInstanceUID" in self.images[sop_uid]:
            return str(self.images[sop_uid].SeriesInstanceUID)
        return self.evidence.get(sop_uid)


def _evidence(ds: Dataset) -> dict[str, str]:
    """SOP Instance UID -> Series Instance UID from the SR's evidence sequences / PS references."""
    out: dict[str, str] = {}
    for seq_name in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for study in ds.get(seq_name) or []:
            for series in study.get("ReferencedSeriesSequence") or []:
                for sop in series.get("ReferencedSOPSequence") or []:
                    out[str(sop.ReferencedSOPInstanceUID)] = str(series.get("SeriesInstanceUID") or "")
    for series in ds.get("ReferencedSeriesSequence") or []:
        for sop in series.get("ReferencedImageSequence") or []:
            out[str(sop.ReferencedSOPInstanceUID)] = str(series.get("SeriesInstanceUID") or "")
    return out


# --------------------------------------------------------------------------- SR
def _is_arrow(tracking_id: str | None) -> bool:
    """A cornerstone3D ArrowAnnotate group (``Cornerstone3DTools@^0.1.0:ArrowAnnotate``; also cornerstone 4's)."""
    return bool(tracking_id) and str(tracking_id).split(":")[-1].strip().lower() == "arrowannotate"


def _scoord_centre(
    item: Dataset, images: _Images, where: str, *, arrow: bool = False
) -> tuple[np.ndarray, str | None, str | None]:
    """(seed LPS, image UID or None, series UID or None) of one SCOORD / SCOORD3D item.

    ``arrow``: the item is an arrow's line, whose first point is the arrowhead (the seed).
    """
    vt = _value_type(item)
    data = _floats(item.get("GraphicData"))
    gtype = str(item.get("GraphicType") or "")
    if arrow and gtype.upper() in ("POLYLINE", "POINT", "MULTIPOINT"):
        gtype = "POINT"
        data = data[: 3 if vt == "SCOORD3D" else 2]
    if vt == "SCOORD3D":
        if len(data) % 3:
            raise SeedError(f"{where}: SCOORD3D has {len(data)} coordinates, not a multiple of 3")
        centre = _centre(gtype, data.reshape(-1, 3), where)
        return centre, None, None
    if len(data) % 2:
        raise SeedError(f"{where}: SCOORD has {len(data)} coordinates, not a multiple of 2")
    refs = [c for c in _children(item) if _value_type(c) == "IMAGE" and c.get("ReferencedSOPSequence")]
    if not refs:
        raise SeedError(f"{where}: SCOORD does not say which image it was drawn on (no IMAGE reference)")
    sop = refs[0].ReferencedSOPSequence[0]
    sop_uid = str(sop.ReferencedSOPInstanceUID)
    frames = _frames(sop.get("ReferencedFrameNumber"))
    frame = frames[0] if frames else None
    col, row = _centre(gtype, data.reshape(-1, 2), where)
    lps, _ = images.lps(sop_uid, frame, float(col), float(row))
    return lps, sop_uid, images.series_of(sop_uid)


# the reader's own size of the nodule in a measurement group: NUM in mm of these concepts
_READER_LENGTHS = {
    ("410668003", "SCT"),
    ("G-D7FE", "SRT"),
    ("81827009", "SCT"),
    ("G-A22A", "SRT"),
    ("103339001", "SCT"),
    ("G-A185", "SRT"),
    ("103340004", "SCT"),
    ("G-A186", "SRT"),
}


def _reader_diameter_mm(group: Dataset) -> float | None:
    """Mean of the lengths/diameters/axes (in mm) the reader measured in the group (note 5b), or None."""
    values = []
    for item in _walk(group):
        if _value_type(item) != "NUM" or _concept(item) not in _READER_LENGTHS:
            continue
        for mv in item.get("MeasuredValueSequence") or []:
            units = (mv.get("MeasurementUnitsCodeSequence") or [None])[0]
            if units is not None and str(units.get("CodeValue") or "") == "mm":
                try:
                    value = float(mv.NumericValue)
                except (AttributeError, TypeError, ValueError):
                    continue
                if 0 < value < 200:
                    values.append(value)
    return float(sum(values) / len(values)) if values else None


def _group_texts(group: Dataset) -> tuple[list[str], str | None, str | None]:
    texts: list[str] = []
    tracking_id = tracking_uid = None
    for item in _walk(group):
        concept, vt = _concept(item), _value_type(item)
        if concept == _TRACKING_ID and vt == "TEXT":
            tracking_id = str(item.get("TextValue") or "")
            texts.append(tracking_id)
        elif concept == _TRACKING_UID and vt == "UIDREF":
            tracking_uid = str(item.get("UID") or "")
        elif vt == "TEXT":
            texts.append(str(item.get("TextValue") or ""))
        elif vt == "CODE" and concept in _FINDING and item.get("ConceptCodeSequence"):
            texts.append(str(item.ConceptCodeSequence[0].get("CodeMeaning") or ""))
    return texts, tracking_id, tracking_uid


def _seeds_from_sr(ds: Dataset, images: Mapping[str, Dataset] | None) -> list[Seed]:
    uid = str(ds.get("SOPInstanceUID") or "?")
    lookup = _Images(images, uid, _evidence(ds))
    reader = None
    for item in _children(ds):
        if _concept(item) == _PERSON_OBSERVER and _value_type(item) == "PNAME":
            reader = _person(item.get("PersonName"))
            break
    groups = [item for item in _walk(ds) if _value_type(item) == "CONTAINER" and _concept(item) == _MEASUREMENT_GROUP]
    units: list[tuple[Dataset | None, list[Dataset]]] = []
    group: Dataset | None
    if groups:
        for group in groups:
            scoords = [i for i in _walk(group) if _value_type(i) in ("SCOORD", "SCOORD3D")]
            if scoords:
                units.append((group, scoords))
    else:
        units = [(None, [i]) for i in _walk(ds) if _value_type(i) in ("SCOORD", "SCOORD3D")]
    evidence_series = sorted(set(lookup.evidence.values()) - {""})
    seeds: list[Seed] = []
    for n, (group, scoords) in enumerate(units, start=1):
        texts, tracking_id, tracking_uid = _group_texts(group) if group is not None else ([], None, None)
        where = f"seed object {uid}, mark {n}" + (f" ({tracking_id})" if tracking_id else "")
        centres, image_uid, series_uid = [], None, None
        for item in scoords:
            centre, img, series = _scoord_centre(item, lookup, where, arrow=_is_arrow(tracking_id))
            centres.append(centre)
            image_uid = image_uid or img
            series_uid = series_uid or series
        if series_uid is None and len(evidence_series) == 1:
            series_uid = evidence_series[0]
        label = " ".join(t for t in texts if t).strip()
        position = np.mean(centres, axis=0)
        seeds.append(
            Seed(
                position_lps_mm=(float(position[0]), float(position[1]), float(position[2])),
                series_uid=series_uid,
                source="sr",
                label=label,
                reader=reader,
                attributes=_labels(label, where),
                referenced_sop_instance_uid=image_uid,
                tracking_id=tracking_id,
                tracking_uid=tracking_uid,
                seed_object_uid=uid,
                reader_diameter_mm=_reader_diameter_mm(group) if group is not None else None,
            )
        )
    return seeds


# --------------------------------------------------------------------------- presentation states
def _applies_to(item: Dataset, ds: Dataset) -> list[tuple[str, int | None]]:
    refs = item.get("ReferencedImageSequence")
    if not refs:  # applies to every image the presentation state references
        refs = [
            img
            for series in ds.get("ReferencedSeriesSequence") or []
            for img in series.get("ReferencedImageSequence") or []
        ]
    out: list[tuple[str, int | None]] = []
    for ref in refs:
        frames = _frames(ref.get("ReferencedFrameNumber"))
        if not frames:
            out.append((str(ref.ReferencedSOPInstanceUID), None))
        else:
            out.extend((str(ref.ReferencedSOPInstanceUID), f) for f in frames)
    return out


def _displayed_area(ds: Dataset, sop_uid: str, image: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(top-left, bottom-right) displayed pixel, 1-based (column, row), for DISPLAY units."""
    for item in ds.get("DisplayedAreaSelectionSequence") or []:
        refs = item.get("ReferencedImageSequence")
        if refs and sop_uid not in {str(r.ReferencedSOPInstanceUID) for r in refs}:
            continue
        return _floats(item.DisplayedAreaTopLeftHandCorner), _floats(item.DisplayedAreaBottomRightHandCorner)
    return np.array([1.0, 1.0]), np.array([float(image.Columns), float(image.Rows)])


def _to_pixels(points: np.ndarray, units: str, ds: Dataset, sop_uid: str, images: _Images, where: str) -> np.ndarray:
    if units.upper() == "PIXEL":
        return points
    if units.upper() != "DISPLAY":
        raise SeedError(f"{where}: annotation units {units!r} are neither PIXEL nor DISPLAY")
    if str(ds.get("ImageHorizontalFlip") or "N").upper() == "Y" or int(ds.get("ImageRotation") or 0) % 360:
        raise SeedError(
            f"{where}: DISPLAY-unit annotation on a rotated or flipped presentation cannot be mapped to the image"
        )
    if images.images is None or sop_uid not in images.images:
        images.lps(sop_uid, None, 0.0, 0.0)  # raises the standard "image not in study" error
    tlhc, brhc = _displayed_area(ds, sop_uid, images.images[sop_uid])  # type: ignore[index]
    return cast(np.ndarray, (tlhc - 1.0) + points * (brhc - tlhc + 1.0))


def _seeds_from_ps(ds: Dataset, images: Mapping[str, Dataset] | None) -> list[Seed]:
    uid = str(ds.get("SOPInstanceUID") or "?")
    lookup = _Images(images, uid, _evidence(ds))
    reader = _person(ds.get("ContentCreatorName"))
    seeds: list[Seed] = []
    exam_level = ReaderAttributes()
    n = 0
    for a_index, annotation in enumerate(ds.get("GraphicAnnotationSequence") or [], start=1):
        targets = _applies_to(annotation, ds)
        graphics = list(annotation.get("GraphicObjectSequence") or [])
        texts = list(annotation.get("TextObjectSequence") or [])
        marks: list[tuple[str, str, np.ndarray, list[str]]] = []  # (type, units, points, labels)
        for g in graphics:
            data = _floats(g.get("GraphicData")).reshape(-1, 2)
            marks.append((str(g.get("GraphicType") or ""), str(g.get("GraphicAnnotationUnits") or "PIXEL"), data, []))
        for t in texts:
            text = str(t.get("UnformattedTextValue") or "")
            anchor = t.get("AnchorPoint")
            if marks:
                if anchor is not None and len(marks) > 1:
                    a = _floats(anchor)
                    nearest = int(np.argmin([np.linalg.norm(m[2].mean(axis=0) - a) for m in marks]))
                    marks[nearest][3].append(text)
                else:
                    for m in marks:
                        m[3].append(text)
            elif anchor is not None:
                marks.append(
                    (
                        "POINT",
                        str(t.get("AnchorPointAnnotationUnits") or "PIXEL"),
                        _floats(anchor).reshape(-1, 2),
                        [text],
                    )
                )
            else:  # free text on the image: only exam-level labels can apply
                attrs = _labels(text, f"presentation state {uid}, annotation {a_index}")
                exam_level = merge(
                    exam_level,
                    ReaderAttributes(
                        infection_or_inflammation=attrs.infection_or_inflammation,
                        suspicious_features=attrs.suspicious_features,
                        actionable_additional_findings=attrs.actionable_additional_findings,
                        no_nodules=attrs.no_nodules,
                    ),
                )
        if marks and not targets:
            raise SeedError(f"presentation state {uid}, annotation {a_index}: it does not reference any image")
        for gtype, units, points, labels in marks:
            for sop_uid, frame in targets:
                n += 1
                where = f"presentation state {uid}, mark {n}"
                px = _to_pixels(points, units, ds, sop_uid, lookup, where)
                col, row = _centre(gtype, px, where)
                lps, _ = lookup.lps(sop_uid, frame, float(col), float(row))
                label = " ".join(labels).strip()
                seeds.append(
                    Seed(
                        position_lps_mm=(float(lps[0]), float(lps[1]), float(lps[2])),
                        series_uid=lookup.series_of(sop_uid),
                        source="gsps",
                        label=label,
                        reader=reader,
                        attributes=_labels(label, where),
                        referenced_sop_instance_uid=sop_uid,
                        seed_object_uid=uid,
                    )
                )
    if exam_level != ReaderAttributes():
        try:
            seeds = [replace(s, attributes=merge(s.attributes, exam_level)) for s in seeds]
        except LabelConflict as exc:
            raise SeedError(f"presentation state {uid}: {exc}") from None
    return seeds


# --------------------------------------------------------------------------- JSON
def _seeds_from_json(data: Any, where: str) -> list[Seed]:
    if isinstance(data, dict):
        if "seeds" in data:
            items = data["seeds"]
        elif "points" in data:
            items = [{"position_lps_mm": p} for p in data["points"]]
        else:
            raise SeedError(f"{where}: JSON seed file needs a 'seeds' or 'points' list")
        defaults = {k: data[k] for k in ("series_uid", "reader") if k in data}
    elif isinstance(data, list):
        items, defaults = data, {}
    else:
        raise SeedError(f"{where}: JSON seeds must be an object or a list, not {type(data).__name__}")
    seeds = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            item = {"position_lps_mm": item}
        pos = item.get("position_lps_mm", item.get("lps"))
        try:
            xyz = tuple(float(v) for v in pos)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise SeedError(f"{where}: seed {n} has no position_lps_mm [x, y, z] (got {pos!r})") from None
        if len(xyz) != 3 or not all(math.isfinite(v) for v in xyz):
            raise SeedError(f"{where}: seed {n} position_lps_mm must be 3 finite numbers (got {pos!r})")
        label = str(item.get("label") or "")
        seeds.append(
            Seed(
                position_lps_mm=xyz,
                series_uid=item.get("series_uid", defaults.get("series_uid")),
                source="json",
                label=label,
                reader=item.get("reader", defaults.get("reader")),
                attributes=_labels(label, f"{where}, seed {n}"),
                tracking_id=item.get("tracking_id"),
                tracking_uid=item.get("tracking_uid"),
            )
        )
    return seeds


# --------------------------------------------------------------------------- public
def _has_marks(ds: Dataset) -> bool:
    if str(ds.get("SOPClassUID") or "") in SR_SOP_CLASSES:
        return any(_value_type(i) in ("SCOORD", "SCOORD3D") for i in _walk(ds))
    for annotation in ds.get("GraphicAnnotationSequence") or []:
        if annotation.get("GraphicObjectSequence"):
            return True
        if any(t.get("AnchorPoint") is not None for t in annotation.get("TextObjectSequence") or []):
            return True
    return False


_EXAM_FIELDS = ("infection_or_inflammation", "suspicious_features", "actionable_additional_findings", "no_nodules")


def _exam_only(attrs: ReaderAttributes) -> ReaderAttributes:
    return ReaderAttributes(**{name: getattr(attrs, name) for name in _EXAM_FIELDS})


def _all_texts(ds: Dataset) -> list[str]:
    if str(ds.get("SOPClassUID") or "") in SR_SOP_CLASSES:
        texts = []
        for item in _walk(ds):
            vt = _value_type(item)
            if vt == "TEXT":
                texts.append(str(item.get("TextValue") or ""))
            elif vt == "CODE" and _concept(item) in _FINDING and item.get("ConceptCodeSequence"):
                texts.append(str(item.ConceptCodeSequence[0].get("CodeMeaning") or ""))
        return texts
    return [
        str(t.get("UnformattedTextValue") or "")
        for annotation in ds.get("GraphicAnnotationSequence") or []
        for t in annotation.get("TextObjectSequence") or []
    ]


def read_exam_labels(source: str | Path | Dataset | dict[str, Any] | list[Any]) -> ReaderAttributes:
    """Exam-level reader labels (infection, suspicious, additional, no-nodules) anywhere in a seed
    object, including text that marks no point — "no-nodules" usually comes that way.  Only the
    four exam-level fields of the result are ever set."""
    if isinstance(source, (dict, list)):
        data = source
    elif isinstance(source, Dataset):
        data = None
        ds = source
    else:
        path = Path(source)
        head = path.read_bytes()[:256].lstrip() if path.is_file() else b""
        if path.suffix.lower() == ".json" or head[:1] in (b"{", b"["):
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = None
            ds = dcmread(path, force=True)
    if data is not None:
        items = data.get("seeds", []) if isinstance(data, dict) else data
        texts = [str(data.get("labels", "")) if isinstance(data, dict) else ""]
        texts += [str(i.get("label", "")) for i in items if isinstance(i, dict)]
        where = "JSON seeds"
    else:
        texts = _all_texts(ds)
        where = f"seed object {ds.get('SOPInstanceUID', '?')}"
    out = ReaderAttributes()
    for text in texts:
        try:
            out = merge(out, _exam_only(parse_labels(text)))
        except LabelConflict as exc:
            raise SeedError(f"{where}: {exc}") from None
    return out


def is_seed_object(ds: Dataset) -> bool:
    """True for an SR or presentation state not written by noduled that carries marks, or
    exam-level reader labels (e.g. "no-nodules") without marks."""
    sop_class = str(ds.get("SOPClassUID") or "")
    if sop_class not in SR_SOP_CLASSES and sop_class not in PS_SOP_CLASSES:
        return False
    if _is_ours(ds):
        return False
    if _has_marks(ds):
        return True
    try:
        return read_exam_labels(ds) != ReaderAttributes()
    except SeedError:
        return True  # contradictory labels: let the pipeline report the error


def read_seeds(
    source: str | Path | Dataset | dict[str, Any] | list[Any], *, images: Mapping[str, Dataset] | None = None
) -> list[Seed]:
    """Seeds from a seed object: a path (DICOM or ``.json``), a pydicom Dataset, or parsed JSON.

    ``images`` maps SOP Instance UID -> dataset (headers suffice) of the
    study's images; it is needed for marks drawn on images (SCOORD, GSPS),
    not for SCOORD3D or JSON.
    """
    if isinstance(source, (dict, list)):
        return _seeds_from_json(source, "JSON seeds")
    if isinstance(source, Dataset):
        ds = source
    else:
        path = Path(source)
        if not path.is_file():
            raise SeedError(f"seed file {path} does not exist")
        head = path.read_bytes()[:256].lstrip()
        if path.suffix.lower() == ".json" or head[:1] in (b"{", b"["):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise SeedError(f"seed file {path} is not valid JSON: {exc}") from None
            return _seeds_from_json(data, f"seed file {path}")
        try:
            ds = dcmread(path, force=True)
        except Exception as exc:  # pydicom raises many kinds
            raise SeedError(f"seed file {path} is neither JSON nor readable DICOM: {exc}") from None
    sop_class = str(ds.get("SOPClassUID") or "")
    if sop_class in SR_SOP_CLASSES:
        return _seeds_from_sr(ds, images)
    if sop_class in PS_SOP_CLASSES:
        return _seeds_from_ps(ds, images)
    raise SeedError(
        f"object {ds.get('SOPInstanceUID', '?')} of SOP class {sop_class or '(none)'} is not a seed object "
        "(expected a structured report or a softcopy presentation state)"
    )


def image_headers(datasets: Iterable[Dataset]) -> dict[str, Dataset]:
    """The ``images`` mapping for :func:`read_seeds` from a series' datasets."""
    return {str(ds.SOPInstanceUID): ds for ds in datasets}
