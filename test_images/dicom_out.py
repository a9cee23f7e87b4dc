"""Writing a :class:`PhantomStudy` as a screening PACS would hold it.

- the CT series, one Explicit VR Little Endian file per slice (CT Image IOD,
  int16 pixels with rescale intercept -1024, realistic LDCT acquisition headers);
- the reader's seeds in the three forms of DESIGN §6:
  a TID 1500 Comprehensive SR (highdicom; Image Library, one measurement group
  per nodule with tracking identifier + UID, finding "Nodule", SCOORD POINT on
  the slice nearest the seed; DESIGN §6 labels in the tracking identifier),
  a Grayscale Softcopy Presentation State (POINT graphic objects in PIXEL units
  plus text objects carrying the labels), and ``seeds.json`` (LPS points);
- ``truth.json`` of the study.

Every value is derived from the study (no clock, no randomness), so the same
study always yields the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from test_images.study import PhantomStudy, make_uid

MANUFACTURER = "NODULED SYNTHETIC"
MODEL = "PhantomCT LD-64"
SOFTWARE = "noduled-test_images 1.0"
SERIAL = "SYN0001"
INSTITUTION = "Synthetic Screening Clinic"
STUDY_TIME = "093000"
RESCALE_INTERCEPT = -1024.0


def _da(d) -> str:
    return d.strftime("%Y%m%d")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _common(ds: Dataset, study: PhantomStudy) -> None:
    p = study.patient
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = p["name"]
    ds.PatientID = p["id"]
    ds.PatientBirthDate = _da(p["birth_date"])
    ds.PatientSex = p["sex"]
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = _da(study.study_date)
    ds.StudyTime = STUDY_TIME
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"{study.study_index + 1}"
    ds.AccessionNumber = f"A{abs(hash_digits(study.study_uid)) % 10**8:08d}"
    ds.StudyDescription = "LDCT LUNG SCREENING"


def hash_digits(s: str) -> int:
    import hashlib

    return int(hashlib.sha256(s.encode()).hexdigest()[:15], 16)


def ct_datasets(study: PhantomStudy):
    """Yield one CT Image dataset per slice (ascending z)."""
    nz, ny, nx = study.hu.shape
    sx, sy, sz = study.spacing_mm
    ox, oy, oz = study.origin_lps_mm
    acq = {"kvp": 120.0, "ma": 30, "ctdivol_mgy": 1.1, "kernel": "LUNG", "pitch": 1.0, **study.acquisition}
    stored = np.clip(np.rint(study.hu) - RESCALE_INTERCEPT, -32768, 32767).astype("<i2")
    p = study.patient
    for k in range(nz):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        sop_uid = slice_uid(study, k)
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = "1.2.826.0.1.3680043.10.1492.1"
        ds.file_meta.ImplementationVersionName = "NODULED_PHANTOM"
        _common(ds, study)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceCreationDate = _da(study.study_date)
        ds.InstanceCreationTime = STUDY_TIME
        ds.PatientAge = f"{int(p['age_years']):03d}Y"
        ds.PatientSize = 1.72 if p["sex"] == "M" else 1.63
        ds.PatientWeight = 82.0 if p["sex"] == "M" else 68.0
        ds.Modality = "CT"
        ds.SeriesInstanceUID = study.series_uid
        ds.SeriesNumber = 2
        ds.SeriesDate = _da(study.study_date)
        ds.SeriesTime = STUDY_TIME
        ds.SeriesDescription = f"LDCT Lung {study.slice_thickness_mm or sz:.2g} mm"
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        ds.ProtocolName = "LDCT LUNG SCREENING"
        ds.FrameOfReferenceUID = study.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.Manufacturer = MANUFACTURER
        ds.ManufacturerModelName = MODEL
        ds.SoftwareVersions = SOFTWARE
        ds.DeviceSerialNumber = SERIAL
        ds.InstitutionName = INSTITUTION
        ds.StationName = "CT01"
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.AcquisitionDate = _da(study.study_date)
        ds.AcquisitionTime = "093015"
        ds.ContentDate = _da(study.study_date)
        ds.ContentTime = "093020"
        ds.ImagePositionPatient = [f"{ox:.4f}", f"{oy:.4f}", f"{oz + k * sz:.4f}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = f"{oz + k * sz:.4f}"
        ds.SliceThickness = f"{study.slice_thickness_mm or sz:.4g}"
        ds.PixelSpacing = [f"{sy:.6g}", f"{sx:.6g}"]  # row spacing, column spacing
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ny
        ds.Columns = nx
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = f"{RESCALE_INTERCEPT:.0f}"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "-600"
        ds.WindowWidth = "1500"
        ds.WindowCenterWidthExplanation = "LUNG"
        ds.KVP = f"{acq['kvp']:.0f}"
        ds.DataCollectionDiameter = "500"
        ds.ReconstructionDiameter = f"{nx * sx:.2f}"
        ds.DistanceSourceToDetector = "1085.6"
        ds.DistanceSourceToPatient = "595"
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = "160"
        ds.RotationDirection = "CW"
        ds.ExposureTime = "500"
        ds.XRayTubeCurrent = int(acq["ma"])
        ds.Exposure = int(round(acq["ma"] * 0.5))
        ds.FilterType = "BODY FILTER"
        ds.GeneratorPower = "4"
        ds.FocalSpots = "0.7"
        ds.ConvolutionKernel = acq["kernel"]
        ds.CTDIvol = float(acq["ctdivol_mgy"])
        ds.SpiralPitchFactor = float(acq["pitch"])
        ds.ScanOptions = "HELICAL MODE"
        phantom = Dataset()
        phantom.CodeValue = "113691"
        phantom.CodingSchemeDesignator = "DCM"
        phantom.CodeMeaning = "IEC Body Dosimetry Phantom"
        ds.CTDIPhantomTypeCodeSequence = [phantom]
        ds.PixelData = stored[k].tobytes()
        yield ds


def slice_uid(study: PhantomStudy, k: int) -> str:
    return make_uid(study.series_uid, "slice", k)


def _seed_points(study: PhantomStudy) -> list[dict]:
    """Per nodule: seed LPS, nearest slice index, pixel (column, row) in SCOORD/PIXEL convention, label text."""
    nz, ny, nx = study.hu.shape
    sx, sy, sz = study.spacing_mm
    ox, oy, oz = study.origin_lps_mm
    out = []
    for n in study.nodules:
        x, y, z = n["seed_lps_mm"]
        k = int(np.clip(round((z - oz) / sz), 0, nz - 1))
        # (0, 0) is the top-left corner of the top-left pixel: pixel centre i is at i + 0.5
        col = (x - ox) / sx + 0.5
        row = (y - oy) / sy + 0.5
        num = n["id"].lstrip("N")
        labels = " ".join(n.get("labels", []))
        text = f"Nodule {num}" + (f": {labels}" if labels else "")
        out.append(
            {
                "nodule": n,
                "k": k,
                "col": float(col),
                "row": float(row),
                "text": text,
                "position_lps_mm": [float(x), float(y), float(oz + k * sz)],
            }
        )
    return out


def _fix_dates(ds: Dataset, study: PhantomStudy, series_time: str) -> None:
    for item in ds.get("ContributingEquipmentSequence", []):
        if "ContributionDateTime" in item:
            item.ContributionDateTime = _da(study.study_date) + series_time
    for kw in ("ContentDate", "InstanceCreationDate", "PresentationCreationDate", "SeriesDate"):
        if kw in ds:
            setattr(ds, kw, _da(study.study_date))
    for kw in ("ContentTime", "InstanceCreationTime", "PresentationCreationTime", "SeriesTime"):
        if kw in ds:
            setattr(ds, kw, series_time)


def seed_sr(study: PhantomStudy, ct_by_k: dict[int, Dataset]) -> Dataset:
    """TID 1500 Comprehensive SR of the reader's seed points (OHIF style)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    seeds = _seed_points(study)
    groups = []
    for s in seeds:
        ref = ct_by_k[s["k"]]
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POINT,
            graphic_data=np.array([[s["col"], s["row"]]]),
            source_image=hd.sr.SourceImageForRegion(ref.SOPClassUID, ref.SOPInstanceUID),
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=s["nodule"]["tracking_uid"], identifier=s["text"]),
                referenced_region=region,
                finding_type=Code("27925004", "SCT", "Nodule"),
                finding_sites=[hd.sr.FindingSite(Code("39607008", "SCT", "Lung"))],
            )
        )
    if study.exam_labels:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=make_uid(study.study_uid, "exam-labels"), identifier="Exam: " + " ".join(study.exam_labels)
                ),
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="READER^SYNTHETIC"),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=Code("24627-2", "LN", "CT Chest"),
        imaging_measurements=groups or None,
        title=codes.DCM.ImagingMeasurementReport,
        referenced_images=[ct_by_k[k] for k in sorted({s["k"] for s in seeds})] or None,
    )
    evidence = [ct_by_k[k] for k in sorted({s["k"] for s in seeds})] or [ct_by_k[min(ct_by_k)]]
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=report,
        series_instance_uid=make_uid(study.study_uid, "sr-series"),
        series_number=901,
        sop_instance_uid=make_uid(study.study_uid, "sr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        institution_name=INSTITUTION,
        is_complete=True,
        series_description="Reader seeds (TID 1500)",
    )
    _fix_dates(sr, study, "094500")
    return sr


def seed_gsps(study: PhantomStudy, ct_all: list[Dataset], ct_by_k: dict[int, Dataset]) -> Dataset:
    """Grayscale Softcopy Presentation State with POINT annotations and text labels on the seeded slices."""
    import highdicom as hd

    seeds = _seed_points(study)
    layer = hd.pr.GraphicLayer(layer_name="READER", order=1, description="reader seed points")
    by_k: dict[int, list[dict]] = {}
    for s in seeds:
        by_k.setdefault(s["k"], []).append(s)
    annotations = []
    for k, items in sorted(by_k.items()):
        gobjs = [
            hd.pr.GraphicObject(
                graphic_type=hd.pr.GraphicTypeValues.POINT,
                graphic_data=np.array([[s["col"], s["row"]]]),
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                tracking_id=s["text"],
                tracking_uid=s["nodule"]["tracking_uid"],
            )
            for s in items
        ]
        tobjs = [
            hd.pr.TextObject(
                text_value=s["text"],
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                anchor_point=(s["col"], s["row"]),
                anchor_point_visible=True,
            )
            for s in items
        ]
        annotations.append(
            hd.pr.GraphicAnnotation(
                referenced_images=[ct_by_k[k]], graphic_layer=layer, graphic_objects=gobjs, text_objects=tobjs
            )
        )
    if study.exam_labels:
        mid = ct_all[len(ct_all) // 2]
        annotations.append(
            hd.pr.GraphicAnnotation(
                referenced_images=[mid],
                graphic_layer=layer,
                text_objects=[
                    hd.pr.TextObject(
                        text_value=" ".join(study.exam_labels),
                        units=hd.pr.AnnotationUnitsValues.PIXEL,
                        bounding_box=(1.0, 1.0, float(min(mid.Columns - 1, 200)), float(min(mid.Rows - 1, 16))),
                    )
                ],
            )
        )
    ps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=ct_all,
        series_instance_uid=make_uid(study.study_uid, "pr-series"),
        series_number=902,
        sop_instance_uid=make_uid(study.study_uid, "pr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL,
        software_versions=SOFTWARE,
        device_serial_number=SERIAL,
        content_label="SEEDS",
        content_description="Reader seed points",
        graphic_layers=[layer],
        graphic_annotations=annotations,
        institution_name=INSTITUTION,
        content_creator_name="READER^SYNTHETIC",
        voi_lut_transformations=[
            hd.pr.SoftcopyVOILUTTransformation(window_center=-600.0, window_width=1500.0, referenced_images=None)
        ],
    )
    _fix_dates(ps, study, "094600")
    ps.BodyPartExamined = "CHEST"  # unpaired: General Series Laterality (2C) then stays absent
    return ps


def seeds_json(study: PhantomStudy) -> dict:
    """The JSON seed file: ``{"seeds": [{"position_lps_mm": [x, y, z], "label": "..."}], ...}``."""
    return {
        "study_uid": study.study_uid,
        "series_uid": study.series_uid,
        "seeds": [
            {
                "position_lps_mm": s["position_lps_mm"],
                "label": " ".join(s["nodule"].get("labels", [])),
                "tracking_id": s["text"].split(":")[0],
                "tracking_uid": s["nodule"]["tracking_uid"],
            }
            for s in _seed_points(study)
        ],
        "exam_labels": list(study.exam_labels),
    }


def write_study(study: PhantomStudy, out_dir) -> dict:
    """Write the CT series, seed SR, seed GSPS, seeds.json and truth.json of ``study`` under ``out_dir``."""
    out = Path(out_dir)
    ct_dir = out / "CT"
    ct_dir.mkdir(parents=True, exist_ok=True)
    ct_paths = []
    ct_all = []
    for k, ds in enumerate(ct_datasets(study)):
        path = ct_dir / f"CT{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        ct_paths.append(str(path))
        meta = Dataset()  # header only (no pixels) for referencing
        for kw in (
            "SOPClassUID",
            "SOPInstanceUID",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "PatientID",
            "PatientName",
            "PatientBirthDate",
            "PatientSex",
            "StudyDate",
            "StudyTime",
            "StudyID",
            "AccessionNumber",
            "ReferringPhysicianName",
            "Modality",
            "FrameOfReferenceUID",
            "Rows",
            "Columns",
            "BitsAllocated",
            "BitsStored",
            "HighBit",
            "PixelRepresentation",
            "SamplesPerPixel",
            "PhotometricInterpretation",
            "RescaleIntercept",
            "RescaleSlope",
            "RescaleType",
            "InstanceNumber",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "SliceThickness",
            "SpecificCharacterSet",
            "StudyDescription",
        ):
            if kw in ds:
                setattr(meta, kw, ds.data_element(kw).value)
        ct_all.append(meta)
    ct_by_k = dict(enumerate(ct_all))
    sr = seed_sr(study, ct_by_k)
    sr_path = out / "seeds_sr.dcm"
    sr.save_as(sr_path, enforce_file_format=True)
    ps = seed_gsps(study, ct_all, ct_by_k)
    ps_path = out / "seeds_gsps.dcm"
    ps.save_as(ps_path, enforce_file_format=True)
    js_path = out / "seeds.json"
    js_path.write_text(json.dumps(seeds_json(study), indent=2, default=_json_default) + "\n")
    truth_path = out / "truth.json"
    truth_path.write_text(json.dumps(study.truth, indent=2, default=_json_default) + "\n")
    return {
        "ct": ct_paths,
        "ct_dir": str(ct_dir),
        "sr": str(sr_path),
        "gsps": str(ps_path),
        "seeds_json": str(js_path),
        "truth": str(truth_path),
    }
