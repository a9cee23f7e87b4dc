"""daemon.workflow for scale-out and late data, on SQLite with an injected clock (issue 18).

The index is the source of truth and the queue only a wake-up: a lost job is found again by the
sweeper, a dead worker's lease runs out within 30 s, a second job for an analysed study does
nothing, late CT slices make the study ready again, an association release makes a study ready
after a short quiet time instead of ``stable_age_s``.  Also the shared configuration a worker
adopts or refuses, and the start-up errors an operator sees.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from daemon.analysis.sop_classes import CT_IMAGE_STORAGE
from daemon.settings import ConfigError, Destination, Settings, SiteSettings
from daemon.storage.schema import patients, studies
from daemon.workflow import shared_config, state
from daemon.workflow.stability import LOST_JOB_AFTER, StabilityMonitor
from daemon.workflow.state import HEARTBEAT, LEASE, AnalysisState, StudyBusy
from tests.test_workflow import COMPREHENSIVE_SR, T0, _instance, _series, _state, _study

S = dt.timedelta(seconds=1)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    from daemon.storage.db import open_index

    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    yield engine
    engine.dispose()


def _received(engine: Engine, *, ct: int, seeds: int, at: dt.datetime) -> str:
    """A study of a new patient with ``ct`` CT images and ``seeds`` reader SRs, all received at ``at``."""
    from pydicom.uid import generate_uid

    study_uid = generate_uid()
    with engine.begin() as conn:
        patient_pk = int(
            conn.execute(insert(patients).values(patient_id=study_uid[-12:], issuer="")).inserted_primary_key[0]
        )
        study_pk = _study(conn, study_uid, at.date(), patient_pk)
        ct_pk = _series(conn, study_pk, "CT")
        for _ in range(ct):
            _instance(conn, ct_pk, CT_IMAGE_STORAGE, at)
        if seeds:
            sr_pk = _series(conn, study_pk, "SR", "OHIF")
            for _ in range(seeds):
                _instance(conn, sr_pk, COMPREHENSIVE_SR, at)
    return study_uid


def _queued(engine: Engine, monitor: StabilityMonitor, *, ct: int = 3) -> str:
    uid = _received(engine, ct=ct, seeds=1, at=T0)
    assert monitor.tick(T0 + 31 * S) == [uid]
    return uid


def _fingerprint(engine: Engine, uid: str) -> str:
    return str(state.current(engine, uid).seeds_fingerprint)


def _add_ct(engine: Engine, uid: str, at: dt.datetime) -> None:
    with engine.begin() as conn:
        study_pk = conn.execute(select(studies.c.id).where(studies.c.study_uid == uid)).scalar_one()
        _instance(conn, _series(conn, study_pk, "CT"), CT_IMAGE_STORAGE, at)


# ------------------------------------------------------------ lost jobs, dead workers
def test_a_queued_study_whose_job_was_lost_is_queued_again_by_the_sweeper(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=30)
    uid = _queued(engine, monitor)
    jobs.clear()  # Redis restarted without persistence: the job is gone, the index still says queued
    assert monitor.sweep(T0 + 31 * S + LOST_JOB_AFTER - S) == []  # a worker may simply be busy
    assert monitor.sweep(T0 + 31 * S + LOST_JOB_AFTER) == [uid]
    assert jobs == [uid] and _state(engine, uid) == AnalysisState.QUEUED
    assert monitor.sweep(T0 + 31 * S + LOST_JOB_AFTER + 5 * S) == []  # not every sweep: once per LOST_JOB_AFTER


def test_a_study_waiting_behind_other_jobs_is_not_queued_twice(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=30, queue_depth=lambda: len(jobs))
    uid = _queued(engine, monitor)
    later = T0 + 31 * S + 3 * LOST_JOB_AFTER  # a burst: the workers are busy for minutes
    assert monitor.sweep(later) == [] and jobs == [uid]  # its job is still in the queue: no duplicate
    jobs.clear()  # the queue restarted without persistence: nothing waits, the study is lost
    assert monitor.sweep(later + S) == [uid] and jobs == [uid]


def test_a_queue_unreachable_when_the_study_became_ready_is_caught_up_by_the_sweeper(engine: Engine) -> None:
    jobs: list[str] = []
    down = True

    def enqueue(uid: str) -> None:
        if down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        jobs.append(uid)

    monitor = StabilityMonitor(engine, enqueue, stable_age_s=30)
    uid = _received(engine, ct=3, seeds=1, at=T0)
    monitor.tick(T0 + 31 * S)  # no exception out of the tick: logged, the study stays queued in the index
    assert _state(engine, uid) == AnalysisState.QUEUED and jobs == []
    down = False
    assert monitor.sweep(T0 + 31 * S + LOST_JOB_AFTER) == [uid] and jobs == [uid]


def test_a_killed_workers_study_is_queued_again_within_a_minute_and_a_live_one_keeps_it(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=30)
    dead, alive = _queued(engine, monitor), _received(engine, ct=3, seeds=1, at=T0)
    monitor.tick(T0 + 31 * S)
    jobs.clear()
    t = T0 + 40 * S
    state.claim(engine, dead, _fingerprint(engine, dead), now=t)
    state.claim(engine, alive, _fingerprint(engine, alive), now=t)
    for beat in range(1, 7):  # the live worker's heartbeat; the killed one's stopped at once
        assert state.renew(engine, alive, now=t + beat * HEARTBEAT)
    assert LEASE <= dt.timedelta(seconds=30) and HEARTBEAT * 2 < LEASE
    assert monitor.sweep(t + LEASE + S) == [dead]  # taken over < 60 s after the kill
    assert jobs == [dead] and _state(engine, alive) == AnalysisState.RUNNING
    with pytest.raises(StudyBusy):
        state.claim(engine, alive, _fingerprint(engine, alive), now=t + 6 * HEARTBEAT + S)


def test_a_second_job_for_an_analysed_study_does_nothing(engine: Engine) -> None:
    monitor = StabilityMonitor(engine, lambda uid: None, stable_age_s=30)
    uid = _queued(engine, monitor)
    fp = _fingerprint(engine, uid)
    state.claim(engine, uid, fp, now=T0 + 40 * S)
    state.done(engine, uid, fp, report_sop_uid="1.2.3", seg_sop_uid=None, now=T0 + 45 * S)
    with pytest.raises(state.AlreadyAnalysed):  # the sweeper's duplicate wake-up after the real one
        state.claim(engine, uid, fp, now=T0 + 50 * S)
    assert state.current(engine, uid).attempts == 1


# ------------------------------------------------------------------------- late data
def test_late_ct_slices_after_the_analysis_make_the_study_ready_again(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=30)
    uid = _queued(engine, monitor)
    fp = _fingerprint(engine, uid)
    state.claim(engine, uid, fp, now=T0 + 40 * S)
    state.done(engine, uid, fp, report_sop_uid="1.2.3", seg_sop_uid=None, now=T0 + 45 * S)
    late = T0 + 10 * 60 * S
    _add_ct(engine, uid, late)  # the rest of the series, forwarded after a pause
    assert monitor.tick(late + 5 * S) == []
    assert monitor.tick(late + 31 * S) == [uid]
    row = state.current(engine, uid)
    assert row.state == AnalysisState.QUEUED and row.seeds_fingerprint != fp and row.report_sop_uid == "1.2.3"


def test_late_ct_after_a_failed_analysis_makes_it_ready_again(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=30)
    uid = _queued(engine, monitor)
    state.claim(engine, uid, _fingerprint(engine, uid), now=T0 + 40 * S)
    state.failed(engine, uid, "the series has a gap", now=T0 + 45 * S)
    _add_ct(engine, uid, T0 + 60 * S)
    assert monitor.tick(T0 + 91 * S) == [uid] and _state(engine, uid) == AnalysisState.QUEUED


def test_data_arriving_during_the_analysis_queues_the_study_again_when_it_finishes(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=30)
    uid = _queued(engine, monitor)
    fp = _fingerprint(engine, uid)
    state.claim(engine, uid, fp, now=T0 + 40 * S)
    _add_ct(engine, uid, T0 + 41 * S)
    assert state.renew(engine, uid, now=T0 + 65 * S)  # the worker's heartbeat
    assert monitor.tick(T0 + 72 * S) == [uid]  # woken, but the running worker keeps the lease
    assert _state(engine, uid) == AnalysisState.RUNNING
    state.done(engine, uid, fp, report_sop_uid="1.2.3", seg_sop_uid=None, now=T0 + 75 * S)
    row = state.current(engine, uid)
    assert row.state == AnalysisState.QUEUED and row.analysed_fingerprint == fp and row.report_sop_uid == "1.2.3"
    state.claim(engine, uid, str(row.seeds_fingerprint), now=T0 + 80 * S)  # the newer data is analysed


# ------------------------------------------------------------- association release
def test_a_released_association_makes_the_study_ready_after_the_quiet_time(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=10, release_quiet_s=2)
    uid = _received(engine, ct=3, seeds=1, at=T0)
    other = _received(engine, ct=3, seeds=1, at=T0)  # its sender keeps the association open
    monitor.released({uid}, now=T0 + 0.1 * S)
    assert monitor.wakeup.is_set()
    assert monitor.tick(T0 + 1.9 * S) == []
    assert monitor.tick(T0 + 2 * S) == [uid]
    assert monitor.tick(T0 + 9 * S) == []
    assert monitor.tick(T0 + 10 * S) == [other]  # stable_age_s stays the upper bound


def test_an_instance_after_the_release_restarts_the_wait(engine: Engine) -> None:
    jobs: list[str] = []
    monitor = StabilityMonitor(engine, jobs.append, stable_age_s=10, release_quiet_s=2)
    uid = _received(engine, ct=3, seeds=1, at=T0)
    monitor.released({uid}, now=T0 + 0.1 * S)
    _add_ct(engine, uid, T0 + 1 * S)  # a second association of the same study, still open
    assert monitor.tick(T0 + 2.5 * S) == []
    assert monitor.tick(T0 + 11 * S) == [uid]


# ------------------------------------------------------------ one configuration
def _settings(tmp_path: Path, **update) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(storage={"data_dir": str(tmp_path)}).model_copy(update=update)


def test_a_worker_without_destinations_uses_those_serve_published(engine: Engine, tmp_path: Path) -> None:
    pacs = Destination(ae_title="PACS", host="127.0.0.1", port=4242)
    serve = _settings(tmp_path, destinations=(pacs,), site=SiteSettings(emphysema=True))
    shared_config.publish(engine, serve)
    worker = shared_config.adopt(engine, _settings(tmp_path))
    assert worker.destinations == (pacs,) and worker.site.emphysema is True
    assert shared_config.adopt(engine, serve).destinations == (pacs,)  # identical: fine


def test_a_worker_with_other_destinations_or_site_refuses_to_start(engine: Engine, tmp_path: Path) -> None:
    shared_config.publish(
        engine, _settings(tmp_path, destinations=(Destination(ae_title="PACS", host="127.0.0.1", port=4242),))
    )
    with pytest.raises(ConfigError, match=r"\[\[destinations\]\] of this worker differs"):
        shared_config.adopt(
            engine, _settings(tmp_path, destinations=(Destination(ae_title="OTHER", host="127.0.0.1", port=1),))
        )
    shared_config.publish(engine, _settings(tmp_path, site=SiteSettings(emphysema=True)))
    with pytest.raises(ConfigError, match=r"\[site\]"):
        shared_config.adopt(engine, _settings(tmp_path, site=SiteSettings(family_history_lung_cancer=True)))


def test_a_worker_refuses_to_start_before_serve_published_anything(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="start noduled serve"):
        shared_config.adopt(engine, _settings(tmp_path))


# ------------------------------------------------------------ start-up errors
def test_unreachable_redis_at_start_is_one_line_after_bounded_retries() -> None:
    from daemon.workflow.jobs import JobQueue, QueueUnreachable

    class Down:
        def task(self, **kw):  # type: ignore[no-untyped-def]
            return lambda f: f

        def pending_count(self) -> int:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")

    sleeps: list[float] = []
    queue = JobQueue(Down(), lambda uid, attempt: None)  # type: ignore[arg-type]
    with pytest.raises(QueueUnreachable) as info:
        queue.wait_reachable("redis://:secret@127.0.0.1:6390/0", attempts=5, delay_s=2, sleep=sleeps.append)
    message = str(info.value)
    assert len(sleeps) == 4 and "\n" not in message
    assert "[queue] redis_url = redis://:***@127.0.0.1:6390/0" in message and "secret" not in message


def test_unreachable_database_and_unwritable_data_dir_are_one_line_naming_the_key(tmp_path: Path) -> None:
    from daemon.node import StartupError, _open_data_dir, _open_index

    with pytest.raises(StartupError) as db:
        _open_index("postgresql://noduled:secret@127.0.0.1:1/noduled")
    assert str(db.value).startswith(
        "cannot open the index database [database] url = postgresql://noduled:***@127.0.0.1:1"
    )
    assert "\n" not in str(db.value) and "secret" not in str(db.value)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StartupError, match=r"^\[storage\] data_dir = .* is not usable"):
        _open_data_dir(
            _settings(tmp_path, storage={"data_dir": blocker / "sub"}).model_copy(
                update={"storage": Settings(storage={"data_dir": str(blocker / "sub")}).storage}
            )
        )


def test_the_queues_repeated_errors_are_one_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    from daemon.ops.logsetup import QuietRepeats

    records = []
    quiet = QuietRepeats()
    logger = logging.getLogger("huey.consumer.Worker-1")
    for _ in range(400):  # 100 s of a worker thread polling a Redis that is away
        try:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        except ConnectionError:
            record = logger.makeRecord(
                logger.name, logging.ERROR, __file__, 1, "Error reading from queue", (), __import__("sys").exc_info()
            )
        if quiet.filter(record):
            records.append(record)
    assert len(records) == 1
    assert records[0].exc_info is None and "ConnectionError: Error 111" in records[0].getMessage()


def test_status_says_a_report_is_on_a_partial_series_while_the_late_slices_wait(engine: Engine) -> None:
    from daemon.ops.status import archive_status

    monitor = StabilityMonitor(engine, lambda uid: None, stable_age_s=30)
    uid = _queued(engine, monitor, ct=60)
    fp = _fingerprint(engine, uid)
    state.claim(engine, uid, fp, now=T0 + 40 * S)
    state.done(engine, uid, fp, report_sop_uid="1.2.3", seg_sop_uid=None, now=T0 + 45 * S)
    with engine.begin() as conn:
        study_pk = conn.execute(select(studies.c.id).where(studies.c.study_uid == uid)).scalar_one()
        ct_pk = _series(conn, study_pk, "CT")
        for _ in range(36):
            _instance(conn, ct_pk, CT_IMAGE_STORAGE, T0 + 600 * S)
    (study,) = [s for s in archive_status(engine)["studies"] if s["study_uid"] == uid]
    assert study["analysis"]["state"] == "done"
    assert study["analysis"]["partial"] == {"analysed_ct_images": 60, "ct_images": 96}
    assert "on 60 of 96 CT images; 36 arrived later" in study["analysis"]["reason"]


def test_status_gives_the_reason_an_sr_only_study_is_not_analysed(engine: Engine) -> None:
    from daemon.ops.status import archive_status

    uid = _received(engine, ct=0, seeds=1, at=T0)
    StabilityMonitor(engine, lambda uid: None, stable_age_s=30).tick(T0 + 31 * S)
    (study,) = [s for s in archive_status(engine)["studies"] if s["study_uid"] == uid]
    assert study["analysis"] == {"state": "-", "reason": "no CT images in this study: nothing to analyse"}


# ------------------------------------------------------------ patient consistency
def _ds(patient_id: str, issuer: str = "", **kw: str):  # type: ignore[no-untyped-def]
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = CT_IMAGE_STORAGE, "1.2.3", "1.2.3.4"
    ds.SOPInstanceUID = kw.pop("sop", "1.2.3.4.5")
    ds.PatientID = patient_id
    if issuer:
        ds.IssuerOfPatientID = issuer
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


@pytest.mark.parametrize(
    ("seed_kw", "match"),
    [
        ({"patient_id": "P1", "issuer": "OTHER-HOSPITAL"}, "another patient"),  # same ID, other issuer
        ({"patient_id": "P2"}, "another patient"),
        ({"patient_id": "P1", "issuer": "HOSP", "StudyInstanceUID": "9.9.9"}, "not of the CT's study"),
    ],
)
def test_seeds_of_another_patient_issuer_or_study_fail_naming_hashes_not_ids(seed_kw: dict, match: str) -> None:
    from daemon.analysis.chain import AnalysisError, AnalysisInputs, analyze, patient_hash

    ct = _ds("P1", "HOSP")
    kw = dict(seed_kw)
    seed = _ds(kw.pop("patient_id"), kw.pop("issuer", ""), sop="1.2.3.9", **kw)
    seed.SOPClassUID = COMPREHENSIVE_SR
    with pytest.raises(AnalysisError, match=match) as info:
        analyze(AnalysisInputs(study_datasets=[ct], seed_objects=[seed]))
    assert "P1" not in str(info.value) and "P2" not in str(info.value) and "HOSP" not in str(info.value)
    if match == "another patient":
        assert patient_hash(seed) in str(info.value) and patient_hash(ct) in str(info.value)


def test_ct_of_two_patients_and_a_prior_of_another_patient_fail() -> None:
    from daemon.analysis.chain import AnalysisError, AnalysisInputs, analyze
    from daemon.analysis.comparison import PriorExam

    seed = _ds("P1", sop="1.2.3.9")
    seed.SOPClassUID = COMPREHENSIVE_SR
    with pytest.raises(AnalysisError, match="CT images are of two patients"):
        analyze(AnalysisInputs(study_datasets=[_ds("P1"), _ds("P2", sop="1.2.3.4.6")], seed_objects=[seed]))
    prior = PriorExam(
        study_uid="1.2.0", exam_date=dt.date(2024, 1, 1), ct_datasets=(_ds("P7", StudyInstanceUID="1.2.0"),)
    )
    with pytest.raises(AnalysisError, match="prior study 1.2.0 belongs to another patient"):
        analyze(AnalysisInputs(study_datasets=[_ds("P1")], seed_objects=[seed], priors=[prior]))
