"""Radiation dose from DICOM: the X-Ray Radiation Dose SR (TID 10001 / TID 10011) and CT image headers.

Pure functions of a :class:`pydicom.Dataset` (no files, no database):

* :func:`read_dose_report` reads a Radiation Dose SR.  For CT (TID 10011 "CT Radiation Dose") each
  CT Acquisition (DCM 113819, TID 10013) is one :class:`IrradiationEvent` with its Mean CTDIvol
  (DCM 113830), DLP (DCM 113838), Irradiation Event UID (DCM 113769), protocol, target region and
  acquisition parameters; the CT Accumulated Dose Data (DCM 113811) gives the DLP total (DCM 113813).
  A projection X-ray report (TID 10001) is recognised and its events are listed (they carry no CTDIvol).
* :func:`ct_image_exposure` reads the CT image attributes the registry wants (CTDIvol (0018,9345),
  kVp, exposure, pitch, scanner) from one image header.

Units are checked: CTDIvol must be in mGy (or Gy, converted), DLP in mGy.cm (or Gy.cm); any other unit
is a :class:`DoseReportError` naming the item and the unit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
ENHANCED_XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.76"
DOSE_SR_CLASSES = (XRAY_RADIATION_DOSE_SR, ENHANCED_XRAY_RADIATION_DOSE_SR)

# DCM codes of TID 10011 / 10013 / 10001 (PS3.16)
XRAY_DOSE_REPORT = "113701"
CT_ACCUMULATED_DOSE_DATA = "113811"
CT_DLP_TOTAL = "113813"
CT_ACQUISITION = "113819"
CT_ACQUISITION_TYPE = "113820"
CT_ACQUISITION_PARAMETERS = "113822"
SCANNING_LENGTH = "113825"
PITCH_FACTOR = "113828"
CT_DOSE = "113829"
MEAN_CTDIVOL = "113830"
CT_XRAY_SOURCE_PARAMETERS = "113831"
EXPOSURE_TIME_PER_ROTATION = "113834"
CTDIW_PHANTOM_TYPE = "113835"
DLP = "113838"
IRRADIATION_EVENT_UID = "113769"
KVP = "113733"
XRAY_TUBE_CURRENT = "113734"
IRRADIATION_EVENT_XRAY_DATA = "113706"  # TID 10003 (projection X-ray)
ACQUISITION_PROTOCOL = "125203"
TARGET_REGION = "123014"

_MGY = {"mgy": 1.0, "gy": 1000.0}
_MGYCM = {"mgy.cm": 1.0, "mgy*cm": 1.0, "gy.cm": 1000.0}
_MM = {"mm": 1.0, "cm": 10.0}


class DoseReportError(ValueError):
    """The object is not a readable radiation dose report; the message says which item is wrong."""


@dataclass(frozen=True)
class IrradiationEvent:
    """One irradiation event (CT: TID 10013 CT Irradiation Event Data)."""

    event_uid: str | None
    acquisition_protocol: str | None = None
    target_region: str | None = None
    acquisition_type: str | None = None  # e.g. "Spiral Acquisition", "Constant Angle Acquisition" (scout)
    ctdivol_mgy: float | None = None
    dlp_mgycm: float | None = None
    scanning_length_mm: float | None = None
    kvp: float | None = None
    tube_current_ma: float | None = None
    exposure_time_per_rotation_s: float | None = None
    pitch_factor: float | None = None
    phantom: str | None = None  # CTDIw phantom type, e.g. "IEC Body Dosimetry Phantom"

    @property
    def exposure_mas(self) -> float | None:
        """Tube current x rotation time (mAs per rotation), when both are given."""
        if self.tube_current_ma is None or self.exposure_time_per_rotation_s is None:
            return None
        return self.tube_current_ma * self.exposure_time_per_rotation_s


@dataclass(frozen=True)
class DoseReport:
    """What a Radiation Dose SR says about one study."""

    sop_instance_uid: str
    study_uid: str
    kind: str  # "ct" (TID 10011) | "projection" (TID 10001)
    events: tuple[IrradiationEvent, ...]
    dlp_total_mgycm: float | None
    manufacturer: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class ImageExposure:
    """The exposure attributes of one CT image header."""

    ctdivol_mgy: float | None  # (0018,9345)
    kvp: float | None  # (0018,0060)
    exposure_mas: float | None  # (0018,1152)
    pitch_factor: float | None  # (0018,9311) Spiral Pitch Factor
    slice_thickness_mm: float | None  # (0018,0050)
    manufacturer: str | None
    model: str | None  # (0008,1090)
    irradiation_event_uid: str | None  # (0008,3010)
    protocol: str | None  # (0018,1030) Protocol Name


def _code(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> str | None:
    seq = item.get(keyword)
    if not seq:
        return None
    return str(seq[0].get("CodeValue") or seq[0].get("LongCodeValue") or "") or None


def _children(item: Dataset) -> Sequence[Dataset]:
    return item.get("ContentSequence") or ()


def _walk(item: Dataset) -> Iterator[Dataset]:
    for child in _children(item):
        yield child
        yield from _walk(child)


def _find(item: Dataset, code: str) -> Dataset | None:
    return next((c for c in _walk(item) if _code(c) == code), None)


def _num(item: Dataset | None, units: dict[str, float], what: str) -> float | None:
    if item is None or not item.get("MeasuredValueSequence"):
        return None
    mv = item.MeasuredValueSequence[0]
    unit = str(mv.MeasurementUnitsCodeSequence[0].CodeValue) if mv.get("MeasurementUnitsCodeSequence") else ""
    factor = units.get(unit.strip().lower())
    if factor is None:
        raise DoseReportError(f"{what} is in {unit!r}; expected one of {', '.join(units)}")
    try:
        return float(mv.NumericValue) * factor
    except (TypeError, ValueError):
        raise DoseReportError(f"{what} has a non-numeric value {mv.get('NumericValue')!r}") from None


def _plain(item: Dataset | None) -> float | None:
    if item is None or not item.get("MeasuredValueSequence"):
        return None
    try:
        return float(item.MeasuredValueSequence[0].NumericValue)
    except (TypeError, ValueError):
        return None


def _text(item: Dataset | None) -> str | None:
    if item is None:
        return None
    if item.get("ValueType") == "CODE" and item.get("ConceptCodeSequence"):
        return str(item.ConceptCodeSequence[0].get("CodeMeaning") or "") or None
    for keyword in ("TextValue", "UID"):
        if item.get(keyword):
            return str(item.get(keyword))
    return None


def _ct_event(acq: Dataset) -> IrradiationEvent:
    dose = _find(acq, CT_DOSE)
    where = f"CT Acquisition {_text(_find(acq, IRRADIATION_EVENT_UID)) or '(no event UID)'}"
    return IrradiationEvent(
        event_uid=_text(_find(acq, IRRADIATION_EVENT_UID)),
        acquisition_protocol=_text(_find(acq, ACQUISITION_PROTOCOL)),
        target_region=_text(_find(acq, TARGET_REGION)),
        acquisition_type=_text(_find(acq, CT_ACQUISITION_TYPE)),
        ctdivol_mgy=_num(_find(dose, MEAN_CTDIVOL) if dose is not None else None, _MGY, f"{where}: Mean CTDIvol"),
        dlp_mgycm=_num(_find(dose, DLP) if dose is not None else None, _MGYCM, f"{where}: DLP"),
        scanning_length_mm=_num(_find(acq, SCANNING_LENGTH), _MM, f"{where}: Scanning Length"),
        kvp=_plain(_find(acq, KVP)),
        tube_current_ma=_plain(_find(acq, XRAY_TUBE_CURRENT)),
        exposure_time_per_rotation_s=_plain(_find(acq, EXPOSURE_TIME_PER_ROTATION)),
        pitch_factor=_plain(_find(acq, PITCH_FACTOR)),
        phantom=_text(_find(dose, CTDIW_PHANTOM_TYPE)) if dose is not None else None,
    )


def is_dose_report(ds: Dataset) -> bool:
    """A Radiation Dose SR (by SOP class, or an SR whose title is X-Ray Radiation Dose Report)."""
    if str(ds.get("SOPClassUID", "")) in DOSE_SR_CLASSES:
        return True
    return str(ds.get("Modality", "")) == "SR" and _code(ds) == XRAY_DOSE_REPORT


def read_dose_report(ds: Dataset) -> DoseReport:
    """The irradiation events and the DLP total of a Radiation Dose SR."""
    if not is_dose_report(ds):
        raise DoseReportError(
            f"SOP instance {ds.get('SOPInstanceUID')} (class {ds.get('SOPClassUID')}) is not a radiation dose SR"
        )
    if _code(ds) != XRAY_DOSE_REPORT:
        raise DoseReportError(f"the document title is {_code(ds)!r}, not DCM 113701 'X-Ray Radiation Dose Report'")
    acquisitions = [c for c in _children(ds) if _code(c) == CT_ACQUISITION]
    projection = [c for c in _children(ds) if _code(c) == IRRADIATION_EVENT_XRAY_DATA]
    accumulated = _find(ds, CT_ACCUMULATED_DOSE_DATA)
    if acquisitions or accumulated is not None:
        kind = "ct"
        events = tuple(_ct_event(a) for a in acquisitions)
        total = _num(_find(accumulated, CT_DLP_TOTAL), _MGYCM, "CT Dose Length Product Total") if accumulated else None
    else:
        kind = "projection"
        events = tuple(IrradiationEvent(event_uid=_text(_find(p, IRRADIATION_EVENT_UID))) for p in projection)
        total = None
    return DoseReport(
        sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        kind=kind,
        events=events,
        dlp_total_mgycm=total,
        manufacturer=str(ds.get("Manufacturer") or "") or None,
        model=str(ds.get("ManufacturerModelName") or "") or None,
    )


def _float(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def ct_image_exposure(ds: Dataset) -> ImageExposure:
    """The exposure attributes of a CT image header (absent ones are None)."""
    return ImageExposure(
        ctdivol_mgy=_float(ds.get("CTDIvol")),
        kvp=_float(ds.get("KVP")),
        exposure_mas=_float(ds.get("Exposure")),
        pitch_factor=_float(ds.get("SpiralPitchFactor")),
        slice_thickness_mm=_float(ds.get("SliceThickness")),
        manufacturer=str(ds.get("Manufacturer") or "") or None,
        model=str(ds.get("ManufacturerModelName") or "") or None,
        irradiation_event_uid=str(ds.get("IrradiationEventUID") or "") or None,
        protocol=str(ds.get("ProtocolName") or "") or None,
    )


def screening_events(report: DoseReport, series_event_uids: Sequence[str]) -> tuple[IrradiationEvent, ...]:
    """The events of the screening series: those whose Irradiation Event UID the series' images carry;
    when the images carry none, the spiral acquisitions (a localiser is not the screening scan)."""
    wanted = {u for u in series_event_uids if u}
    if wanted:
        return tuple(e for e in report.events if e.event_uid in wanted)
    return tuple(e for e in report.events if (e.acquisition_type or "").lower().startswith("spiral"))
