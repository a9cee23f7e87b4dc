"""A CT Radiation Dose SR (TID 10011) for a :class:`PhantomStudy`, as a CT scanner sends it with the study.

X-Ray Radiation Dose SR Storage, document title DCM 113701 "X-Ray Radiation Dose Report", procedure
reported "Computed Tomography X-Ray"; CT Accumulated Dose Data with the DLP total (DCM 113813); one CT
Acquisition (TID 10013) per irradiation event: a localiser (Constant Angle Acquisition) and the spiral
screening scan, each with Irradiation Event UID, protocol, target region, CT Acquisition Parameters
(scanning length, pitch factor, X-ray source kVp / tube current / rotation time) and CT Dose (Mean CTDIvol
DCM 113830, CTDIw phantom, DLP DCM 113838).  The content items are highdicom's; every value is derived
from the study (deterministic bytes).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import highdicom as hd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.coding import Code
from pydicom.uid import ExplicitVRLittleEndian

from test_images.dicom_out import MANUFACTURER, MODEL, STUDY_TIME, _common, _da
from test_images.study import PhantomStudy, make_uid

XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
R = hd.sr.RelationshipTypeValues
MGY = Code("mGy", "UCUM", "mGy")
MGYCM = Code("mGy.cm", "UCUM", "mGy.cm")
MM = Code("mm", "UCUM", "mm")
KV = Code("kV", "UCUM", "kV")
MA = Code("mA", "UCUM", "mA")
S = Code("s", "UCUM", "s")
RATIO = Code("{ratio}", "UCUM", "ratio")
BODY_PHANTOM = Code("113691", "DCM", "IEC Body Dosimetry Phantom")
CHEST = Code("43799004", "SCT", "Chest")


@dataclass(frozen=True)
class DoseEvent:
    event_uid: str
    protocol: str
    acquisition_type: Code
    ctdivol_mgy: float
    scanning_length_mm: float
    kvp: float
    tube_current_ma: float
    rotation_time_s: float
    pitch_factor: float

    @property
    def dlp_mgycm(self) -> float:
        return self.ctdivol_mgy * self.scanning_length_mm / 10.0


def dose_events(study: PhantomStudy, *, ctdivol_mgy: float | None = None) -> tuple[DoseEvent, ...]:
    """The localiser and the screening spiral of ``study`` (CTDIvol from the study's acquisition)."""
    acq = {"kvp": 120.0, "ma": 30, "ctdivol_mgy": 1.1, "pitch": 1.0, **study.acquisition}
    nz = study.hu.shape[0]
    length_mm = float(nz * study.spacing_mm[2])
    scout = DoseEvent(
        make_uid(study.study_uid, "dose-event", "scout"),
        "Topogram",
        Code("113805", "DCM", "Constant Angle Acquisition"),
        0.08,
        400.0,
        120.0,
        35.0,
        0.5,
        1.0,
    )
    spiral = DoseEvent(
        make_uid(study.study_uid, "dose-event", "spiral"),
        "LDCT LUNG SCREENING",
        Code("116152004", "SCT", "Spiral Acquisition"),
        float(ctdivol_mgy if ctdivol_mgy is not None else acq["ctdivol_mgy"]),
        length_mm,
        float(acq["kvp"]),
        float(acq["ma"]),
        0.5,
        float(acq["pitch"]),
    )
    return (scout, spiral)


def _num(name: Code, value: float, unit: Code, rel: R = R.CONTAINS) -> hd.sr.NumContentItem:
    return hd.sr.NumContentItem(name=name, value=value, unit=unit, relationship_type=rel)


def _acquisition(e: DoseEvent) -> hd.sr.ContainerContentItem:
    item = hd.sr.ContainerContentItem(name=Code("113819", "DCM", "CT Acquisition"), relationship_type=R.CONTAINS)
    source = hd.sr.ContainerContentItem(
        name=Code("113831", "DCM", "CT X-Ray Source Parameters"), relationship_type=R.CONTAINS
    )
    source.ContentSequence = [
        hd.sr.TextContentItem(
            name=Code("113832", "DCM", "Identification of the X-Ray Source"), value="A", relationship_type=R.CONTAINS
        ),
        _num(Code("113733", "DCM", "KVP"), e.kvp, KV),
        _num(Code("113734", "DCM", "X-Ray Tube Current"), e.tube_current_ma, MA),
        _num(Code("113834", "DCM", "Exposure Time per Rotation"), e.rotation_time_s, S),
    ]
    params = hd.sr.ContainerContentItem(
        name=Code("113822", "DCM", "CT Acquisition Parameters"), relationship_type=R.CONTAINS
    )
    params.ContentSequence = [
        _num(Code("113825", "DCM", "Scanning Length"), e.scanning_length_mm, MM),
        _num(Code("113828", "DCM", "Pitch Factor"), e.pitch_factor, RATIO),
        source,
    ]
    dose = hd.sr.ContainerContentItem(name=Code("113829", "DCM", "CT Dose"), relationship_type=R.CONTAINS)
    dose.ContentSequence = [
        _num(Code("113830", "DCM", "Mean CTDIvol"), e.ctdivol_mgy, MGY),
        hd.sr.CodeContentItem(
            name=Code("113835", "DCM", "CTDIw Phantom Type"), value=BODY_PHANTOM, relationship_type=R.CONTAINS
        ),
        _num(Code("113838", "DCM", "DLP"), round(e.dlp_mgycm, 2), MGYCM),
    ]
    item.ContentSequence = [
        hd.sr.TextContentItem(
            name=Code("125203", "DCM", "Acquisition Protocol"), value=e.protocol, relationship_type=R.CONTAINS
        ),
        hd.sr.CodeContentItem(name=Code("123014", "DCM", "Target Region"), value=CHEST, relationship_type=R.CONTAINS),
        hd.sr.CodeContentItem(
            name=Code("113820", "DCM", "CT Acquisition Type"), value=e.acquisition_type, relationship_type=R.CONTAINS
        ),
        hd.sr.UIDRefContentItem(
            name=Code("113769", "DCM", "Irradiation Event UID"), value=e.event_uid, relationship_type=R.CONTAINS
        ),
        params,
        dose,
    ]
    return item


def dose_sr(study: PhantomStudy, *, ctdivol_mgy: float | None = None) -> Dataset:
    """The CT Radiation Dose SR of ``study``."""
    events = dose_events(study, ctdivol_mgy=ctdivol_mgy)
    uid = make_uid(study.study_uid, "dose-sr")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = XRAY_RADIATION_DOSE_SR
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    _common(ds, study)
    ds.SOPClassUID = XRAY_RADIATION_DOSE_SR
    ds.SOPInstanceUID = uid
    ds.Modality = "SR"
    ds.SeriesInstanceUID = make_uid(study.study_uid, "dose-series")
    ds.SeriesNumber = 999
    ds.SeriesDescription = "Dose Report"
    ds.InstanceNumber = 1
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL
    ds.ContentDate = _da(study.study_date)
    ds.ContentTime = STUDY_TIME
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = [hd.sr.CodedConcept("113701", "DCM", "X-Ray Radiation Dose Report")]
    tmpl = Dataset()
    tmpl.MappingResource = "DCMR"
    tmpl.TemplateIdentifier = "10011"
    ds.ContentTemplateSequence = [tmpl]
    start = dt.datetime.combine(study.study_date, dt.time(9, 30)).strftime("%Y%m%d%H%M%S")
    accumulated = hd.sr.ContainerContentItem(
        name=Code("113811", "DCM", "CT Accumulated Dose Data"), relationship_type=R.CONTAINS
    )
    accumulated.ContentSequence = [
        hd.sr.NumContentItem(
            name=Code("113812", "DCM", "Total Number of Irradiation Events"),
            value=len(events),
            unit=Code("{events}", "UCUM", "events"),
            relationship_type=R.CONTAINS,
        ),
        _num(Code("113813", "DCM", "CT Dose Length Product Total"), round(sum(e.dlp_mgycm for e in events), 2), MGYCM),
    ]
    ds.ContentSequence = [
        hd.sr.CodeContentItem(
            name=Code("121058", "DCM", "Procedure reported"),
            value=Code("77477000", "SCT", "Computed Tomography X-Ray"),
            relationship_type=R.HAS_CONCEPT_MOD,
        ),
        hd.sr.DateTimeContentItem(
            name=Code("113809", "DCM", "Start of X-Ray Irradiation"), value=start, relationship_type=R.HAS_OBS_CONTEXT
        ),
        hd.sr.DateTimeContentItem(
            name=Code("113810", "DCM", "End of X-Ray Irradiation"), value=start, relationship_type=R.HAS_OBS_CONTEXT
        ),
        accumulated,
        *(_acquisition(e) for e in events),
        hd.sr.CodeContentItem(
            name=Code("113854", "DCM", "Source of Dose Information"),
            value=Code("113856", "DCM", "Automated Data Collection"),
            relationship_type=R.CONTAINS,
        ),
    ]
    return ds
