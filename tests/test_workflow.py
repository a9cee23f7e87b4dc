"""daemon.workflow on SQLite with an injected clock: state transitions, stability, the lease, prior selection.

No Orthanc, no network, no pixels: the index rows are what the archive would write, the clock is
a fixed UTC time the test moves.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import Engine, insert, select

from daemon.analysis.priors import select_priors
from daemon.analysis.protocol import SiteDefaults
from daemon.analysis.sop_classes import CT_IMAGE_STORAGE
from daemon.storage.archive import Archive
from daemon.storage.db import open_index
from daemon.storage.schema import analyses, assessments, instances, nodule_observations, patients, series, studies
from daemon.workflow import state
from daemon.workflow.stability import StabilityMonitor
from daemon.workflow.state import LEASE, AnalysisState, StudyBusy
from daemon.workflow.study import NodeContext, PermanentError, analyze_study, prior_exams

T0 = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    yield engine
    engine.dispose()


def _study(conn, uid: str, date: dt.date, patient_pk: int, description: str = "LDCT LUNG SCREENING") -> int:  # type: ignore[no-untyped-def]
    return int(
        conn.execute(
            insert(studies).values(study_uid=uid, patient_pk=patient_pk, study_date=date, description=description)
        ).inserted_primary_key[0]
    )


def _instance(conn, series_pk: int, sop_class: str, received_at: dt.datetime) -> str:  # type: ignore[no-untyped-def]
    uid = generate_uid()
    conn.execute(
        insert(instances).values(
            sop_instance_uid=uid,
            series_pk=series_pk,
            sop_class_uid=sop_class,
            transfer_syntax_uid="1.2.840.10008.1.2.1",
            path=f"x/{uid}.dcm",
            size_bytes=1,
            received_at=received_at,
        )
    )
    return uid


def _series(conn, study_pk: int, modality: str, manufacturer: str | None = None) -> int:  # type: ignore[no-untyped-def]
    return int(
        conn.execute(
            insert(series).values(
                series_uid=generate_uid(), study_pk=study_pk, modality=modality, manufacturer=manufacturer
            )
        ).inserted_primary_key[0]
    )


def _received(engine: Engine, *, ct: int, seeds: int, at: dt.datetime, study_uid: str | None = None) -> str:
    """A study with ``ct`` CT images and ``seeds`` reader SRs, all received at ``at``."""
    study_uid = study_uid or generate_uid()
    with engine.begin() as conn:
        patient_pk = int(conn.execute(insert(patients).values(patient_id="P1", issuer="")).inserted_primary_key[0])
        study_pk = _study(conn, study_uid, at.date(), patient_pk)
        ct_pk = _series(conn, study_pk, "CT")
        for _ in range(ct):
            _instance(conn, ct_pk, CT_IMAGE_STORAGE, at)
        if seeds:
            sr_pk = _series(conn, study_pk, "SR", "OHIF")
            for _ in range(seeds):
                _instance(conn, sr_pk, COMPREHENSIVE_SR, at)
    return study_uid


def _state(engine: Engine, study_uid: str) -> str | None:
    row = state.current(engine, study_uid)
    return None if row is None else row.state


# ------------------------------------------------------------------ state machine
def test_a_stable_study_with_ct_and_a_seed_candidate_is_queued_once(engine: Engine) -> None:
    queued: list[str] = []
    monitor = StabilityMonitor(engine, queued.append, stable_age_s=30)
    uid = _received(engine, ct=3, seeds=1, at=T0)
    assert monitor.tick(T0 + dt.timedelta(seconds=10)) == []  # not stable yet
    assert _state(engine, uid) is None
    assert monitor.tick(T0 + dt.timedelta(seconds=31)) == [uid]
    assert _state(engine, uid) == AnalysisState.QUEUED and queued == [uid]
    assert monitor.tick(T0 + dt.timedelta(seconds=60)) == []  # nothing new: not queued again


def test_ct_without_seeds_awaits_seeds_and_a_late_seed_queues_it(engine: Engine) -> None:
    queued: list[str] = []
    monitor = StabilityMonitor(engine, queued.append, stable_age_s=30)
    uid = _received(engine, ct=3, seeds=0, at=T0)
    monitor.tick(T0 + dt.timedelta(seconds=31))
    assert _state(engine, uid) == AnalysisState.AWAITING_SEEDS and queued == []
    late = T0 + dt.timedelta(minutes=5)
    with engine.begin() as conn:
        study_pk = conn.execute(select(studies.c.id).where(studies.c.study_uid == uid)).scalar_one()
        _instance(conn, _series(conn, study_pk, "SR", "OHIF"), COMPREHENSIVE_SR, late)
    assert monitor.tick(late + dt.timedelta(seconds=5)) == []  # the new seed makes the study unstable again
    assert monitor.tick(late + dt.timedelta(seconds=31)) == [uid]
    assert _state(engine, uid) == AnalysisState.QUEUED


def test_our_own_reports_do_not_make_a_study_unstable_nor_ready(engine: Engine) -> None:
    queued: list[str] = []
    monitor = StabilityMonitor(engine, queued.append, stable_age_s=30)
    uid = _received(engine, ct=3, seeds=1, at=T0)
    monitor.tick(T0 + dt.timedelta(seconds=31))
    fingerprint = state.current(engine, uid).seeds_fingerprint  # of the seed candidates, set when queued
    state.claim(engine, uid, fingerprint, now=T0 + dt.timedelta(seconds=32))
    state.done(engine, uid, fingerprint, report_sop_uid="1.2.3", seg_sop_uid=None, now=T0 + dt.timedelta(seconds=40))
    with engine.begin() as conn:  # noduled's SR arrives in the same study
        study_pk = conn.execute(select(studies.c.id).where(studies.c.study_uid == uid)).scalar_one()
        _instance(conn, _series(conn, study_pk, "SR", "noduled"), COMPREHENSIVE_SR, T0 + dt.timedelta(seconds=41))
    assert monitor.tick(T0 + dt.timedelta(seconds=42)) == []
    assert monitor.tick(T0 + dt.timedelta(minutes=5)) == []
    assert _state(engine, uid) == AnalysisState.DONE and queued == [uid]


def test_the_lease_keeps_a_second_worker_out_until_it_runs_out(engine: Engine) -> None:
    uid = _received(engine, ct=1, seeds=1, at=T0)
    state.claim(engine, uid, "fp", now=T0)
    assert _state(engine, uid) == AnalysisState.RUNNING
    with pytest.raises(StudyBusy):
        state.claim(engine, uid, "fp", now=T0 + LEASE - dt.timedelta(seconds=1))
    state.claim(engine, uid, "fp", now=T0 + LEASE + dt.timedelta(seconds=1))  # the first worker died
    row = state.current(engine, uid)
    assert row.attempts == 2 and row.state == AnalysisState.RUNNING


def test_a_dead_workers_analysis_is_found_only_after_its_lease_and_queued_again(engine: Engine) -> None:
    queued: list[str] = []
    monitor = StabilityMonitor(engine, queued.append, stable_age_s=30)
    uid = _received(engine, ct=1, seeds=1, at=T0)
    state.claim(engine, uid, "fp", now=T0)
    assert state.interrupted(engine, all_running=False, now=T0 + LEASE - dt.timedelta(seconds=1)) == []
    assert state.interrupted(engine, all_running=False, now=T0 + LEASE + dt.timedelta(seconds=1)) == [uid]
    assert state.interrupted(engine, all_running=True, now=T0) == [uid]  # SQLite queue: a restart's leftovers
    assert monitor.resume(all_running=True) == [uid]
    assert _state(engine, uid) == AnalysisState.QUEUED and queued == [uid]


def test_waiting_for_priors_is_queued_again_and_failed_stays_failed_until_seeds_change(engine: Engine) -> None:
    uid = _received(engine, ct=1, seeds=1, at=T0)
    state.claim(engine, uid, "fp", now=T0)
    state.waiting_for_priors(engine, uid, "waiting for prior study from PACS: down", now=T0)
    row = state.current(engine, uid)
    assert row.state == AnalysisState.WAITING_PRIORS and row.lease_until is None
    assert state.requeue_waiting_for_priors(engine, now=T0) == [uid]
    assert _state(engine, uid) == AnalysisState.QUEUED
    state.claim(engine, uid, "fp", now=T0)
    state.failed(engine, uid, "no seeds", now=T0)
    assert _state(engine, uid) == AnalysisState.FAILED
    assert not state.consider(engine, uid, "fp", has_candidates=True, require_seeds=True, now=T0)
    assert state.consider(engine, uid, "fp2", has_candidates=True, require_seeds=True, now=T0)  # a new seed object
    assert _state(engine, uid) == AnalysisState.QUEUED


def test_every_state_written_is_one_of_the_enum(engine: Engine) -> None:
    uid = _received(engine, ct=1, seeds=0, at=T0)
    seen = set()
    state.consider(engine, uid, "fp", has_candidates=False, require_seeds=True, now=T0)
    seen.add(_state(engine, uid))
    for step in (
        lambda: state.consider(engine, uid, "fp", has_candidates=True, require_seeds=True, now=T0),
        lambda: state.claim(engine, uid, "fp", now=T0),
        lambda: state.waiting_for_priors(engine, uid, "x", now=T0),
        lambda: state.claim(engine, uid, "fp", now=T0),
        lambda: state.done(engine, uid, "fp", report_sop_uid="1.2.3", seg_sop_uid=None, now=T0),
        lambda: state.failed(engine, uid, "x", now=T0),
    ):
        step()
        seen.add(_state(engine, uid))
    assert seen == {s.value for s in AnalysisState} - {"new"}
    with engine.connect() as conn:
        assert {r for r in conn.execute(select(analyses.c.state)).scalars()} <= {s.value for s in AnalysisState}


# ------------------------------------------------------------------ errors
def test_an_unreadable_seed_object_fails_at_once_with_the_reason(engine: Engine, tmp_path: Path) -> None:
    from tests.support.ct_series import write_ct_series

    archive = Archive(tmp_path / "archive", engine)
    for path in write_ct_series(tmp_path / "ct", 2, rows=16, cols=16):
        archive.store(path.read_bytes(), calling_ae="CT")
    with engine.connect() as conn:
        study_uid, study_pk = conn.execute(select(studies.c.study_uid, studies.c.id)).one()
    with engine.begin() as conn:  # a seed candidate whose file is garbage (say, cut short on the reader's side)
        uid = _instance(conn, _series(conn, study_pk, "SR", "OHIF"), COMPREHENSIVE_SR, T0)
        path = conn.execute(select(instances.c.path).where(instances.c.sop_instance_uid == uid)).scalar_one()
    archive.path_of(path).parent.mkdir(parents=True, exist_ok=True)
    archive.path_of(path).write_bytes(b"\x00" * 10)
    with pytest.raises(PermanentError, match="not readable DICOM"):
        analyze_study(NodeContext(engine=engine, archive=archive, site=SiteDefaults()), study_uid)


def test_a_seed_object_of_another_patient_is_refused() -> None:
    from daemon.analysis.chain import AnalysisError, AnalysisInputs, analyze

    ct = Dataset()
    ct.SOPClassUID, ct.StudyInstanceUID, ct.SeriesInstanceUID = CT_IMAGE_STORAGE, "1.2.3", "1.2.3.4"
    ct.PatientID = "P1"
    seed = Dataset()
    seed.SOPInstanceUID, seed.PatientID = "1.2.3.9", "P2"
    with pytest.raises(AnalysisError, match="another patient"):
        analyze(AnalysisInputs(study_datasets=[ct], seed_objects=[seed]))


# ------------------------------------------------------------------ prior selection
@pytest.mark.parametrize(
    ("max_priors", "expected"),
    [(1, [0]), (2, [0, 4]), (4, [0, 2, 3, 4]), (5, [0, 1, 2, 3, 4]), (9, [0, 1, 2, 3, 4])],
)
def test_select_priors_keeps_the_earliest_and_the_most_recent(max_priors: int, expected: list[int]) -> None:
    assert select_priors(list(range(5)), max_priors) == expected


def test_select_priors_refuses_zero() -> None:
    with pytest.raises(ValueError, match="max_priors"):
        select_priors([1, 2], 0)


@pytest.mark.parametrize(
    ("max_priors", "expected_years"),
    [(1, [2019]), (2, [2019, 2025]), (4, [2019, 2023, 2024, 2025])],
)
def test_prior_exams_of_a_follow_up_are_the_right_ones_for_max_priors(
    engine: Engine, tmp_path: Path, max_priors: int, expected_years: list[int]
) -> None:
    """Five reported rounds (2019, 2021, 2023-2025) before a 2026 exam, plus one outside the look-back."""
    with engine.begin() as conn:
        patient_pk = int(conn.execute(insert(patients).values(patient_id="P1", issuer="")).inserted_primary_key[0])
        for year in (2014, 2019, 2021, 2023, 2024, 2025):
            uid = f"1.2.826.0.1.{year}"
            _study(conn, uid, dt.date(year, 6, 1), patient_pk)
            sr = f"{uid}.9"
            conn.execute(
                insert(assessments).values(
                    study_uid=uid,
                    report_sop_uid=sr,
                    category="2",
                    assessment_json="{}",
                    created_at=T0,
                )
            )
            conn.execute(
                insert(nodule_observations).values(
                    report_sop_uid=sr,
                    study_uid=uid,
                    patient_pk=patient_pk,
                    tracking_uid="1.2.826.0.1.7",
                    tracking_id="Nodule 1",
                    exam_date=dt.date(year, 6, 1),
                    volume_mm3=100.0,
                    mean_diameter_mm=5.0,
                    category="2",
                    centroid_x_mm=1.0,
                    centroid_y_mm=2.0,
                    centroid_z_mm=3.0,
                    derived=0,
                )
            )
        _study(conn, "1.2.826.0.1.2026", dt.date(2026, 6, 1), patient_pk)
    ctx = NodeContext(
        engine=engine,
        archive=Archive(tmp_path / "archive", engine),
        site=SiteDefaults(),
        lookback_years=10,
        max_priors=max_priors,
    )
    priors = prior_exams(ctx, "1.2.826.0.1.2026")
    assert [p.exam_date.year for p in priors] == expected_years  # oldest first, each once
    assert all(p.reported and p.reported[0].tracking_id == "Nodule 1" for p in priors)


# ------------------------------------------------------------------ tracking identity
def test_one_identity_rule_keeps_carried_nodules_and_numbers_new_ones_after_all_earlier() -> None:
    from daemon.analysis.identity import assign_identities
    from dicom_sr.findings import NoduleFinding, Seed
    from segmentation.types import Characterization

    seed = Seed(position_lps_mm=(0.0, 0.0, 0.0), series_uid=None, source="json")
    found = [
        NoduleFinding(
            tracking_id="", tracking_uid=f"1.2.{k}", seed=seed, measurement=None, characterization=Characterization()
        )
        for k in range(3)
    ]
    out = assign_identities(found, {1: ("Nodule 2", "1.9.2")}, ["Nodule 1", "Nodule 2", "Nodule 5"])
    assert [(f.tracking_id, f.tracking_uid) for f in out] == [
        ("Nodule 6", "1.2.0"),
        ("Nodule 2", "1.9.2"),
        ("Nodule 7", "1.2.2"),
    ]
