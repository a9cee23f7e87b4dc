"""A plain CT series writer for the receiving-node tests and the receive benchmark.

The node's storage path does not look at pixels, so these are simple valid
CT Image objects (full 512x512 int16 frames with noise); the realistic chest
phantoms with ground truth come from :mod:`test_images`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_slice(study_uid: str, series_uid: str, index: int, pixels: np.ndarray, *, thickness_mm: float = 1.0) -> Dataset:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study_uid, "frame-of-reference"])
    ds.PatientName = "Test^Receive"
    ds.PatientID = "NODULED-TEST-1"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.StudyDate = "20260601"
    ds.StudyTime = "101010"
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "LDCT LUNG SCREENING"
    ds.Modality = "CT"
    ds.SeriesNumber = 2
    ds.SeriesDescription = "Lung 1.0"
    ds.Manufacturer = "noduled-tests"
    ds.InstanceNumber = index + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [-180.0, -180.0, -index * thickness_mm]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = thickness_mm
    ds.KVP = 120
    ds.ConvolutionKernel = "B30f"
    ds.CTDIvol = 1.2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.PixelData = pixels.astype("<i2").tobytes()
    return ds


def write_ct_series(out_dir: Path, n_slices: int, *, rows: int = 512, cols: int = 512, seed: int = 0) -> list[Path]:
    """Write ``n_slices`` CT images of one new series; returns the paths in slice order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    study_uid, series_uid = generate_uid(), generate_uid()
    base = rng.normal(-850, 40, size=(rows, cols)).astype(np.int16)
    paths = []
    for i in range(n_slices):
        pixels = np.roll(base, i * 7, axis=1)  # distinct content per slice, cheap
        pixels[0, 0] = i  # and distinct bytes for certain
        path = out_dir / f"ct{i:04d}.dcm"
        ct_slice(study_uid, series_uid, i, pixels).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
