"""Reading TID 1500 reports back: our own into findings, anyone's into measurements.

:func:`read_report` is the inverse of :func:`dicom_sr.report.build_report`:
the longitudinal record and the prior comparison of the next screening
round depend on it.  From a noduled SR it recovers the
:class:`~dicom_sr.findings.ExamAssessment` with every
:class:`~dicom_sr.findings.NoduleFinding` (tracking identifier and UID,
measurements as written — i.e. rounded for presentation —, axis end points
mapped back to LPS through the Image Library, characterization with its
origin, prior comparisons, growth status, categories, PanCan risk, dates).
Masks and HU percentiles are not in the SR and come back empty; the
participant's ``sources`` are not recorded either.

From any TID 1500 SR (ours or third-party, e.g. OHIF/dcmjs, highdicom) it
also returns every measurement group as a :class:`ReportedGroup` — tracking
identifier and UID, finding, volume and diameters in mm — which the prior
comparison can use as prior measurements when no noduled report exists.
Reading is lenient (plain pydicom, concepts compared by code value and
scheme), so real-world quirks do not stop it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_sr import codes, tree
from dicom_sr.findings import ExamAssessment, NoduleFinding, Participant, PriorComparison, Seed
from dicom_sr.geometry import ImagePlane
from dicom_sr.labels import LabelConflict, parse_labels
from segmentation.types import (
    PARTIAL_VOLUME,
    Characteristic,
    Characterization,
    MeasurementQuality,
    NoduleMeasurement,
)

__all__ = ["ReportError", "ReportContents", "ReportedGroup", "read_report"]

K = codes.key  # CodedConcept -> (value, scheme)


class ReportError(ValueError):
    """The object is not a TID 1500 measurement report."""


@dataclass(frozen=True)
class ReportedGroup:
    """One measurement group of any TID 1500 SR, in millimetres."""

    tracking_id: str | None
    tracking_uid: str | None
    finding: str | None  # code meaning of the Finding, when coded
    template: str  # "1411" volumetric, "1410" planar, "1501" other
    volume_mm3: float | None = None
    diameter_mm: float | None = None  # a "Diameter" measurement (mean diameter for noduled)
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    length_mm: float | None = None  # a plain line length (OHIF Length tool)
    measurements: tuple[tuple[str, float, str], ...] = ()  # (concept meaning, value, unit) of every NUM


@dataclass(frozen=True)
class ReportContents:
    """What a TID 1500 SR says."""

    sop_instance_uid: str
    study_uid: str
    study_date: dt.date | None
    series_uid: str
    content_date: dt.date | None
    is_noduled: bool  # written by noduled (and therefore ``assessment`` is filled)
    assessment: ExamAssessment | None
    groups: tuple[ReportedGroup, ...]
    person_observer: str | None = None
    device_observer_uid: str | None = None
    predecessor_uids: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    title: str = ""
    coding_schemes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def findings(self) -> tuple[NoduleFinding, ...]:
        return self.assessment.findings if self.assessment is not None else ()


# --------------------------------------------------------------------------- helpers
_MM_UNITS = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
_MM3_UNITS = {"mm3": 1.0, "cm3": 1000.0, "ml": 1000.0, "mL": 1000.0}


def _length_mm(value: float, unit: str) -> float | None:
    return value * _MM_UNITS[unit] if unit in _MM_UNITS else None


def _volume_mm3(value: float, unit: str) -> float | None:
    return value * _MM3_UNITS[unit] if unit in _MM3_UNITS else None


def _date_of(ds: Dataset, name: str) -> dt.date | None:
    text = str(ds.get(name) or "")
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _library(root: Dataset) -> dict[str, ImagePlane]:
    """Image geometry from the Image Library (TID 1600/1602 descriptors)."""
    out: dict[str, ImagePlane] = {}
    library = next((i for i in tree.walk(root) if tree.concept(i) == K(codes.IMAGE_LIBRARY)), None)
    if library is None:
        return out
    descriptor_codes = {
        ("110901", "DCM"): "px",
        ("110902", "DCM"): "py",
        ("110903", "DCM"): "pz",
        ("110904", "DCM"): "rx",
        ("110905", "DCM"): "ry",
        ("110906", "DCM"): "rz",
        ("110907", "DCM"): "cx",
        ("110908", "DCM"): "cy",
        ("110909", "DCM"): "cz",
        ("111026", "DCM"): "hs",
        ("111066", "DCM"): "vs",
        ("110910", "DCM"): "rows",
        ("110911", "DCM"): "cols",
    }

    def collect(item: Dataset, into: dict[str, Any]) -> None:
        for child in tree.children(item):
            name = descriptor_codes.get(tree.concept(child))
            if name and tree.value_type(child) == "NUM":
                v = tree.num(child)
                if v is not None:
                    into[name] = v[0]
            if tree.concept(child) == ("112227", "DCM"):
                into["for"] = tree.uid(child)

    for group in tree.walk(library):
        if tree.value_type(group) != "CONTAINER":
            continue
        shared: dict[str, Any] = {}
        collect(group, shared)
        for image in tree.children(group):
            if tree.value_type(image) != "IMAGE" or not image.get("ReferencedSOPSequence"):
                continue
            values = dict(shared)
            collect(image, values)
            if not all(k in values for k in ("px", "py", "pz", "rx", "ry", "rz", "cx", "cy", "cz", "hs", "vs")):
                continue
            sop = image.ReferencedSOPSequence[0]
            out[str(sop.ReferencedSOPInstanceUID)] = ImagePlane(
                sop_instance_uid=str(sop.ReferencedSOPInstanceUID),
                sop_class_uid=str(sop.get("ReferencedSOPClassUID") or ""),
                series_uid=None,
                frame_of_reference_uid=values.get("for"),
                frame_number=None,
                position_lps_mm=(values["px"], values["py"], values["pz"]),
                row_direction=(values["rx"], values["ry"], values["rz"]),
                column_direction=(values["cx"], values["cy"], values["cz"]),
                row_spacing_mm=values["vs"],
                column_spacing_mm=values["hs"],
                rows=int(values.get("rows", 0)),
                columns=int(values.get("cols", 0)),
            )
    return out


def _region_points(group: Dataset, library: dict[str, ImagePlane]) -> list[tuple[float, float, float]] | None:
    """LPS points of the group's Image Region (SCOORD via the library, or SCOORD3D)."""
    region = tree.first(group, K(codes.IMAGE_REGION))
    if region is None:
        return None
    data = tree.floats(region.get("GraphicData"))
    if tree.value_type(region) == "SCOORD3D":
        return [tuple(float(v) for v in p) for p in data.reshape(-1, 3)]  # type: ignore[misc]
    refs = [c for c in tree.children(region) if tree.value_type(c) == "IMAGE" and c.get("ReferencedSOPSequence")]
    if not refs:
        return None
    plane = library.get(str(refs[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID))
    if plane is None:
        return None
    return [plane.to_lps(float(c), float(r)) for c, r in data.reshape(-1, 2)]


def _group_identity(group: Dataset) -> tuple[str | None, str | None]:
    tid = tree.first(group, K(codes.TRACKING_IDENTIFIER), "TEXT")
    tuid = tree.first(group, K(codes.TRACKING_UID), "UIDREF")
    return (tree.text(tid) if tid is not None else None, tree.uid(tuid) if tuid is not None else None)


def _generic_group(group: Dataset) -> ReportedGroup:
    tracking_id, tracking_uid = _group_identity(group)
    finding_item = tree.first(group, K(codes.FINDING), "CODE")
    template = str(group.get("ContentTemplateSequence", [Dataset()])[0].get("TemplateIdentifier") or "")
    has_region = tree.first(group, K(codes.IMAGE_REGION)) is not None
    has_segment = any(tree.concept(c) == K(codes.REFERENCED_SEGMENT) for c in tree.children(group))
    if template not in ("1410", "1411", "1501"):
        template = "1411" if has_segment else ("1410" if has_region else "1501")
    values: dict[str, float | None] = {}
    listing = []
    for item in tree.children(group):
        if tree.value_type(item) != "NUM":
            continue
        v = tree.num(item)
        if v is None:
            continue
        listing.append((tree.meaning(item), v[0], v[1]))
        c = tree.concept(item)
        derivation = next(
            (tree.code_value(x) for x in tree.children(item) if tree.concept(x) == ("121401", "DCM")), None
        )
        if c == K(codes.VOLUME):
            values.setdefault("volume", _volume_mm3(*v))
        elif c == K(codes.DIAMETER) and derivation in (None, K(codes.MEAN)):
            values.setdefault("diameter", _length_mm(*v))
        elif c in (K(codes.LONG_AXIS), ("G-A185", "SRT"), ("131187009", "SCT")):
            values.setdefault("long", _length_mm(*v))
        elif c in (K(codes.SHORT_AXIS), ("G-A186", "SRT"), ("131188004", "SCT")):
            values.setdefault("short", _length_mm(*v))
        elif c in (("410668003", "SCT"), ("G-D7FE", "SRT"), ("121227", "DCM")):
            values.setdefault("length", _length_mm(*v))
    return ReportedGroup(
        tracking_id=tracking_id,
        tracking_uid=tracking_uid,
        finding=tree.code_value_meaning(finding_item) if finding_item is not None else None,
        template=template,
        volume_mm3=values.get("volume"),
        diameter_mm=values.get("diameter"),
        long_axis_mm=values.get("long"),
        short_axis_mm=values.get("short"),
        length_mm=values.get("length"),
        measurements=tuple(listing),
    )


# --------------------------------------------------------------------------- noduled groups
def _inverse(mapping: dict[Any, Any]) -> dict[Any, Any]:
    return {K(v): k for k, v in mapping.items()}


_COMPOSITIONS = _inverse(codes.COMPOSITIONS)
_AIRWAYS = _inverse(codes.AIRWAYS)
_CYSTS = _inverse(codes.CYSTS)
_LOBES = _inverse(codes.LOBES)
_GROWTH = _inverse(codes.GROWTH_STATUSES)
_CATEGORIES = {**_inverse(codes.CATEGORIES), **_inverse(codes.LUNG_RADS_CATEGORIES)}  # code values differ
_PLANES = _inverse(codes.PLANES)
_QUALITY = _inverse(codes.QUALITY_FLAGS)
_FLAGS = {K(v): k for k, v in codes.CHARACTERISTIC_FLAGS.items()}
_ROUNDS = _inverse(codes.SCREENING_ROUNDS)
_SEXES = _inverse(codes.SEXES)


def _origin(item: Dataset) -> Characteristic | None:
    """Characteristic wrapper parts (origin, confidence) from an item's children."""
    origin, confidence = "algorithm", None
    for child in tree.children(item):
        if tree.concept(child) == K(codes.OBSERVER_TYPE):
            origin = "reader" if tree.code_value(child) == K(codes.PERSON) else "algorithm"
        elif tree.concept(child) == K(codes.CONFIDENCE):
            v = tree.num(child)
            confidence = v[0] if v else None
    return Characteristic(None, origin, confidence)  # type: ignore[arg-type]


def _with(value: Any, item: Dataset) -> Characteristic:
    o = _origin(item)
    return Characteristic(value, o.origin, o.confidence)  # type: ignore[union-attr]


def _nums(group: Dataset) -> dict[tuple[str, str, tuple[str, str] | None], float]:
    out = {}
    for item in tree.children(group):
        if tree.value_type(item) != "NUM":
            continue
        v = tree.num(item)
        if v is None:
            continue
        derivation = next(
            (tree.code_value(x) for x in tree.children(item) if tree.concept(x) == ("121401", "DCM")), None
        )
        out[(*tree.concept(item), derivation)] = v[0]
    return out


def _volume_convention(group: Dataset) -> str:
    """The boundary convention of the group's volume NUM, from its TID 4019 Algorithm Parameters
    (:func:`dicom_sr.report.volume_algorithm`); none named: the partial-volume convention of earlier SRs."""
    for item in tree.children(group):
        if tree.value_type(item) == "NUM" and tree.concept(item) == K(codes.VOLUME):
            for x in tree.children(item):
                text = tree.text(x) if tree.concept(x) == K(codes.ALGORITHM_PARAMETERS) else ""
                if text.startswith(codes.VOLUME_CONVENTION_PARAMETER):
                    return text[len(codes.VOLUME_CONVENTION_PARAMETER) :].strip()
    return PARTIAL_VOLUME


def _get(nums: dict[Any, float], concept: Any, derivation: Any = None) -> float | None:
    return nums.get((*K(concept), K(derivation) if derivation is not None else None))


def _prior(container: Dataset) -> PriorComparison:
    study_uid = study_date = None
    is_comparison = derived = False
    status = category = None
    plane = "axial"
    for item in tree.children(container):
        c = tree.concept(item)
        if c == K(codes.STUDY_INSTANCE_UID):
            study_uid = tree.uid(item)
        elif c == K(codes.STUDY_DATE):
            study_date = tree.date(item)
        elif c == K(codes.COMPARISON_STUDY):
            is_comparison = tree.code_value(item) == K(codes.YES)
        elif c == K(codes.PRIOR_CATEGORY_DERIVED):
            derived = tree.code_value(item) == K(codes.YES)
        elif c == K(codes.GROWTH_STATUS):
            status = _GROWTH.get(tree.code_value(item))
        elif c in (K(codes.PRIOR_CATEGORY), K(codes.LUNG_RADS_PRIOR_CATEGORY)):
            category = _CATEGORIES.get(tree.code_value(item))
        elif c == K(codes.MEASUREMENT_PLANE):
            plane = _PLANES.get(tree.code_value(item), "axial")
    nums = _nums(container)
    prior_m = None
    if _get(nums, codes.VOLUME) is not None:
        nan3 = (float("nan"),) * 3
        prior_m = NoduleMeasurement(
            volume_mm3=_get(nums, codes.VOLUME),  # type: ignore[arg-type]
            mean_diameter_mm=_get(nums, codes.DIAMETER),  # type: ignore[arg-type]
            long_axis_mm=_get(nums, codes.LONG_AXIS),  # type: ignore[arg-type]
            short_axis_mm=_get(nums, codes.SHORT_AXIS),  # type: ignore[arg-type]
            measurement_plane=plane,  # type: ignore[arg-type]
            long_axis_endpoints_lps_mm=(nan3, nan3),
            short_axis_endpoints_lps_mm=(nan3, nan3),
            max_axial_diameter_mm=_get(nums, codes.MAX_AXIAL_DIAMETER),  # type: ignore[arg-type]
            mean_hu=_get(nums, codes.MEAN_ATTENUATION),  # type: ignore[arg-type]
            centroid_lps_mm=nan3,
            solid_volume_mm3=_get(nums, codes.SOLID_COMPONENT_VOLUME),
            solid_mean_diameter_mm=_get(nums, codes.SOLID_COMPONENT_DIAMETER),
        )
    days = _get(nums, codes.DAYS_BETWEEN)
    return PriorComparison(
        prior_study_uid=study_uid or "",
        prior_study_date=study_date,  # type: ignore[arg-type]
        prior_measurement=prior_m,
        days_between=int(days) if days is not None else 0,
        volume_change_pct=_get(nums, codes.PERCENT_VOLUME_CHANGE),
        vdt_days=_get(nums, codes.VOLUME_DOUBLING_TIME),
        diameter_change_mm=_get(nums, codes.DIFFERENCE_IN_SIZE),
        growth_status=status,
        prior_category=category,
        prior_category_derived=derived,
        is_comparison_study=is_comparison,
    )


def _seed(container: Dataset) -> Seed | None:
    point = tree.first(container, K(codes.CENTER), "SCOORD3D")
    if point is None:
        return None
    xyz = tree.floats(point.get("GraphicData"))[:3]
    values: dict[str, str] = {}
    for item in tree.children(container):
        c = tree.concept(item)
        for name, concept in (
            ("source", codes.SEED_SOURCE),
            ("label", codes.SEED_LABEL),
            ("tracking_id", codes.SEED_TRACKING_ID),
        ):
            if c == K(concept):
                values[name] = tree.text(item)
        for name, concept in (
            ("series_uid", codes.SEED_SERIES),
            ("image", codes.SEED_IMAGE),
            ("object", codes.SEED_OBJECT),
            ("tracking_uid", codes.SEED_TRACKING_UID),
        ):
            if c == K(concept):
                values[name] = tree.uid(item)
        if c == K(codes.PERSON_OBSERVER_NAME):
            values["reader"] = str(item.get("PersonName") or "")
    label = values.get("label", "")
    try:
        attributes = parse_labels(label)
    except LabelConflict:
        attributes = parse_labels("")
    source = values.get("source", "sr")
    return Seed(
        position_lps_mm=(float(xyz[0]), float(xyz[1]), float(xyz[2])),
        series_uid=values.get("series_uid"),
        source=source if source in ("sr", "gsps", "json") else "sr",  # type: ignore[arg-type]
        label=label,
        reader=values.get("reader"),
        attributes=attributes,
        referenced_sop_instance_uid=values.get("image"),
        tracking_id=values.get("tracking_id"),
        tracking_uid=values.get("tracking_uid"),
        seed_object_uid=values.get("object"),
    )


def _finding(
    tracking_id: str, tracking_uid: str, groups: list[Dataset], library: dict[str, ImagePlane]
) -> NoduleFinding:
    # The nodule's groups share its tracking UID.  Current layout (dicom_sr.report): a TID 1501 group
    # of the ruler NUMs (long / short axis, each INFERRED FROM its line on the key image), then the
    # TID 1411 group with everything else, the 3D centre and axes in its "Nodule geometry" container.
    # Earlier layout: TID 1410 axis groups (geometric purpose Long / Short axis, SCOORD or SCOORD3D
    # region) around the volumetric group, which held the centre as a top-level SCOORD3D.
    plain = [g for g in groups if tree.first(g, K(codes.GEOMETRIC_PURPOSE)) is None]
    main = plain[-1] if plain else groups[0]
    axes: dict[str, list[Any]] = {}
    centroid = None
    for g in groups:
        purpose = tree.first(g, K(codes.GEOMETRIC_PURPOSE), "CODE")
        if purpose is not None:
            points = _region_points(g, library)
            which = {K(codes.LONG_AXIS): "long", K(codes.SHORT_AXIS): "short"}.get(cast(Any, tree.code_value(purpose)))
            if which and points is not None and len(points) >= 2:
                axes[which] = points[:2]
    geometry = tree.first(main, K(codes.GEOMETRY), "CONTAINER")
    for item in tree.children(geometry) if geometry is not None else []:
        if tree.value_type(item) != "SCOORD3D":
            continue
        xyz = tree.floats(item.get("GraphicData")).reshape(-1, 3)
        points3 = [(float(p[0]), float(p[1]), float(p[2])) for p in xyz]
        if tree.concept(item) == K(codes.CENTER) and points3:
            centroid = points3[0]
        elif tree.concept(item) == K(codes.LONG_AXIS) and len(points3) >= 2:
            axes["long"] = points3[:2]
        elif tree.concept(item) == K(codes.SHORT_AXIS) and len(points3) >= 2:
            axes["short"] = points3[:2]
    nums = _nums(main)
    for g in groups:  # the axis lengths are in the rulers' group
        if g is not main:
            for key, number in _nums(g).items():
                nums.setdefault(key, number)
    ch: dict[str, Characteristic] = {}
    status = category = None
    plane = "axial"
    quality: dict[str, bool] = {}
    reasons: list[str] = []
    comparisons = []
    rule = error = None
    seed = None
    no_nodule = False
    for item in tree.children(main):
        c, vt = tree.concept(item), tree.value_type(item)
        value = tree.code_value(item) if vt == "CODE" else None
        if c == K(codes.COMPOSITION):
            ch["composition"] = _with(_COMPOSITIONS.get(value), item)
        elif c in _FLAGS:
            ch[_FLAGS[c]] = _with(value == K(codes.YES), item)
        elif c == K(codes.AIRWAY):
            ch["airway"] = _with(_AIRWAYS.get(value), item)
        elif c == K(codes.CYST):
            ch["cyst"] = _with(_CYSTS.get(value), item)
        elif c == K(codes.LOBE):
            ch["lobe"] = _with(_LOBES.get(value), item)
        elif c == K(codes.PLEURAL_DISTANCE) and vt == "NUM":
            v = tree.num(item)
            if v is not None:
                ch["pleural_distance_mm"] = _with(v[0], item)
        elif c == K(codes.GROWTH_STATUS):
            status = _GROWTH.get(value)
        elif c in (K(codes.NODULE_CATEGORY), K(codes.LUNG_RADS_NODULE_CATEGORY)):
            category = _CATEGORIES.get(value)
        elif c == K(codes.MEASUREMENT_PLANE):
            plane = _PLANES.get(value, "axial")
        elif c == K(codes.QUALITY_FLAG) and value in _QUALITY:
            quality[_QUALITY[value]] = True
        elif c == K(codes.QUALITY_REASON):
            reasons.append(tree.text(item))
        elif c == K(codes.RULE):
            rule = tree.text(item)
        elif c == K(codes.ANALYSIS_ERROR):
            error = tree.text(item)
        elif c == K(codes.NO_NODULE_AT_SEED):
            no_nodule = True
        elif c == K(codes.CENTER) and vt == "SCOORD3D" and centroid is None:  # earlier layout
            xyz = tree.floats(item.get("GraphicData"))[:3]
            centroid = (float(xyz[0]), float(xyz[1]), float(xyz[2]))
        elif c == K(codes.SEED_POINT) and vt == "CONTAINER":
            seed = _seed(item)
        elif c == K(codes.PRIOR_COMPARISON) and vt == "CONTAINER":
            comparisons.append(_prior(item))
    measurement = None
    # the prior time points of a comparison were measured by the same version as this one
    convention = _volume_convention(main)
    comparisons = [
        dataclasses.replace(c, prior_measurement=dataclasses.replace(c.prior_measurement, volume_convention=convention))
        if c.prior_measurement is not None
        else c
        for c in comparisons
    ]
    volume = _get(nums, codes.VOLUME)
    if volume is not None and not no_nodule:
        nan3 = (float("nan"),) * 3
        measurement = NoduleMeasurement(
            volume_mm3=volume,
            mean_diameter_mm=_get(nums, codes.DIAMETER, codes.MEAN),  # type: ignore[arg-type]
            long_axis_mm=_get(nums, codes.LONG_AXIS),  # type: ignore[arg-type]
            short_axis_mm=_get(nums, codes.SHORT_AXIS),  # type: ignore[arg-type]
            measurement_plane=plane,  # type: ignore[arg-type]
            long_axis_endpoints_lps_mm=tuple(axes.get("long", (nan3, nan3))),
            short_axis_endpoints_lps_mm=tuple(axes.get("short", (nan3, nan3))),
            max_axial_diameter_mm=_get(nums, codes.MAX_AXIAL_DIAMETER),  # type: ignore[arg-type]
            mean_hu=_get(nums, codes.MEAN_ATTENUATION),  # type: ignore[arg-type]
            centroid_lps_mm=centroid or nan3,
            solid_volume_mm3=_get(nums, codes.SOLID_COMPONENT_VOLUME),
            solid_mean_diameter_mm=_get(nums, codes.SOLID_COMPONENT_DIAMETER),
            quality=MeasurementQuality(**quality, reasons=tuple(reasons)),
            volume_convention=convention,
        )
    return NoduleFinding(
        tracking_id=tracking_id,
        tracking_uid=tracking_uid,
        seed=seed,
        measurement=measurement,
        characterization=Characterization(**ch),
        comparisons=tuple(comparisons),
        status=status,
        pancan_risk_pct=_get(nums, codes.PANCAN_RISK),
        category=category,
        rule=rule,
        error=error,
    )


def _assessment(ds: Dataset, root: Dataset, findings: tuple[NoduleFinding, ...]) -> ExamAssessment:
    container = tree.first(root, K(codes.QUALITATIVE_EVALUATIONS), "CONTAINER")
    values: dict[str, Any] = {"reasons": [], "notes": []}
    participant: dict[str, Any] = {}
    for item in tree.children(container) if container is not None else []:
        c, vt = tree.concept(item), tree.value_type(item)
        value = tree.code_value(item) if vt == "CODE" else None
        if c in (K(codes.EXAM_CATEGORY), K(codes.LUNG_RADS_EXAM_CATEGORY)):
            values["category"] = _CATEGORIES.get(value)
            values["protocol"] = "lung-rads-2022" if c == K(codes.LUNG_RADS_EXAM_CATEGORY) else "nlcsp"
        elif c == K(codes.PROTOCOL_VERSION):
            values["protocol_version"] = tree.text(item)
        elif c in (K(codes.ADDITIONAL_FINDINGS), K(codes.LUNG_RADS_S_MODIFIER)):
            values["additional_findings"] = value == K(codes.YES)
        elif c == K(codes.SCREENING_ROUND):
            values["screening_round"] = _ROUNDS.get(value)
        elif c == K(codes.EXAM_DATE):
            values["exam_date"] = tree.date(item)
        elif c == K(codes.DESCRIPTOR):
            values["descriptor"] = tree.text(item)
        elif c == K(codes.MANAGEMENT):
            values["management"] = tree.text(item)
        elif c == K(codes.FOLLOW_UP_INTERVAL):
            v = tree.num(item)
            values["follow_up_months"] = int(round(v[0])) if v else None
        elif c == K(codes.FOLLOW_UP_DATE):
            values["due_date"] = tree.date(item)
        elif c == K(codes.DECISIVE_NODULE):
            values["decisive_tracking_uid"] = tree.uid(item)
        elif c == K(codes.ANALYSED_SERIES):
            values["series_uid"] = tree.uid(item)
        elif c == K(codes.REASON):
            values["reasons"].append(tree.text(item))
        elif c == K(codes.NOTE):
            values["notes"].append(tree.text(item))
        elif c == K(codes.SUBJECT_AGE):
            v = tree.num(item)
            participant["age_years"] = int(round(v[0])) if v else None
        elif c == K(codes.SUBJECT_SEX):
            participant["sex"] = _SEXES.get(value)
        else:
            for name, concept in codes.PARTICIPANT_FLAGS.items():
                if c == K(concept):
                    participant[name] = value == K(codes.YES)
    exam_date = values.get("exam_date") or _date_of(ds, "StudyDate")
    return ExamAssessment(
        study_uid=str(ds.StudyInstanceUID),
        exam_date=exam_date,  # type: ignore[arg-type]
        screening_round=values.get("screening_round") or "baseline",
        category=values.get("category") or "",
        additional_findings=bool(values.get("additional_findings", False)),
        descriptor=values.get("descriptor", ""),
        management=values.get("management", ""),
        follow_up_months=values.get("follow_up_months"),
        due_date=values.get("due_date"),
        decisive_tracking_uid=values.get("decisive_tracking_uid"),
        findings=findings,
        participant=Participant(
            age_years=participant.get("age_years"),
            sex=participant.get("sex"),
            family_history_lung_cancer=participant.get("family_history_lung_cancer", False),
            emphysema=participant.get("emphysema", False),
        )
        if participant
        else None,
        series_uid=values.get("series_uid"),
        reasons=tuple(values["reasons"]),
        notes=tuple(values["notes"]),
        protocol=values.get("protocol", "nlcsp"),
        protocol_version=values.get("protocol_version") or "",
    )


# --------------------------------------------------------------------------- public
def read_report(source: Dataset | str | Path) -> ReportContents:
    """Read a TID 1500 SR (a Dataset or a file path)."""
    ds = source if isinstance(source, Dataset) else dcmread(source)
    uid = str(ds.get("SOPInstanceUID") or "?")
    if tree.value_type(ds) != "CONTAINER":
        raise ReportError(f"object {uid} is not a structured report (no root CONTAINER content item)")
    if tree.concept(ds) != K(codes.IMAGING_MEASUREMENT_REPORT):
        raise ReportError(
            f"SR {uid} is not a TID 1500 measurement report: its title is {tree.concept(ds)} "
            f"{tree.meaning(ds)!r}, not (126000, DCM) 'Imaging Measurement Report'"
        )
    schemes = tuple(
        str(i.get("CodingSchemeDesignator") or "") for i in ds.get("CodingSchemeIdentificationSequence") or []
    )
    measurements = next((i for i in tree.children(ds) if tree.concept(i) == K(codes.IMAGING_MEASUREMENTS)), None)
    group_items = (
        [g for g in tree.children(measurements) if tree.value_type(g) == "CONTAINER"]
        if measurements is not None
        else []
    )
    groups = tuple(_generic_group(g) for g in group_items)
    person = device = None
    procedures = []
    for item in tree.children(ds):
        c = tree.concept(item)
        if c == K(codes.PERSON_OBSERVER_NAME) and person is None:
            person = str(item.get("PersonName") or "") or None
        elif c == K(codes.DEVICE_OBSERVER_UID):
            device = tree.uid(item)
        elif c == ("121058", "DCM"):
            procedures.append(tree.code_value_meaning(item))
    is_ours = (
        codes.PRIVATE_SCHEME in schemes
        and str(ds.get("Manufacturer") or "") == "noduled"
        or (
            codes.PRIVATE_SCHEME in schemes
            and tree.first(ds, K(codes.QUALITATIVE_EVALUATIONS), "CONTAINER") is not None
        )
    )
    assessment = None
    if is_ours:
        library = _library(ds)
        by_uid: dict[str, list[Dataset]] = {}
        ids: dict[str, str] = {}
        for g in group_items:
            tracking_id, tracking_uid = _group_identity(g)
            if not tracking_uid or tracking_id == "Exam":
                continue
            by_uid.setdefault(tracking_uid, []).append(g)
            ids.setdefault(tracking_uid, tracking_id or "")
        findings = tuple(_finding(ids[u], u, gs, library) for u, gs in by_uid.items())
        assessment = _assessment(ds, ds, findings)
    return ReportContents(
        sop_instance_uid=uid,
        study_uid=str(ds.get("StudyInstanceUID") or ""),
        study_date=_date_of(ds, "StudyDate"),
        series_uid=str(ds.get("SeriesInstanceUID") or ""),
        content_date=_date_of(ds, "ContentDate"),
        is_noduled=is_ours,
        assessment=assessment,
        groups=groups,
        person_observer=person,
        device_observer_uid=device,
        predecessor_uids=tuple(
            str(sop.ReferencedSOPInstanceUID)
            for study in ds.get("PredecessorDocumentsSequence") or []
            for series in study.get("ReferencedSeriesSequence") or []
            for sop in series.get("ReferencedSOPSequence") or []
        ),
        procedures=tuple(procedures),
        title=tree.meaning(ds),
        coding_schemes=schemes,
    )
