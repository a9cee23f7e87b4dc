"""Prior studies against a real Orthanc: C-FIND, C-GET into an archive, C-MOVE to a running noduled, PACS down."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian, generate_uid

from daemon.analysis.priors import series_to_fetch
from daemon.analysis.series import best_ct_series
from daemon.network.query_retrieve import PriorsUnavailable, query_pacs, retrieve
from daemon.settings import PACSSettings
from daemon.storage.archive import Archive, RejectedInstance
from daemon.storage.db import open_index
from daemon.storage.queries import priors_in_index
from tests.support.ct_series import ct_slice

pytestmark = pytest.mark.integration

CURRENT = dt.date(2026, 6, 1)
SCU = "PRIORSCU"


@dataclass
class Study:
    uid: str
    files: dict[str, bytes] = field(default_factory=dict)  # SOP Instance UID -> encoded file
    series: dict[str, list[str]] = field(default_factory=dict)  # series UID -> SOP Instance UIDs


def _encode(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_study(
    patient_id: str,
    study_date: str,
    ct_series: list[tuple[str, float, int]],
    *,
    seed: int,
    sr_manufacturer: str | None = None,
    issuer: str = "HOSP-A",
) -> Study:
    """A small study: CT series given as (description, thickness mm, n slices), optionally one SR."""
    study = Study(generate_uid())
    rng = np.random.default_rng(seed)
    for number, (description, thickness_mm, n) in enumerate(ct_series, start=2):
        series_uid = generate_uid()
        for i in range(n):
            ds = ct_slice(
                study.uid,
                series_uid,
                i,
                rng.integers(-1000, 400, size=(16, 16)).astype(np.int16),
                thickness_mm=thickness_mm,
            )
            ds.PatientID = patient_id
            ds.IssuerOfPatientID = issuer
            ds.StudyDate = study_date
            ds.SeriesNumber = number
            ds.SeriesDescription = description
            study.files[ds.SOPInstanceUID] = _encode(ds)
            study.series.setdefault(series_uid, []).append(ds.SOPInstanceUID)
    if sr_manufacturer is not None:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ComprehensiveSRStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = ComprehensiveSRStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study.uid
        ds.SeriesInstanceUID = generate_uid()
        ds.PatientID = patient_id
        ds.IssuerOfPatientID = issuer
        ds.PatientName = "Test^Prior"
        ds.StudyDate = study_date
        ds.Modality = "SR"
        ds.SeriesNumber = 900
        ds.SeriesDescription = "Lung nodule report"
        ds.Manufacturer = sr_manufacturer
        study.files[ds.SOPInstanceUID] = _encode(ds)
        study.series[ds.SeriesInstanceUID] = [ds.SOPInstanceUID]
    return study


@dataclass
class Holdings:
    first: Study  # 2024-06-01, two CT series
    second: Study  # 2025-06-01, CT + a noduled SR
    report_only: Study  # 2025-12-01, only a noduled SR
    foreign_sr: Study  # 2025-09-01, only another vendor's SR: not a prior
    too_old: Study  # 2014-06-01
    current: Study  # 2026-06-01: the current study itself
    other_patient: Study  # 2025-06-01, patient PRI-2
    other_issuer: Study  # 2025-03-01, a PRI-1 of another hospital (issuer HOSP-B)


def fill_pacs(pacs) -> Holdings:  # type: ignore[no-untyped-def]
    h = Holdings(
        first=make_study("PRI-1", "20240601", [("Lung 1.0", 1.0, 4), ("Thorax 5.0", 5.0, 2)], seed=1),
        second=make_study("PRI-1", "20250601", [("Lung 1.0", 1.0, 3)], seed=2, sr_manufacturer="noduled"),
        report_only=make_study("PRI-1", "20251201", [], seed=3, sr_manufacturer="noduled"),
        foreign_sr=make_study("PRI-1", "20250901", [], seed=4, sr_manufacturer="OtherVendor"),
        too_old=make_study("PRI-1", "20140601", [("Lung 1.0", 1.0, 2)], seed=5),
        current=make_study("PRI-1", "20260601", [("Lung 1.0", 1.0, 2)], seed=6),
        other_patient=make_study("PRI-2", "20250601", [("Lung 1.0", 1.0, 2)], seed=7),
        other_issuer=make_study("PRI-1", "20250301", [("Lung 1.0", 1.0, 2)], seed=8, issuer="HOSP-B"),
    )
    for study in vars(h).values():
        for data in study.files.values():
            pacs.rest("POST", "/instances", data)
    return h


def settings_of(pacs, retrieve: str = "c-get") -> PACSSettings:  # type: ignore[no-untyped-def]
    return PACSSettings(ae_title=pacs.aet, host="127.0.0.1", port=pacs.dicom_port, retrieve=retrieve)  # type: ignore[arg-type]


def test_query_pacs_finds_the_earlier_ct_studies_and_our_reports_with_their_series(orthanc) -> None:  # type: ignore[no-untyped-def]
    pacs = orthanc({SCU: [SCU, "127.0.0.1", 104]})
    h = fill_pacs(pacs)
    cfg = settings_of(pacs)

    found = query_pacs(cfg, calling_ae=SCU, patient_id="PRI-1", issuer="HOSP-A", before=CURRENT)
    assert [s.study_uid for s in found] == [h.report_only.uid, h.second.uid, h.first.uid]  # newest first
    assert [s.study_date for s in found] == [dt.date(2025, 12, 1), dt.date(2025, 6, 1), dt.date(2024, 6, 1)]
    assert all(s.source == "pacs" for s in found)
    report_only, second, first = found

    assert report_only.modalities == ("SR",) and [s.series_uid for s in report_only.our_reports] == list(
        h.report_only.series
    )
    assert second.modalities == ("CT", "SR") and len(second.our_reports) == 1

    # series described: modality, description, instance count, thickness, manufacturer
    by_uid = {s.series_uid: s for s in first.series}
    assert set(by_uid) == set(h.first.series)
    thin_uid, thick_uid = list(h.first.series)
    thin, thick = by_uid[thin_uid], by_uid[thick_uid]
    assert (thin.modality, thin.description, thin.n_instances) == ("CT", "Lung 1.0", 4)
    assert (thick.modality, thick.description, thick.n_instances) == ("CT", "Thorax 5.0", 2)
    assert thin.slice_thickness_mm == 1.0 and thick.slice_thickness_mm == 5.0
    assert thin.manufacturer == "noduled-tests"
    assert best_ct_series(first) == thin
    assert best_ct_series(report_only) is None

    # the look-back bounds the search
    recent = query_pacs(cfg, calling_ae=SCU, patient_id="PRI-1", issuer="HOSP-A", before=CURRENT, lookback_years=1)
    assert [s.study_uid for s in recent] == [h.report_only.uid, h.second.uid]
    old = query_pacs(cfg, calling_ae=SCU, patient_id="PRI-1", issuer="HOSP-A", before=dt.date(2015, 1, 1))
    assert [s.study_uid for s in old] == [h.too_old.uid]
    # issuer unknown: every PRI-1 counts, the other hospital's too
    any_issuer = query_pacs(cfg, calling_ae=SCU, patient_id="PRI-1", issuer=None, before=CURRENT)
    assert [s.study_uid for s in any_issuer] == [h.report_only.uid, h.second.uid, h.other_issuer.uid, h.first.uid]
    # no such patient; and a Patient ID that looks like a wildcard matches only itself
    assert query_pacs(cfg, calling_ae=SCU, patient_id="PRI-3", issuer=None, before=CURRENT) == []
    assert query_pacs(cfg, calling_ae=SCU, patient_id="PRI-?", issuer=None, before=CURRENT) == []


def test_retrieve_c_get_stores_every_instance_in_the_archive(orthanc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pacs = orthanc({SCU: [SCU, "127.0.0.1", 104]})
    h = fill_pacs(pacs)
    archive = Archive(tmp_path / "archive", open_index(f"sqlite:///{tmp_path / 'index.sqlite'}"))
    cfg = settings_of(pacs)

    # query, choose, fetch: only the best series of the prior (the 1 mm one)
    prior = next(
        s
        for s in query_pacs(cfg, calling_ae=SCU, patient_id="PRI-1", issuer="HOSP-A", before=CURRENT)
        if s.study_uid == h.first.uid
    )
    thin_uid = list(h.first.series)[0]
    assert series_to_fetch(prior) == (thin_uid,)
    result = retrieve(
        cfg,
        calling_ae=SCU,
        study_uid=h.first.uid,
        series_uids=series_to_fetch(prior),
        method="c-get",
        store=archive.store,
    )
    assert (result.completed, result.failed, result.warning) == (4, 0, 0) and result.complete
    (local,) = priors_in_index(archive.engine, patient_id="PRI-1", issuer="HOSP-A", before=CURRENT)
    assert [s.series_uid for s in local.series] == [thin_uid] and series_to_fetch(prior, local) == ()

    # the whole study (the thin series again: kept once) and a study with our SR
    result = retrieve(cfg, calling_ae=SCU, study_uid=h.first.uid, method="c-get", store=archive.store)
    assert (result.completed, result.failed) == (6, 0)
    result = retrieve(cfg, calling_ae=SCU, study_uid=h.second.uid, method="c-get", store=archive.store)
    assert (result.completed, result.failed) == (4, 0)

    # an instance this node refuses is counted, not hidden; the rest is stored
    refused_uid = h.other_issuer.series[list(h.other_issuer.series)[0]][0]

    def picky_store(data: bytes) -> None:
        if refused_uid.encode() in data:
            raise RejectedInstance(0xA700, "less than 1024 MB free in /var/noduled")
        archive.store(data)

    result = retrieve(cfg, calling_ae=SCU, study_uid=h.other_issuer.uid, method="c-get", store=picky_store)
    assert (result.completed, result.failed) == (1, 1) and not result.complete
    assert "this node refused 1 instances: less than 1024 MB free" in result.message

    for study in (h.first, h.second):
        for series_uid, sop_uids in study.series.items():
            for sop_uid in sop_uids:
                got = dcmread(archive.path_of(archive.relative_path(study.uid, series_uid, sop_uid)))
                sent = dcmread(io.BytesIO(study.files[sop_uid]))
                assert got.SOPInstanceUID == sop_uid
                if "PixelData" in sent:
                    assert got.PixelData == sent.PixelData
    # the archive now answers the same question locally
    local = priors_in_index(archive.engine, patient_id="PRI-1", issuer="HOSP-A", before=CURRENT)
    assert [s.study_uid for s in local] == [h.second.uid, h.first.uid]
    assert {s.series_uid: s.n_instances for s in local[1].series} == {uid: len(v) for uid, v in h.first.series.items()}


def test_retrieve_c_move_lands_every_instance_in_a_running_noduled(orthanc, noduled_server) -> None:  # type: ignore[no-untyped-def]
    node = noduled_server({"scp": {"allowed_peers": [{"ae_title": "ORTHANC", "host": "127.0.0.1"}]}}, start=False)
    pacs = orthanc({node.ae_title: [node.ae_title, "127.0.0.1", node.port]})
    node.start()
    h = fill_pacs(pacs)
    cfg = settings_of(pacs, "c-move")

    result = retrieve(
        cfg, calling_ae=node.ae_title, study_uid=h.first.uid, method="c-move", move_destination=node.ae_title
    )
    assert (result.completed, result.failed, result.warning) == (6, 0, 0)

    (study,) = node.status()["studies"]
    assert study["study_uid"] == h.first.uid and study["instances"] == 6
    assert {s["series_uid"]: s["instances"] for s in study["series"]} == {
        uid: len(v) for uid, v in h.first.series.items()
    }
    for series_uid, sop_uids in h.first.series.items():
        for sop_uid in sop_uids:
            got = dcmread(node.data_dir / "archive" / h.first.uid / series_uid / f"{sop_uid}.dcm")
            assert got.PixelData == dcmread(io.BytesIO(h.first.files[sop_uid])).PixelData

    # a destination the PACS does not know: refused in words, nothing half done
    with pytest.raises(PriorsUnavailable, match="move destination NOBODY"):
        retrieve(cfg, calling_ae=node.ae_title, study_uid=h.second.uid, method="c-move", move_destination="NOBODY")


def test_pacs_down_or_unknown_caller_raises_priors_unavailable(orthanc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pacs = orthanc({SCU: [SCU, "127.0.0.1", 104]})
    cfg = settings_of(pacs)
    archive = Archive(tmp_path / "archive", open_index(f"sqlite:///{tmp_path / 'index.sqlite'}"))

    # a calling AE the PACS does not know may not query
    with pytest.raises(PriorsUnavailable, match="^waiting for prior study from PACS: ") as err:
        query_pacs(cfg, calling_ae="STRANGER", patient_id="PRI-1", issuer=None, before=CURRENT, timeout_s=10)
    assert "is STRANGER allowed to query and retrieve" in str(err.value) and "PRI-1" not in str(err.value)
    with pytest.raises(PriorsUnavailable, match="is STRANGER allowed to query and retrieve"):
        retrieve(cfg, calling_ae="STRANGER", study_uid="1.2.3", method="c-get", store=archive.store, timeout_s=10)

    pacs.stop()
    with pytest.raises(
        PriorsUnavailable,
        match=r"^waiting for prior study from PACS: cannot connect to ORTHANC at 127\.0\.0\.1:\d+ \(Connection refused\)",
    ):
        query_pacs(cfg, calling_ae=SCU, patient_id="PRI-1", issuer=None, before=CURRENT, timeout_s=5)
    for method in ("c-get", "c-move"):
        with pytest.raises(PriorsUnavailable, match="cannot connect to ORTHANC"):
            retrieve(cfg, calling_ae=SCU, study_uid="1.2.3", method=method, store=archive.store, timeout_s=5)  # type: ignore[arg-type]
