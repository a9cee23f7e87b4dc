"""The NLCSP assessment as a Comprehensive 3D SR, TID 1500 Measurement Report.

Built with highdicom (:mod:`highdicom.sr`); this module only decides what
goes where.  Structure of the document (codes in :mod:`dicom_sr.codes`):

* root (126000, DCM) "Imaging Measurement Report" (TID 1500) with language,
  observer contexts (device: noduled, its version and a stable device UID;
  person: the reader named in the seed object, when known), procedure
  reported (CT of chest, LDCT screening) and an Image Library (TID 1600) of
  the key images;
* per nodule **one** measurement group: TID 1411 volumetric (tracking
  identifier "Nodule N" and tracking UID, finding "Nodule", finding site lung
  or lobe, referencing its SEG segment; TID 1501 when there is no segment)
  with, in this order, the long and short axis NUMs, each INFERRED FROM its
  line (SCOORD POLYLINE) on the key axial image -- the CT image through the
  nodule's centre; a long axis that does not lie in it (measured in a coronal
  or sagittal plane or on another slice) is preceded by an "axial ruler" NUM,
  its length drawn along its projection on that image --, volume, mean
  diameter, maximum axial diameter, mean attenuation, solid component,
  percent volume change, VDT and diameter change against the comparison
  study, PanCan risk; the qualitative evaluations (composition and the other
  characteristics, each with an "Observer Type" Person/Device child saying
  whether the reader or the algorithm assigned it; growth status; NLCSP
  nodule category); the label a viewer shows, as DCM 121106 Comment TEXTs
  (:func:`label_lines`).  The template is extensible; noduled adds a "Nodule
  geometry" container (centre and both axes as SCOORD3D at full precision),
  the protocol rule, the reader's seed and one "Prior comparison" container
  per prior study (study UID and date, whether it is the comparison study,
  the prior measurement and the changes) so that the next round can read
  them.

  Why one group of this shape (OHIF 3.13, cornerstone-dicom-sr
  ``_getMeasurements``): OHIF merges every group of one Tracking UID; if the
  merged content has a top-level SCOORD/SCOORD3D it draws only that first
  graphic and labels it with the first five NUMs as "meaning: 3.00 unit" --
  no text, so no "Nodule N", no category or composition.  Without a top-level
  SCOORD it reads the group the way cornerstone3D writes its own annotations
  (TID 1501/300: NUM INFERRED FROM SCOORD, label in a Comment): it draws
  every NUM's line (so both axes) and labels them, Comments first.  So no
  nodule group has a top-level SCOORD or SCOORD3D (centre and 3D axes are
  nested in the geometry container) and the lines hang under their NUMs.
  The tracking UID is unchanged: one UID per nodule, stable across screening
  rounds -- the longitudinal identity the prior comparison reads (see
  dicom_sr/README.md).  SRs of earlier versions (TID 1410 axis groups around
  the volumetric group, the centre as a top-level SCOORD3D) are still read by
  :mod:`dicom_sr.read_report`;
* an "Exam" group (own tracking UID, derived from the study): an image POINT
  at the decisive nodule's centre with the coded exam category -- the
  measurement OHIF can restore (a Probe), which keeps OHIF from calling the SR
  "not compatible with this application"; it has no NUM, so OHIF draws it as a
  bare arrow on the decisive nodule, whose label ends with the exam result
  (:func:`_exam_group` says why there);
* a document-level "Qualitative Evaluations" container (TID 1500 row 12):
  NLCSP exam category, A flag, descriptor, management, follow-up interval and
  due date, decisive nodule, screening round, reasons and notes.

Rounding happens here, because the SR is a presentation: volumes to the
whole mm³ (NLCSP), lengths and changes to 0.1 mm / 0.1 %, attenuation to
the whole HU, VDT to the whole day, PanCan risk to 0.01 %.  Coordinates are
written at full precision.

Patient and General Study modules are copied from the source CT (same Study
Instance UID); the SR has its own series; Completion COMPLETE, Verification
UNVERIFIED, Preliminary flag PRELIMINARY (nobody verified it);
Predecessor Documents Sequence when it replaces an earlier report.  UIDs and
the content date/time default to values derived from the inputs, so a re-run
on the same inputs yields the same object.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any, cast

import highdicom as hd
import numpy as np
from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ContainerContentItem,
    DateContentItem,
    NumContentItem,
    PnameContentItem,
    RelationshipTypeValues,
    Scoord3DContentItem,
    TextContentItem,
    UIDRefContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as pcodes
from pydicom.uid import generate_uid

from dicom_sr import codes
from dicom_sr.findings import ExamAssessment, NoduleFinding, PriorComparison
from dicom_sr.geometry import ImagePlane, plane_of
from dicom_sr.seg import segment_numbers, software_version, stabilise
from segmentation.types import Characteristic, NoduleMeasurement, Vec3

__all__ = ["ReportError", "build_report", "DEVICE_OBSERVER_UID", "ROUNDING"]

# stable across versions and installations: identifies noduled as an observer device
DEVICE_OBSERVER_UID = generate_uid(entropy_srcs=["noduled", "device-observer"])

# decimals used when a quantity is written (presentation rounding, see module docstring)
ROUNDING = {
    "volume_mm3": 0,
    "length_mm": 1,
    "hu": 0,
    "percent": 1,
    "vdt_days": 0,
    "pancan_pct": 2,
    "months": 0,
    "days": 0,
}

CONTAINS = RelationshipTypeValues.CONTAINS
HAS_OBS_CONTEXT = RelationshipTypeValues.HAS_OBS_CONTEXT
HAS_PROPERTIES = RelationshipTypeValues.HAS_PROPERTIES
HAS_CONCEPT_MOD = RelationshipTypeValues.HAS_CONCEPT_MOD


class ReportError(ValueError):
    """The assessment cannot be written as an SR of these CT images."""


# --------------------------------------------------------------------------- helpers
def _round(value: float, kind: str) -> float:
    decimals = ROUNDING[kind]
    out = round(float(value), decimals)
    return float(int(out)) if decimals == 0 else out


def _measurement(
    name: Any, value: Any, kind: str, unit: Any, *, derivation: Any = None, algorithm: Any = None
) -> hd.sr.Measurement:
    return hd.sr.Measurement(
        name=name, value=_round(value, kind), unit=unit, derivation=derivation, algorithm_id=algorithm
    )


def _yes_no(flag: bool) -> CodedConcept:
    return codes.YES if flag else codes.NO


def _with_origin(item: Any, characteristic: Characteristic) -> Any:
    """Attach who asserted a characteristic (Observer Type) and the algorithm's confidence."""
    children: list[Any] = [
        CodeContentItem(
            codes.OBSERVER_TYPE,
            codes.PERSON if characteristic.origin == "reader" else codes.DEVICE,
            relationship_type=HAS_OBS_CONTEXT,
        )
    ]
    if characteristic.confidence is not None:
        children.append(
            NumContentItem(
                codes.CONFIDENCE, float(characteristic.confidence), codes.NO_UNITS, relationship_type=HAS_PROPERTIES
            )
        )
    existing = list(item.ContentSequence) if "ContentSequence" in item else []
    item.ContentSequence = hd.sr.ContentSequence(existing + children)
    return item


def _qe(
    name: CodedConcept, value: CodedConcept, characteristic: Characteristic | None = None
) -> hd.sr.QualitativeEvaluation:
    qe = hd.sr.QualitativeEvaluation(name, value)
    if characteristic is not None:
        _with_origin(qe[0], characteristic)
    return qe


def _lobe_code(lobe: object) -> CodedConcept | None:
    if lobe is None:
        return None
    text = str(lobe)
    key = codes.LOBE_ALIASES.get(text.lower(), text.upper())
    return codes.LOBES.get(key)


def _content_datetime(ct: Dataset) -> dt.datetime:
    date = str(ct.get("StudyDate") or ct.get("SeriesDate") or "19000101")
    time = str(ct.get("StudyTime") or "000000").split(".")[0].ljust(6, "0")[:6]
    return dt.datetime.strptime(date + time, "%Y%m%d%H%M%S")


def _fingerprint(obj: Any) -> object:
    """A JSON-able, deterministic digest of the assessment (masks hashed)."""
    if isinstance(obj, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(obj).tobytes() + str(obj.shape).encode()).hexdigest()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _fingerprint(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _fingerprint(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_fingerprint(v) for v in obj]
    if isinstance(obj, (dt.date, dt.datetime)):
        return obj.isoformat()
    return obj


def assessment_digest(assessment: ExamAssessment) -> str:
    """SHA-256 of the assessment's content (used to derive UIDs deterministically)."""
    text = json.dumps(_fingerprint(assessment), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- key image
class _KeyImages:
    """The CT images a nodule is drawn on (and which of them go into the Image Library)."""

    def __init__(self, ct_datasets: Sequence[Dataset]):
        self.datasets = list(ct_datasets)
        self.planes = [plane_of(ds) for ds in self.datasets]
        self.used: dict[str, Dataset] = {}
        thickness = float(self.datasets[0].get("SliceThickness") or 0) or 1.0 if self.datasets else 1.0
        if len(self.planes) > 1:
            gaps = [
                abs(self.planes[i].from_lps(self.planes[i + 1].position_lps_mm)[2]) for i in range(len(self.planes) - 1)
            ]
            thickness = min(thickness, float(np.median(gaps)) or thickness)
        self.half_slice_mm = thickness / 2 + 1e-3

    def nearest(self, point: Vec3) -> tuple[Dataset, ImagePlane]:
        """The image nearest ``point`` (the key axial image of a nodule: the one through its centre)."""
        k = int(np.argmin([abs(p.from_lps(point)[2]) for p in self.planes]))
        self.used[self.planes[k].sop_instance_uid] = self.datasets[k]
        return self.datasets[k], self.planes[k]

    def on(self, plane: ImagePlane, points: Sequence[Vec3]) -> bool:
        """True when every point lies in ``plane``'s slice (within half a slice)."""
        return all(abs(plane.from_lps(cast(Vec3, tuple(p)))[2]) <= self.half_slice_mm for p in points)


def _line_on_image(name: CodedConcept, value: float, ds: Dataset, columns_rows: np.ndarray) -> hd.sr.Measurement:
    """A length NUM inferred from a 2D line on one CT image (TID 300 row INFERRED FROM TID 320).

    The line is an SCOORD POLYLINE with its source image (SELECTED FROM), the way cornerstone3D
    writes a Length; it is what OHIF 3.13 draws for a measurement group that has no top-level
    SCOORD (cornerstone-dicom-sr ``_processNonGeometricallyDefinedMeasurement``).  TID 1410/1411
    do not allow coordinates under their NUMs, so these NUMs go into a TID 1501 group.
    """
    line = hd.sr.CoordinatesForMeasurement(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.asarray(columns_rows, dtype=np.float32),
        source_image=hd.sr.SourceImageForRegion(str(ds.SOPClassUID), str(ds.SOPInstanceUID)),
    )
    return hd.sr.Measurement(name=name, value=_round(value, "length_mm"), unit=codes.MM, referenced_coordinates=[line])


def _rulers(m: NoduleMeasurement, keys: _KeyImages) -> tuple[list[hd.sr.Measurement], list[hd.sr.Measurement]]:
    """The long and short axis NUMs, each with the line OHIF draws on the key axial image.

    The key image is the CT image through the nodule's centre.  An axis that lies in it is drawn
    as measured.  A long axis that does not (measured in a coronal or sagittal plane, or on another
    axial slice) gets, first, an AXIAL_RULER NUM: its measured length along its projection onto the
    key image, centred on the projection of its middle (across the image, along the rows, when it
    runs along the slice normal); the measured long axis is then a NUM without a line in the
    nodule's TID 1411 group (its true end points are in the nodule geometry container).  A short
    axis off the key image is not drawn either.  Returns (NUMs with a line, the others).
    """
    out: list[hd.sr.Measurement] = []
    plain: list[hd.sr.Measurement] = []
    long_ends = m.long_axis_endpoints_lps_mm
    short_ends = m.short_axis_endpoints_lps_mm
    if not np.isfinite(np.asarray([m.centroid_lps_mm, *long_ends, *short_ends], float)).all():
        return [], [  # no geometry (e.g. re-written from values read back): the lengths only
            _measurement(codes.LONG_AXIS, m.long_axis_mm, "length_mm", codes.MM),
            _measurement(codes.SHORT_AXIS, m.short_axis_mm, "length_mm", codes.MM),
        ]
    ds, plane = keys.nearest(m.centroid_lps_mm)
    if keys.on(plane, long_ends):
        data = np.array([plane.from_lps(cast(Vec3, tuple(p)))[:2] for p in long_ends], float)
        out.append(_line_on_image(codes.LONG_AXIS, m.long_axis_mm, ds, data))
    else:
        ends = np.array([plane.from_lps(cast(Vec3, tuple(p)))[:2] for p in long_ends], float)
        mid = ends.mean(axis=0)
        spacing = np.array([plane.column_spacing_mm, plane.row_spacing_mm], float)  # mm per column, per row
        direction_mm = (ends[1] - ends[0]) * spacing
        if float(np.linalg.norm(direction_mm)) < 0.5:  # along the slice normal: draw it along the rows
            direction_mm = np.array([1.0, 0.0])
        half_px = direction_mm / float(np.linalg.norm(direction_mm)) * (m.long_axis_mm / 2.0) / spacing
        out.append(_line_on_image(codes.AXIAL_RULER, m.long_axis_mm, ds, np.array([mid - half_px, mid + half_px])))
        plain.append(_measurement(codes.LONG_AXIS, m.long_axis_mm, "length_mm", codes.MM))
    if keys.on(plane, short_ends):
        data = np.array([plane.from_lps(cast(Vec3, tuple(p)))[:2] for p in short_ends], float)
        out.append(_line_on_image(codes.SHORT_AXIS, m.short_axis_mm, ds, data))
    else:
        plain.append(_measurement(codes.SHORT_AXIS, m.short_axis_mm, "length_mm", codes.MM))
    return out, plain


def _geometry(m: NoduleMeasurement, frame_of_reference_uid: str) -> ContainerContentItem | None:
    """Centre and axis end points in LPS at full precision (noduled's extension; read back by read_report)."""
    items = [
        Scoord3DContentItem(
            name,
            graphic_type,
            np.asarray(points, float),
            frame_of_reference_uid,
            relationship_type=CONTAINS,
        )
        for name, graphic_type, points in (
            (codes.CENTER, hd.sr.GraphicTypeValues3D.POINT, [m.centroid_lps_mm]),
            (codes.LONG_AXIS, hd.sr.GraphicTypeValues3D.POLYLINE, m.long_axis_endpoints_lps_mm),
            (codes.SHORT_AXIS, hd.sr.GraphicTypeValues3D.POLYLINE, m.short_axis_endpoints_lps_mm),
        )
        if np.isfinite(np.asarray(points, float)).all()
    ]
    if not items:
        return None
    container = ContainerContentItem(codes.GEOMETRY, relationship_type=CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


# --------------------------------------------------------------------------- what a viewer shows
def category_text(protocol: str, category: str | None, *, additional_findings: bool = False) -> str:
    """A category as a radiologist writes it: "NLCSP category 3", "NLCSP category 2 A", "Lung-RADS category 4X".

    The A flag of NLCSP (actionable additional findings) and the S modifier of Lung-RADS are
    written after the category, as on the key images and the PDF.
    """
    name = codes.PROTOCOL_SHORT_NAMES.get(protocol, protocol)
    if not category:
        return f"no {name} category"
    suffix = (" S" if protocol == "lung-rads-2022" else " A") if additional_findings else ""
    return f"{name} category {category}{suffix}"


_STATUS_TEXT = {
    "new": "New nodule",
    "growing": "Growing",
    "slowly-growing": "Slowly growing",
    "stable": "Stable",
    "decreased": "Decreased",
}


def label_lines(finding: NoduleFinding, assessment: ExamAssessment) -> list[str]:
    """The label a viewer shows with a nodule's ruler: written as DCM 121106 Comment TEXT items.

    OHIF 3.13's SR viewport (cornerstone-dicom-sr) labels a measurement group without a top-level
    SCOORD with its Comment TEXTs first (each line "<text>:"), then "<meaning>: <value> <unit>" of its
    NUMs, five lines at most; NUMs with a NUM-level child other than their line are not shown.  So
    the Comments carry, in the words and rounding of the report: the nodule, composition and
    category; volume and mean diameter; growth against the comparison study (change and VDT) when
    there is a prior; on the decisive nodule the exam result (category and due date, then the
    management).  The ruler's own "Long axis: ... mm" line follows while there is room (on the
    decisive nodule of a follow-up round the exam's lines take it; the line is drawn all the same).  The coded items of the group stay the record;
    these lines say the same in text.
    """
    m = finding.measurement
    first = [finding.tracking_id]
    composition = finding.characterization.composition
    if composition is not None and composition.value is not None:
        first.append(str(composition.value))
    first.append(category_text(assessment.protocol, finding.category))
    lines = [", ".join(first)]
    if m is not None:
        lines.append(
            f"Volume {_round(m.volume_mm3, 'volume_mm3'):.0f} mm3, mean diameter {_round(m.mean_diameter_mm, 'length_mm'):.1f} mm"
        )
    comparison = next((c for c in finding.comparisons if c.is_comparison_study), None)
    growth = []
    if finding.status is not None and finding.status != "baseline":
        growth.append(_STATUS_TEXT.get(str(finding.status), str(finding.status)))
    if comparison is not None:
        if comparison.volume_change_pct is not None:
            growth.append(
                f"volume {_round(comparison.volume_change_pct, 'percent'):+.1f} % since {comparison.prior_study_date.isoformat()}"
            )
        if comparison.vdt_days is not None and comparison.vdt_days > 0:  # a shrinking nodule has no doubling time
            growth.append(f"VDT {_round(comparison.vdt_days, 'vdt_days'):.0f} d")
    if growth:
        lines.append(", ".join(growth))
    if finding.tracking_uid == assessment.decisive_tracking_uid and assessment.category:
        exam = "Exam " + category_text(
            assessment.protocol, assessment.category, additional_findings=assessment.additional_findings
        )
        if assessment.due_date is not None:
            exam += f", due {assessment.due_date.isoformat()}"
        lines.append(exam)
        if assessment.management:  # its own line: OHIF does not wrap, and a management text can be long
            lines.append(assessment.management)
    return lines


def _comments(lines: Sequence[str]) -> list[TextContentItem]:
    return [TextContentItem(codes.COMMENT, line, relationship_type=CONTAINS) for line in lines]


# --------------------------------------------------------------------------- nodule groups
def volume_algorithm(algorithm: hd.sr.AlgorithmIdentification, convention: str) -> hd.sr.AlgorithmIdentification:
    """The algorithm of a volume NUM, with the volume's boundary convention as its Algorithm Parameters
    (TID 4019): "volume convention: radiologists-outline" (segmentation.types).  Volumes of two conventions
    differ by a blurred-edge shell, so a reader (ours: :func:`dicom_sr.read_report.read_report`) must know
    which one a volume is in before it computes growth from it; an SR without the parameter is of the
    partial-volume convention (noduled before 2026-12-02)."""
    name, version = (str(item.TextValue) for item in list(algorithm)[:2])
    return hd.sr.AlgorithmIdentification(
        name=name, version=version, parameters=[f"{codes.VOLUME_CONVENTION_PARAMETER}{convention}"]
    )


def _measurements(m: NoduleMeasurement, finding: NoduleFinding, algorithm: Any) -> list[hd.sr.Measurement]:
    out = [
        _measurement(
            codes.VOLUME,
            m.volume_mm3,
            "volume_mm3",
            codes.MM3,
            algorithm=volume_algorithm(algorithm, m.volume_convention),
        ),
        _measurement(codes.DIAMETER, m.mean_diameter_mm, "length_mm", codes.MM, derivation=codes.MEAN),
        _measurement(codes.LONG_AXIS, m.long_axis_mm, "length_mm", codes.MM),
        _measurement(codes.SHORT_AXIS, m.short_axis_mm, "length_mm", codes.MM),
        _measurement(codes.MAX_AXIAL_DIAMETER, m.max_axial_diameter_mm, "length_mm", codes.MM),
        _measurement(codes.MEAN_ATTENUATION, m.mean_hu, "hu", codes.HU),
    ]
    if m.solid_volume_mm3 is not None:
        out.append(_measurement(codes.SOLID_COMPONENT_VOLUME, m.solid_volume_mm3, "volume_mm3", codes.MM3))
    if m.solid_mean_diameter_mm is not None:
        out.append(_measurement(codes.SOLID_COMPONENT_DIAMETER, m.solid_mean_diameter_mm, "length_mm", codes.MM))
    return out


def _comparison_measurements(finding: NoduleFinding) -> list[hd.sr.Measurement]:
    comparison = next((c for c in finding.comparisons if c.is_comparison_study), None)
    if comparison is None:
        return []
    out = []
    if comparison.volume_change_pct is not None:
        out.append(_measurement(codes.PERCENT_VOLUME_CHANGE, comparison.volume_change_pct, "percent", codes.PERCENT))
    if comparison.vdt_days is not None:
        out.append(_measurement(codes.VOLUME_DOUBLING_TIME, comparison.vdt_days, "vdt_days", codes.DAYS))
    if comparison.diameter_change_mm is not None:
        out.append(_measurement(codes.DIFFERENCE_IN_SIZE, comparison.diameter_change_mm, "length_mm", codes.MM))
    return out


def _characterization_items(
    finding: NoduleFinding,
) -> tuple[list[hd.sr.QualitativeEvaluation], list[hd.sr.Measurement]]:
    """Qualitative evaluations (and the pleural distance measurement) of the characterization."""
    c = finding.characterization
    evaluations = []
    measurements = []
    if c.composition is not None and str(c.composition.value) in codes.COMPOSITIONS:
        evaluations.append(_qe(codes.COMPOSITION, codes.COMPOSITIONS[str(c.composition.value)], c.composition))
    for name, concept in codes.CHARACTERISTIC_FLAGS.items():
        ch = getattr(c, name)
        if ch is not None and ch.value is not None:
            evaluations.append(_qe(concept, _yes_no(bool(ch.value)), ch))
    if c.airway is not None and c.airway.value in codes.AIRWAYS:
        evaluations.append(_qe(codes.AIRWAY, codes.AIRWAYS[c.airway.value], c.airway))
    if c.cyst is not None and c.cyst.value in codes.CYSTS:
        evaluations.append(_qe(codes.CYST, codes.CYSTS[c.cyst.value], c.cyst))
    if c.lobe is not None and _lobe_code(c.lobe.value) is not None:
        evaluations.append(_qe(codes.LOBE, cast(CodedConcept, _lobe_code(c.lobe.value)), c.lobe))
    if c.pleural_distance_mm is not None and c.pleural_distance_mm.value is not None:
        m = _measurement(codes.PLEURAL_DISTANCE, float(cast(float, c.pleural_distance_mm.value)), "length_mm", codes.MM)
        _with_origin(m[0], c.pleural_distance_mm)
        measurements.append(m)
    return evaluations, measurements


def _prior_container(comparison: PriorComparison, protocol: str = "nlcsp") -> ContainerContentItem:
    items: list[Any] = [
        UIDRefContentItem(codes.STUDY_INSTANCE_UID, comparison.prior_study_uid, relationship_type=CONTAINS),
        DateContentItem(codes.STUDY_DATE, comparison.prior_study_date, relationship_type=CONTAINS),
        CodeContentItem(codes.COMPARISON_STUDY, _yes_no(comparison.is_comparison_study), relationship_type=CONTAINS),
        NumContentItem(codes.DAYS_BETWEEN, float(comparison.days_between), codes.DAYS, relationship_type=CONTAINS),
    ]
    pm = comparison.prior_measurement
    if pm is not None:
        for name, value, kind, unit in (
            (codes.VOLUME, pm.volume_mm3, "volume_mm3", codes.MM3),
            (codes.DIAMETER, pm.mean_diameter_mm, "length_mm", codes.MM),
            (codes.LONG_AXIS, pm.long_axis_mm, "length_mm", codes.MM),
            (codes.SHORT_AXIS, pm.short_axis_mm, "length_mm", codes.MM),
            (codes.MAX_AXIAL_DIAMETER, pm.max_axial_diameter_mm, "length_mm", codes.MM),
            (codes.MEAN_ATTENUATION, pm.mean_hu, "hu", codes.HU),
            (codes.SOLID_COMPONENT_VOLUME, pm.solid_volume_mm3, "volume_mm3", codes.MM3),
            (codes.SOLID_COMPONENT_DIAMETER, pm.solid_mean_diameter_mm, "length_mm", codes.MM),
        ):
            if value is not None:
                items.append(NumContentItem(name, _round(value, kind), unit, relationship_type=CONTAINS))
        items.append(
            CodeContentItem(codes.MEASUREMENT_PLANE, codes.PLANES[pm.measurement_plane], relationship_type=CONTAINS)
        )
    for name, value, kind, unit in (
        (codes.PERCENT_VOLUME_CHANGE, comparison.volume_change_pct, "percent", codes.PERCENT),
        (codes.VOLUME_DOUBLING_TIME, comparison.vdt_days, "vdt_days", codes.DAYS),
        (codes.DIFFERENCE_IN_SIZE, comparison.diameter_change_mm, "length_mm", codes.MM),
    ):
        if value is not None:
            items.append(NumContentItem(name, _round(value, kind), unit, relationship_type=CONTAINS))
    if comparison.growth_status is not None:
        items.append(
            CodeContentItem(
                codes.GROWTH_STATUS, codes.GROWTH_STATUSES[comparison.growth_status], relationship_type=CONTAINS
            )
        )
    if comparison.prior_category is not None:
        _, _, prior_concept, values = codes.category_concepts(protocol)
        items.append(CodeContentItem(prior_concept, values[comparison.prior_category], relationship_type=CONTAINS))
        items.append(
            CodeContentItem(
                codes.PRIOR_CATEGORY_DERIVED, _yes_no(comparison.prior_category_derived), relationship_type=CONTAINS
            )
        )
    container = ContainerContentItem(codes.PRIOR_COMPARISON, relationship_type=CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def _extensions(finding: NoduleFinding, frame_of_reference_uid: str, protocol: str = "nlcsp") -> list[Any]:
    """noduled's additions to the (extensible) TID 1411 / 1501 group."""
    items: list[Any] = []
    m = finding.measurement
    if m is not None:  # the centre is in the nodule geometry container (_geometry)
        for reason in m.quality.reasons:
            items.append(TextContentItem(codes.QUALITY_REASON, reason[:1024], relationship_type=CONTAINS))
    if finding.rule:
        items.append(TextContentItem(codes.RULE, finding.rule, relationship_type=CONTAINS))
    if finding.error:
        items.append(TextContentItem(codes.ANALYSIS_ERROR, finding.error, relationship_type=CONTAINS))
    seed = finding.seed
    if seed is not None:
        children: list[Any] = [
            Scoord3DContentItem(
                codes.CENTER,
                hd.sr.GraphicTypeValues3D.POINT,
                np.asarray([seed.position_lps_mm], float),
                frame_of_reference_uid,
                relationship_type=CONTAINS,
            ),
            TextContentItem(codes.SEED_SOURCE, seed.source, relationship_type=CONTAINS),
        ]
        if seed.label:
            children.append(TextContentItem(codes.SEED_LABEL, seed.label, relationship_type=CONTAINS))
        if seed.reader:
            children.append(PnameContentItem(codes.PERSON_OBSERVER_NAME, seed.reader, relationship_type=CONTAINS))
        for name, uid in (
            (codes.SEED_SERIES, seed.series_uid),
            (codes.SEED_IMAGE, seed.referenced_sop_instance_uid),
            (codes.SEED_OBJECT, seed.seed_object_uid),
            (codes.SEED_TRACKING_UID, seed.tracking_uid),
        ):
            if uid:
                children.append(UIDRefContentItem(name, uid, relationship_type=CONTAINS))
        if seed.tracking_id:
            children.append(TextContentItem(codes.SEED_TRACKING_ID, seed.tracking_id, relationship_type=CONTAINS))
        seed_item = ContainerContentItem(codes.SEED_POINT, relationship_type=CONTAINS)
        seed_item.ContentSequence = hd.sr.ContentSequence(children)
        items.append(seed_item)
    for comparison in finding.comparisons:
        items.append(_prior_container(comparison, protocol))
    return items


def _nodule_groups(
    finding: NoduleFinding,
    *,
    assessment: ExamAssessment,
    seg: Dataset | None,
    seg_numbers: dict[str, int],
    keys: _KeyImages,
    frame_of_reference_uid: str,
    ct_series_uid: str,
    algorithm: hd.sr.AlgorithmIdentification,
    time_point: hd.sr.TimePointContext,
) -> list[Any]:
    """A nodule's groups: its rulers (TID 1501) and its measurements (TID 1411; see the module docstring)."""
    protocol = assessment.protocol
    tracking = hd.sr.TrackingIdentifier(uid=finding.tracking_uid, identifier=finding.tracking_id)
    lobe = _lobe_code(finding.characterization.lobe.value) if finding.characterization.lobe else None
    site = [hd.sr.FindingSite(lobe or codes.LUNG)]
    evaluations, extra_measurements = _characterization_items(finding)
    if finding.status is not None:
        evaluations.append(_qe(codes.GROWTH_STATUS, codes.GROWTH_STATUSES[finding.status]))
    if finding.category is not None:
        _, nodule_concept, _, values = codes.category_concepts(protocol)
        evaluations.append(_qe(nodule_concept, values[finding.category]))
    m = finding.measurement
    measurements: list[Any] = []
    rulers: list[hd.sr.Measurement] = []
    if m is not None:
        rulers, plain = _rulers(m, keys)
        measurements += plain
        measurements += [
            x
            for x in _measurements(m, finding, algorithm)
            if not any(codes.same(x[0].ConceptNameCodeSequence[0], c) for c in (codes.LONG_AXIS, codes.SHORT_AXIS))
        ]
        measurements += _comparison_measurements(finding)
        evaluations.append(_qe(codes.MEASUREMENT_PLANE, codes.PLANES[m.measurement_plane]))
        for flag, concept in codes.QUALITY_FLAGS.items():
            if getattr(m.quality, flag):
                evaluations.append(_qe(codes.QUALITY_FLAG, concept))
    else:
        evaluations.append(_qe(codes.NO_NODULE_AT_SEED, codes.YES))
        measurements += _comparison_measurements(finding)
    if finding.pancan_risk_pct is not None:
        measurements.append(_measurement(codes.PANCAN_RISK, finding.pancan_risk_pct, "pancan_pct", codes.PERCENT))
    measurements += extra_measurements

    common: dict[str, Any] = dict(
        tracking_identifier=tracking,
        finding_type=codes.NODULE,
        finding_category=codes.MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        finding_sites=site,
        algorithm_id=algorithm,
        time_point_context=time_point,
        measurements=measurements or None,
        qualitative_evaluations=evaluations or None,
    )
    group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations | hd.sr.MeasurementsAndQualitativeEvaluations
    if m is not None and seg is not None and finding.tracking_uid in seg_numbers:
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=str(seg.SOPClassUID),
                sop_instance_uid=str(seg.SOPInstanceUID),
                segment_number=seg_numbers[finding.tracking_uid],
                source_series=hd.sr.SourceSeriesForSegmentation(ct_series_uid),
            ),
            **common,
        )
    else:
        # no segment to reference (no SEG, or no nodule at the seed): TID 1501; a TID 1411 group
        # would need a top-level SCOORD3D region, which OHIF would take for the group's drawing
        group = hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    content = group[0].ContentSequence
    content.extend(_comments(label_lines(finding, assessment)))
    if m is not None:
        geometry = _geometry(m, frame_of_reference_uid)
        if geometry is not None:
            content.append(geometry)
    content.extend(_extensions(finding, frame_of_reference_uid, protocol))
    if not rulers:
        return [group]
    # the rulers' group first: OHIF draws the first line of the merged groups, and labels it with
    # the Comments and then the NUMs in order ("Long axis: ... mm", "Short axis: ... mm")
    ruler_group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=codes.NODULE,
        finding_category=codes.MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        finding_sites=site,
        algorithm_id=algorithm,
        time_point_context=time_point,
        measurements=rulers,
    )
    return [ruler_group, group]


def _exam_group(
    assessment: ExamAssessment, keys: _KeyImages, time_point: Any, algorithm: Any
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | None:
    """The exam result as a measurement OHIF lists: an image POINT at the decisive nodule's centre.

    Tracking identifier "Exam" (read_report skips it; the document-level container stays the
    authoritative record), its own tracking UID (derived from the study), the coded exam category.
    Its image POINT (111030, DCM) is what OHIF 3.13's SR reader recognises as a tool it can restore
    (cornerstone3D's Probe adapter registers DCM:111030-POINT-1), so the SR is not flagged "not
    compatible with this application".

    It carries no NUM, so OHIF draws it as a bare arrow on the decisive nodule: OHIF places a
    measurement's text box at the right of its graphic, and an exam label next to the arrow lay
    over the decisive nodule's own label (same point).  The exam category, management and due date
    are instead the last Comment line of the decisive nodule's label (:func:`label_lines`): read
    together with the nodule that decided them, and no label hides another.
    """
    if not assessment.category:  # not categorised (incomplete): no exam result to show
        return None
    decisive = next(
        (
            f
            for f in assessment.findings
            if f.tracking_uid == assessment.decisive_tracking_uid and f.measurement is not None
        ),
        None,
    )
    if decisive is None:
        decisive = next((f for f in assessment.findings if f.measurement is not None), None)
    if decisive is None or decisive.measurement is None:
        return None
    if not np.isfinite(np.asarray(decisive.measurement.centroid_lps_mm, float)).all():
        return None
    ds, plane = keys.nearest(decisive.measurement.centroid_lps_mm)
    column, row, _ = plane.from_lps(decisive.measurement.centroid_lps_mm)
    exam_concept, _, _, values = codes.category_concepts(assessment.protocol)
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(entropy_srcs=["noduled-exam", assessment.study_uid]), identifier="Exam"
        ),
        referenced_region=hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POINT,
            graphic_data=np.array([[column, row]], dtype=np.float32),
            source_image=hd.sr.SourceImageForRegion(str(ds.SOPClassUID), str(ds.SOPInstanceUID)),
        ),
        finding_type=codes.NODULE,
        finding_category=codes.MORPHOLOGICALLY_ABNORMAL_STRUCTURE,
        geometric_purpose=codes.CENTER,
        time_point_context=time_point,
        algorithm_id=algorithm,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(exam_concept, values[assessment.category])],
    )


# --------------------------------------------------------------------------- document level
def _document_evaluations(assessment: ExamAssessment) -> ContainerContentItem:
    exam_concept, _, _, values = codes.category_concepts(assessment.protocol)
    lung_rads = assessment.protocol == "lung-rads-2022"
    items: list[Any] = [
        TextContentItem(codes.PROTOCOL, codes.PROTOCOL_NAMES[assessment.protocol], relationship_type=CONTAINS),
        *(
            [CodeContentItem(exam_concept, values[assessment.category], relationship_type=CONTAINS)]
            if assessment.category
            else []
        ),  # "": not categorised (nothing the reader marked could be measured)
        CodeContentItem(
            codes.LUNG_RADS_S_MODIFIER if lung_rads else codes.ADDITIONAL_FINDINGS,
            _yes_no(assessment.additional_findings),
            relationship_type=CONTAINS,
        ),
        CodeContentItem(
            codes.SCREENING_ROUND, codes.SCREENING_ROUNDS[assessment.screening_round], relationship_type=CONTAINS
        ),
        DateContentItem(codes.EXAM_DATE, assessment.exam_date, relationship_type=CONTAINS),
    ]
    if assessment.protocol_version:
        items.insert(
            1, TextContentItem(codes.PROTOCOL_VERSION, assessment.protocol_version, relationship_type=CONTAINS)
        )
    if assessment.descriptor:
        items.append(TextContentItem(codes.DESCRIPTOR, assessment.descriptor, relationship_type=CONTAINS))
    if assessment.management:
        items.append(TextContentItem(codes.MANAGEMENT, assessment.management, relationship_type=CONTAINS))
    if assessment.follow_up_months is not None:
        items.append(
            NumContentItem(
                codes.FOLLOW_UP_INTERVAL, float(assessment.follow_up_months), codes.MONTHS, relationship_type=CONTAINS
            )
        )
    if assessment.due_date is not None:
        items.append(DateContentItem(codes.FOLLOW_UP_DATE, assessment.due_date, relationship_type=CONTAINS))
    if assessment.decisive_tracking_uid:
        items.append(
            UIDRefContentItem(codes.DECISIVE_NODULE, assessment.decisive_tracking_uid, relationship_type=CONTAINS)
        )
    if assessment.series_uid:
        items.append(UIDRefContentItem(codes.ANALYSED_SERIES, assessment.series_uid, relationship_type=CONTAINS))
    for reason in assessment.reasons:
        items.append(TextContentItem(codes.REASON, reason, relationship_type=CONTAINS))
    for note in assessment.notes:
        items.append(TextContentItem(codes.NOTE, note, relationship_type=CONTAINS))
    p = assessment.participant
    if p is not None:
        if p.age_years is not None:
            items.append(NumContentItem(codes.SUBJECT_AGE, float(p.age_years), codes.YEARS, relationship_type=CONTAINS))
        if p.sex is not None:
            items.append(CodeContentItem(codes.SUBJECT_SEX, codes.SEXES[p.sex], relationship_type=CONTAINS))
        for name, concept in codes.PARTICIPANT_FLAGS.items():
            items.append(CodeContentItem(concept, _yes_no(bool(getattr(p, name))), relationship_type=CONTAINS))
    container = ContainerContentItem(codes.QUALITATIVE_EVALUATIONS, relationship_type=CONTAINS)
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def _reader(assessment: ExamAssessment) -> str | None:
    for finding in assessment.findings:
        if finding.seed is not None and finding.seed.reader:
            return finding.seed.reader
    return None


def _check(assessment: ExamAssessment) -> None:
    """Reject values the SR has no code for, naming the field (before anything is built)."""

    def need(value: Any, allowed: Any, what: str) -> None:
        if value is not None and value not in allowed:
            raise ReportError(f"{what} is {value!r}; expected one of {sorted(allowed)}")

    if assessment.protocol not in codes.PROTOCOL_NAMES:
        raise ReportError(f"protocol is {assessment.protocol!r}; expected one of {sorted(codes.PROTOCOL_NAMES)}")
    categories = codes.category_concepts(assessment.protocol)[3]
    need(assessment.category or None, categories, "exam category")  # "": not categorised (incomplete)
    need(assessment.screening_round, codes.SCREENING_ROUNDS, "screening round")
    if assessment.participant is not None:
        need(assessment.participant.sex, codes.SEXES, "participant sex")
    seen = set()
    for f in assessment.findings:
        if f.tracking_uid in seen:
            raise ReportError(f"tracking UID {f.tracking_uid} is used by more than one finding")
        seen.add(f.tracking_uid)
        need(f.category, categories, f"category of {f.tracking_id}")
        need(f.status, codes.GROWTH_STATUSES, f"growth status of {f.tracking_id}")
        if f.measurement is not None:
            need(f.measurement.measurement_plane, codes.PLANES, f"measurement plane of {f.tracking_id}")
        for c in f.comparisons:
            need(c.growth_status, codes.GROWTH_STATUSES, f"growth status of {f.tracking_id} vs {c.prior_study_date}")
            need(c.prior_category, categories, f"prior category of {f.tracking_id} on {c.prior_study_date}")


# --------------------------------------------------------------------------- public
def build_report(
    assessment: ExamAssessment,
    ct_datasets: list[Dataset],
    *,
    seg: Dataset | None,
    predecessor: Dataset | None = None,
    series_number: int = 9001,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    content_datetime: dt.datetime | None = None,
    manufacturer: str = "noduled",
    institution_name: str | None = None,
    series_description: str = "noduled NLCSP nodule report",
) -> Dataset:
    """A Comprehensive 3D SR (TID 1500) of ``assessment`` on ``ct_datasets``.

    ``ct_datasets`` are the analysed CT images (volume slice k =
    ``ct_datasets[k]``); ``seg`` the SEG from
    :func:`dicom_sr.seg.build_segmentation` whose segments the volumetric
    groups reference (None: the groups reference the nodule centre instead);
    ``predecessor`` the earlier report of the same study that this one
    replaces.
    """
    if not ct_datasets:
        raise ReportError("no CT images were given; the report must reference the analysed series")
    _check(assessment)
    ct0 = ct_datasets[0]
    if str(ct0.StudyInstanceUID) != assessment.study_uid:
        raise ReportError(
            f"assessment is of study {assessment.study_uid} but the CT images belong to study {ct0.StudyInstanceUID}"
        )
    if predecessor is not None and str(predecessor.StudyInstanceUID) != assessment.study_uid:
        raise ReportError(
            f"predecessor report {predecessor.SOPInstanceUID} belongs to study {predecessor.StudyInstanceUID}, "
            f"not to {assessment.study_uid}"
        )
    frame_of_reference_uid = str(ct0.get("FrameOfReferenceUID") or "")
    if not frame_of_reference_uid:
        raise ReportError(f"CT image {ct0.SOPInstanceUID} has no Frame of Reference UID")
    version = software_version()
    algorithm = hd.sr.AlgorithmIdentification(name=codes.ALGORITHM_NAME, version=version)
    time_point = hd.sr.TimePointContext(
        time_point=assessment.exam_date.isoformat(),
        time_point_type=CodedConcept("C1442488", "UMLS", "Baseline")
        if assessment.screening_round == "baseline"
        else None,
    )
    keys = _KeyImages(ct_datasets)
    seg_numbers = segment_numbers(assessment.findings) if seg is not None else {}
    groups: list[Any] = []
    for finding in assessment.findings:
        groups += _nodule_groups(
            finding,
            assessment=assessment,
            seg=seg,
            seg_numbers=seg_numbers,
            keys=keys,
            frame_of_reference_uid=frame_of_reference_uid,
            ct_series_uid=str(ct0.SeriesInstanceUID),
            algorithm=algorithm,
            time_point=time_point,
        )
    exam = _exam_group(assessment, keys, time_point, algorithm)
    if exam is not None:
        groups.append(exam)
    if not groups:  # TID 1500 needs a measurement group: the exam itself
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(entropy_srcs=["noduled-exam", assessment.study_uid]), identifier="Exam"
                ),
                time_point_context=time_point,
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        *(lambda c: (c[0], c[3][assessment.category]))(codes.category_concepts(assessment.protocol))
                    )
                ],
            )
        )

    device = hd.sr.ObserverContext(
        observer_type=pcodes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_OBSERVER_UID,
            name="noduled",
            manufacturer_name="noduled project",
            model_name=f"noduled {version}",
        ),
    )
    reader = _reader(assessment)
    person = None
    if reader:
        person = hd.sr.ObserverContext(
            observer_type=pcodes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=reader),
        )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device),
        procedure_reported=[codes.CT_OF_CHEST, codes.LDCT_SCREENING],
        imaging_measurements=groups,
        referenced_images=list(keys.used.values()) or [ct_datasets[len(ct_datasets) // 2]],
    )
    report[0].ContentSequence.append(_document_evaluations(assessment))

    digest = assessment_digest(assessment)
    entropy = [
        assessment.study_uid,
        str(ct0.SeriesInstanceUID),
        digest,
        str(predecessor.SOPInstanceUID) if predecessor is not None else "",
        str(seg.SOPInstanceUID) if seg is not None else "",
    ]
    when = content_datetime or _content_datetime(ct0)
    evidence = list(ct_datasets) + ([seg] if seg is not None else [])
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=series_uid
        or generate_uid(entropy_srcs=["noduled-sr-series", assessment.study_uid, str(ct0.SeriesInstanceUID)]),
        series_number=series_number,
        sop_instance_uid=instance_uid or generate_uid(entropy_srcs=["noduled-sr", *entropy]),
        instance_number=int(predecessor.get("InstanceNumber") or 0) + 1 if predecessor is not None else 1,
        manufacturer=manufacturer,
        is_complete=not assessment.incomplete,  # PARTIAL: a marked nodule could not be measured
        is_final=False,
        is_verified=False,
        institution_name=institution_name,
        previous_versions=[predecessor] if predecessor is not None else None,
        performed_procedure_codes=[codes.CT_OF_CHEST],
        coding_schemes=[codes.CODING_SCHEME],
        series_description=series_description,
        manufacturer_model_name="noduled",
        software_versions=version,
        content_date=when.date(),
        content_time=when.time(),
        series_date=when.date(),
        series_time=when.time(),
    )
    return stabilise(sr, when, entropy)
