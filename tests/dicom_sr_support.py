"""Small synthetic inputs for the dicom_sr tests.

A tiny CT series (64 x 64 int16 slices, full CT Image IOD headers made with
pydicom) with two spherical "nodules", and the NoduleMeasurement /
NoduleFinding / ExamAssessment objects that describe them, built directly
(no segmentation code involved).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from dicom_sr.findings import ExamAssessment, NoduleFinding, Participant, PriorComparison, ReaderAttributes, Seed
from segmentation.types import (
    Characteristic,
    Characterization,
    MeasurementQuality,
    NoduleMask,
    NoduleMeasurement,
)

ROWS = COLS = 64
PIXEL_MM = 0.7
SLICE_MM = 1.25
ORIGIN = (-22.05, -30.05, -100.0)  # LPS of the centre of pixel (0, 0) of slice 0


def make_ct_series(
    n_slices: int = 12,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    seed: str = "ct",
    study_date: str = "20250310",
    rotated: bool = False,
) -> list[Dataset]:
    """A valid little CT series, slices sorted by ascending z (= volume slice k)."""
    study_uid = study_uid or generate_uid(entropy_srcs=[seed, "study"])
    series_uid = series_uid or generate_uid(entropy_srcs=[seed, "series"])
    for_uid = generate_uid(entropy_srcs=[seed, "for"])
    zz, yy, xx = np.mgrid[0:n_slices, 0:ROWS, 0:COLS]
    volume = np.full((n_slices, ROWS, COLS), -850, np.int16)
    for (cz, cy, cx), r in (((5, 20, 22), 4.0), ((6, 40, 44), 3.0)):
        d = np.sqrt(((zz - cz) * SLICE_MM) ** 2 + ((yy - cy) * PIXEL_MM) ** 2 + ((xx - cx) * PIXEL_MM) ** 2)
        volume[d <= r] = 30
    iop = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    if rotated:  # slightly oblique rows, to exercise the geometry
        a = np.deg2rad(10)
        iop = [float(np.cos(a)), float(np.sin(a)), 0.0, float(-np.sin(a)), float(np.cos(a)), 0.0]
    out = []
    for k in range(n_slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[seed, "sop", str(k)])
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.StudyDate = study_date
        ds.SeriesDate = study_date
        ds.ContentDate = study_date
        ds.StudyTime = "101500"
        ds.SeriesTime = "101500"
        ds.ContentTime = "101500"
        ds.AccessionNumber = "ACC0001"
        ds.Modality = "CT"
        ds.Manufacturer = "Synthetic"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "LDCT lung screening"
        ds.SeriesDescription = "Lung 1.25"
        ds.PatientName = "Test^Patient"
        ds.PatientID = "TEST0001"
        ds.PatientBirthDate = "19600101"
        ds.PatientSex = "F"
        ds.BodyPartExamined = "CHEST"
        ds.KVP = "120"
        ds.SliceThickness = f"{SLICE_MM}"
        ds.PatientPosition = "FFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 2
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + k * SLICE_MM]
        ds.ImageOrientationPatient = iop
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = ORIGIN[2] + k * SLICE_MM
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ROWS
        ds.Columns = COLS
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = "-600"
        ds.WindowWidth = "1500"
        ds.AcquisitionNumber = 1
        ds.PixelData = volume[k].tobytes()
        out.append(ds)
    return out


def lps(ct: list[Dataset], k: float, row: float, col: float) -> tuple[float, float, float]:
    """LPS of voxel (k, row, col) of the synthetic volume."""
    ipp = np.asarray(ct[0].ImagePositionPatient, float)
    iop = np.asarray(ct[0].ImageOrientationPatient, float)
    p = ipp + iop[:3] * PIXEL_MM * col + iop[3:] * PIXEL_MM * row + np.array([0, 0, SLICE_MM]) * k
    return (float(p[0]), float(p[1]), float(p[2]))


def _mask(center_zyx, radius_mm, n_slices=12):
    zz, yy, xx = np.mgrid[0:n_slices, 0:ROWS, 0:COLS]
    cz, cy, cx = center_zyx
    d = np.sqrt(((zz - cz) * SLICE_MM) ** 2 + ((yy - cy) * PIXEL_MM) ** 2 + ((xx - cx) * PIXEL_MM) ** 2)
    full = d <= radius_mm
    idx = np.argwhere(full)
    lo, hi = idx.min(0), idx.max(0) + 1
    return NoduleMask(tuple(int(v) for v in lo), full[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].copy())


def make_measurement(ct, center_zyx, radius_mm, *, solid=False) -> NoduleMeasurement:
    cz, cy, cx = center_zyx
    r_px = radius_mm / PIXEL_MM
    mask = _mask(center_zyx, radius_mm, len(ct))
    vol = float(mask.mask.sum() * PIXEL_MM * PIXEL_MM * SLICE_MM)
    return NoduleMeasurement(
        volume_mm3=vol + 0.37,
        mean_diameter_mm=2 * radius_mm + 0.0432,
        long_axis_mm=2 * radius_mm + 0.26,
        short_axis_mm=2 * radius_mm - 0.31,
        measurement_plane="axial",
        long_axis_endpoints_lps_mm=(lps(ct, cz, cy, cx - r_px), lps(ct, cz, cy, cx + r_px)),
        short_axis_endpoints_lps_mm=(lps(ct, cz, cy - r_px * 0.9, cx), lps(ct, cz, cy + r_px * 0.9, cx)),
        max_axial_diameter_mm=2 * radius_mm + 0.33,
        mean_hu=27.6,
        centroid_lps_mm=lps(ct, cz, cy, cx),
        solid_volume_mm3=(vol * 0.4 + 0.6) if solid else None,
        solid_mean_diameter_mm=(radius_mm + 0.123) if solid else None,
        mask=mask,
        quality=MeasurementQuality(juxtapleural_cut_applied=solid, reasons=("cut at pleura",) if solid else ()),
    )


def make_assessment(ct: list[Dataset], *, with_prior: bool = True) -> ExamAssessment:
    """Two nodules: a solid one with a prior comparison, a part-solid one (reader label)."""
    study_uid = str(ct[0].StudyInstanceUID)
    m1 = make_measurement(ct, (5, 20, 22), 4.0)
    m2 = make_measurement(ct, (6, 40, 44), 3.0, solid=True)
    prior_m = NoduleMeasurement(
        volume_mm3=180.4,
        mean_diameter_mm=7.04,
        long_axis_mm=7.6,
        short_axis_mm=6.5,
        measurement_plane="axial",
        long_axis_endpoints_lps_mm=((0.0, 0.0, 0.0), (7.6, 0.0, 0.0)),
        short_axis_endpoints_lps_mm=((3.8, -3.25, 0.0), (3.8, 3.25, 0.0)),
        max_axial_diameter_mm=7.7,
        mean_hu=20.0,
        centroid_lps_mm=(3.8, 0.0, 0.0),
    )
    comparisons = (
        (
            PriorComparison(
                prior_study_uid="1.2.826.0.1.3680043.8.498.1001",
                prior_study_date=dt.date(2024, 3, 12),
                prior_measurement=prior_m,
                days_between=363,
                volume_change_pct=47.123,
                vdt_days=650.4,
                diameter_change_mm=0.9632,
                growth_status="growing",
                prior_category="2",
                prior_category_derived=True,
                is_comparison_study=True,
            ),
            PriorComparison(
                prior_study_uid="1.2.826.0.1.3680043.8.498.1000",
                prior_study_date=dt.date(2023, 3, 1),
                prior_measurement=None,
                days_between=740,
                volume_change_pct=None,
                vdt_days=None,
                diameter_change_mm=None,
                growth_status=None,
            ),
        )
        if with_prior
        else ()
    )
    seed1 = Seed(
        position_lps_mm=lps(ct, 5, 20, 22),
        series_uid=str(ct[0].SeriesInstanceUID),
        source="sr",
        label="Nodule A spiculated",
        reader="Reader^Rita",
        attributes=ReaderAttributes(spiculated=True),
        referenced_sop_instance_uid=str(ct[5].SOPInstanceUID),
        tracking_id="cornerstoneTools@^4.0.0:Length",
        tracking_uid="2.25.1234567890",
        seed_object_uid="2.25.987654321",
    )
    f1 = NoduleFinding(
        tracking_id="Nodule 1",
        tracking_uid=generate_uid(entropy_srcs=["test", "nodule-1"]),
        seed=seed1,
        measurement=m1,
        characterization=Characterization(
            composition=Characteristic("solid", "algorithm", 0.91),
            benign_calcification=Characteristic(False, "algorithm", 0.88),
            juxtapleural=Characteristic(False, "algorithm"),
            lobe=Characteristic("RUL", "algorithm"),
            upper_lobe=Characteristic(True, "algorithm"),
            pleural_distance_mm=Characteristic(12.46, "algorithm"),
            spiculated=Characteristic(True, "reader"),
        ),
        comparisons=comparisons,
        status="growing" if with_prior else "baseline",
        pancan_risk_pct=3.4567,
        category="4",
        rule="Table 3 row 4: solid, growing",
    )
    f2 = NoduleFinding(
        tracking_id="Nodule 2",
        tracking_uid=generate_uid(entropy_srcs=["test", "nodule-2"]),
        seed=None,
        measurement=m2,
        characterization=Characterization(
            composition=Characteristic("part-solid", "reader"),
            perifissural=Characteristic(False, "algorithm"),
            airway=Characteristic("subsegmental", "reader"),
            cyst=Characteristic("thin-walled", "algorithm", 0.5),
            lobe=Characteristic("LLL", "algorithm"),
        ),
        status="new" if with_prior else "baseline",
        pancan_risk_pct=1.2,
        category="3",
        rule="Table 4 row 2",
    )
    return ExamAssessment(
        study_uid=study_uid,
        exam_date=dt.date(2025, 3, 10),
        screening_round="follow-up" if with_prior else "baseline",
        category="4",
        additional_findings=True,
        descriptor="High risk",
        management="Refer to respiratory physician; consider PET-CT.",
        follow_up_months=3,
        due_date=dt.date(2025, 6, 10),
        decisive_tracking_uid=f1.tracking_uid,
        findings=(f1, f2),
        participant=Participant(age_years=65, sex="F", family_history_lung_cancer=True, emphysema=False),
        series_uid=str(ct[0].SeriesInstanceUID),
        reasons=("note 15: actionable additional finding",),
        notes=("test case",),
    )


def write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    """Error lines that dciodvfy reports for a file (warnings are ignored)."""
    exe = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (proc.stdout + proc.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def image_header(
    sop_uid: str,
    *,
    ipp=(-100.0, -120.0, -50.0),
    iop=None,
    spacing=(0.6, 0.8),
    rows=4096,
    cols=4096,
    series_uid="1.2.826.0.1.3680043.8.498.77",
) -> Dataset:
    """A bare image header (geometry only) for an image a third-party object references."""
    if iop is None:  # oblique, so that a wrong axis convention shows
        a = np.deg2rad(20)
        iop = [float(np.cos(a)), 0.0, float(-np.sin(a)), 0.0, 1.0, 0.0]
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = series_uid
    ds.ImagePositionPatient = list(ipp)
    ds.ImageOrientationPatient = list(iop)
    ds.PixelSpacing = list(spacing)
    ds.Rows, ds.Columns = rows, cols
    return ds


def expected_lps(header: Dataset, column: float, row: float) -> np.ndarray:
    """Where SCOORD (column, row) of ``header`` is, computed from PS3.3 C.7.6.2.1.1 directly."""
    s = np.asarray(header.ImagePositionPatient, float)
    iop = np.asarray(header.ImageOrientationPatient, float)
    dr, dc = (float(v) for v in header.PixelSpacing)
    m = np.column_stack([iop[:3] * dc, iop[3:] * dr])  # (3, 2): pixel (i, j) -> mm
    return s + m @ np.array([column - 0.5, row - 0.5])
