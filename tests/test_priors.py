"""Prior studies: which index studies count as priors, and which series of a prior is compared."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian, generate_uid

from daemon.analysis.priors import PriorSeries, PriorStudy, lookback_window
from daemon.analysis.series import best_ct_series
from daemon.network.query_retrieve import PriorsUnavailable, query_pacs
from daemon.settings import PACSSettings
from daemon.storage.archive import Archive
from daemon.storage.db import open_index
from daemon.storage.queries import priors_in_index
from tests.support.ct_series import ct_slice
from tests.support.servers import free_port

CURRENT = dt.date(2026, 6, 1)


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def store_ct(
    archive: Archive,
    *,
    patient_id: str,
    study_date: str,
    n: int = 3,
    issuer: str | None = None,
    thickness_mm: float = 1.0,
    study_uid: str | None = None,
) -> str:
    """Archive a tiny CT series of a new (or given) study; returns the study UID."""
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    for i in range(n):
        ds = ct_slice(study_uid, series_uid, i, np.full((8, 8), i, dtype=np.int16), thickness_mm=thickness_mm)
        ds.PatientID = patient_id
        ds.StudyDate = study_date
        if issuer is not None:
            ds.IssuerOfPatientID = issuer
        archive.store(_encode(ds), calling_ae="TEST")
    return study_uid


def store_sr(
    archive: Archive, *, patient_id: str, study_date: str, manufacturer: str, study_uid: str | None = None
) -> str:
    """Archive one SR object (header only: the archive does not read the content tree)."""
    study_uid = study_uid or generate_uid()
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = patient_id
    ds.StudyDate = study_date
    ds.Modality = "SR"
    ds.Manufacturer = manufacturer
    ds.SeriesDescription = "Lung nodule report"
    archive.store(_encode(ds), calling_ae="TEST")
    return study_uid


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    return Archive(tmp_path / "archive", engine)


def test_priors_in_index_keeps_earlier_ct_and_our_reports_of_the_same_patient(archive: Archive) -> None:
    ct_2024 = store_ct(archive, patient_id="P1", study_date="20240601", n=3)
    ours_2025 = store_sr(archive, patient_id="P1", study_date="20250603", manufacturer="noduled")
    store_sr(archive, patient_id="P1", study_date="20250101", manufacturer="OtherVendor")  # not ours, no CT
    store_ct(archive, patient_id="P1", study_date="20140601")  # older than 10 years
    store_ct(archive, patient_id="P1", study_date="20260601")  # the current day: not a prior
    store_ct(archive, patient_id="P1", study_date="20270101")  # later
    store_ct(archive, patient_id="P2", study_date="20240601")  # another patient
    store_ct(archive, patient_id="P1", study_date="20240901", issuer="OTHER-HOSPITAL")  # another issuer's P1

    found = priors_in_index(archive.engine, patient_id="P1", issuer="", before=CURRENT)

    assert [s.study_uid for s in found] == [ours_2025, ct_2024]  # newest first
    assert all(s.source == "index" for s in found)
    report, ct = found
    assert report.study_date == dt.date(2025, 6, 3) and report.modalities == ("SR",)
    assert [s.manufacturer for s in report.our_reports] == ["noduled"]
    assert ct.study_date == dt.date(2024, 6, 1) and ct.modalities == ("CT",)
    assert ct.description == "LDCT LUNG SCREENING"
    (series,) = ct.series
    assert (series.modality, series.n_instances, series.slice_thickness_mm) == ("CT", 3, 1.0)
    assert series.description == "Lung 1.0" and series.convolution_kernel == "B30f"


def test_priors_in_index_lookback_and_issuer(archive: Archive) -> None:
    recent = store_ct(archive, patient_id="P1", study_date="20251201")
    store_ct(archive, patient_id="P1", study_date="20230601")
    other_issuer = store_ct(archive, patient_id="P1", study_date="20240901", issuer="OTHER-HOSPITAL")

    assert [
        s.study_uid
        for s in priors_in_index(archive.engine, patient_id="P1", issuer="", before=CURRENT, lookback_years=1)
    ] == [recent]
    assert [
        s.study_uid for s in priors_in_index(archive.engine, patient_id="P1", issuer="OTHER-HOSPITAL", before=CURRENT)
    ] == [other_issuer]
    assert priors_in_index(archive.engine, patient_id="NOBODY", issuer="", before=CURRENT) == []


def test_lookback_window_ends_the_day_before() -> None:
    assert lookback_window(CURRENT, 10) == (dt.date(2016, 6, 1), dt.date(2026, 5, 31))
    assert lookback_window(CURRENT, 0.5) == (dt.date(2025, 11, 30), dt.date(2026, 5, 31))
    with pytest.raises(ValueError, match="lookback_years must be more than 0"):
        lookback_window(CURRENT, 0)


def _series(
    uid: str,
    *,
    modality: str = "CT",
    description: str | None = None,
    thickness: float | None = 1.0,
    n: int | None = 300,
    kernel: str | None = None,
    manufacturer: str | None = "Vendor",
) -> PriorSeries:
    return PriorSeries(uid, modality, description, thickness, n, manufacturer, kernel)


def _study(*series: PriorSeries) -> PriorStudy:
    return PriorStudy(
        "1.2.3", dt.date(2025, 1, 1), "CT CHEST", tuple(sorted({s.modality for s in series})), "pacs", series
    )


def test_best_ct_series_none_without_ct() -> None:
    assert best_ct_series(_study(_series("sr", modality="SR", manufacturer="noduled"))) is None
    assert best_ct_series(_study()) is None


def test_best_ct_series_prefers_thin_axial_stack_over_thick_localizer_and_reformats() -> None:
    study = _study(
        _series("scout", description="Topogram 0.6 T20s", thickness=0.6, n=1),
        _series("thick", description="Thorax 5.0 B31f", thickness=5.0, n=70),
        _series("coronal", description="Lung COR 1.0", thickness=1.0, n=400, kernel="B70f"),
        _series("mip", description="MIP 10 mm", thickness=10.0, n=40),
        _series("thin", description="Thorax 1.0 B31f", thickness=1.0, n=350, kernel="B31f"),
        _series("sr", modality="SR", manufacturer="noduled"),
    )
    assert best_ct_series(study).series_uid == "thin"  # type: ignore[union-attr]


def test_best_ct_series_prefers_lung_reconstruction_among_thin_series() -> None:
    soft = _series("soft", description="Body 1.0", thickness=1.0, n=350, kernel="B30f")
    lung_by_kernel = _series("lung-k", description="Recon 2", thickness=1.0, n=350, kernel="B60f")
    lung_by_name = _series("lung-d", description="LUNG 1.0", thickness=1.0, n=350, kernel="STANDARD")
    assert best_ct_series(_study(soft, lung_by_kernel)).series_uid == "lung-k"  # type: ignore[union-attr]
    assert best_ct_series(_study(lung_by_name, soft)).series_uid == "lung-d"  # type: ignore[union-attr]
    # thin beats a lung kernel at 5 mm: volumetry needs thin slices
    thick_lung = _series("thick-lung", description="Lung 5.0", thickness=5.0, n=70, kernel="B70f")
    assert best_ct_series(_study(thick_lung, soft)).series_uid == "soft"  # type: ignore[union-attr]
    # the only CT series is returned even when it is not ideal
    assert best_ct_series(_study(thick_lung)).series_uid == "thick-lung"  # type: ignore[union-attr]


def test_query_pacs_when_nothing_listens_says_why_in_words() -> None:
    pacs = PACSSettings(ae_title="PACS", host="127.0.0.1", port=free_port())
    with pytest.raises(PriorsUnavailable) as err:
        query_pacs(pacs, calling_ae="NODULED", patient_id="P1", issuer=None, before=CURRENT, timeout_s=5)
    message = str(err.value)
    assert message.startswith("waiting for prior study from PACS: cannot connect to PACS at 127.0.0.1:")
    assert "refused" in message.lower()
    assert "P1" not in message


def test_series_to_fetch_is_the_best_ct_and_our_reports_not_yet_held() -> None:
    from daemon.analysis.priors import series_to_fetch

    remote = _study(
        _series("thick", description="Thorax 5.0", thickness=5.0, n=70),
        _series("thin", description="Lung 1.0", thickness=1.0, n=300, kernel="B60f"),
        _series("report", modality="SR", manufacturer="noduled", n=1),
        _series("seg", modality="SEG", manufacturer="noduled", n=1),
        _series("cad", modality="SR", manufacturer="OtherVendor", n=1),
    )
    assert series_to_fetch(remote) == ("thin", "report", "seg")
    # held completely: nothing to fetch; the CT cut short (120 of 300 images): fetched again
    complete = _study(
        _series("thin", n=300), _series("report", modality="SR", n=1), _series("seg", modality="SEG", n=1)
    )
    assert series_to_fetch(remote, complete) == ()
    partial = _study(_series("thin", n=120), _series("report", modality="SR", n=1))
    assert series_to_fetch(remote, partial) == ("thin", "seg")
    # a report-only prior (our earlier SR, its CT purged from the PACS)
    assert series_to_fetch(_study(_series("report", modality="SR", manufacturer="noduled", n=1))) == ("report",)
