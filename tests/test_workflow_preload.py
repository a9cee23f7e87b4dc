"""Issue 18's latency work in the workflow: the preload during the study-complete wait, seeds measured in
parallel processes, key images and PDF after the SR — each must give the report the plain path gives.

On the small ``multi`` phantom (96 slices, 7 nodules), archived in a real node's archive and index
(no network: the node is not started; the outbox has a destination it never reaches).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import select

import daemon.analysis.chain as chain
from daemon.analysis.chain import AnalysisInputs, prepare
from daemon.analysis.sop_classes import CT_IMAGE_STORAGE
from daemon.settings import Settings
from daemon.storage.queries import study_files
from daemon.storage.schema import outbox
from daemon.workflow import state
from daemon.workflow.parallel import process_map
from daemon.workflow.study import analyze_study


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    from test_images import generate_case, write_study

    study = generate_case("multi", size="small", seed=0)[0]
    return write_study(study, tmp_path_factory.mktemp("multi"))


def _node(tmp_path: Path, **analysis):  # type: ignore[no-untyped-def]
    from daemon.node import Node

    settings = Settings(
        storage={"data_dir": str(tmp_path / "data")},
        http={"enabled": False},
        scp={"port": 11198},
        analysis=analysis,
        destinations=[{"ae_title": "PACS", "host": "127.0.0.1", "port": 1}],
    )
    return Node(settings)


def _archive(node, paths: list[str]) -> str:  # type: ignore[no-untyped-def]
    study_uid = ""
    for p in paths:
        study_uid = node.archive.store(Path(p).read_bytes(), calling_ae=None).study_uid
    return study_uid


def _findings(result) -> list[tuple]:  # type: ignore[no-untyped-def,type-arg]
    return [
        (f.tracking_uid, f.tracking_id, f.error, f.characterization, f.measurement and f.measurement.volume_mm3)
        for f in result.assessment.findings
    ]


def test_seeds_measured_in_processes_give_the_findings_measured_one_by_one(multi: dict) -> None:  # type: ignore[type-arg]
    inputs = AnalysisInputs(study_datasets=[dcmread(p) for p in multi["ct"]], seed_objects=[dcmread(multi["sr"])])
    one_by_one, parallel = prepare(inputs), prepare(inputs, measure_map=process_map(2))
    assert len(one_by_one.findings) == 7
    for a, b in zip(one_by_one.findings, parallel.findings, strict=True):
        assert (a.tracking_uid, a.tracking_id, a.characterization, a.error) == (
            b.tracking_uid,
            b.tracking_id,
            b.characterization,
            b.error,
        )
        assert (a.measurement is None) == (b.measurement is None)
        if a.measurement is not None and b.measurement is not None:
            assert a.measurement.volume_mm3 == b.measurement.volume_mm3
            assert np.array_equal(a.measurement.mask.mask, b.measurement.mask.mask)


def test_the_preloaded_stages_are_used_and_give_the_same_report(multi: dict, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def,type-arg]
    calls = []
    real = chain.prepare

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(chain, "prepare", counting)
    monkeypatch.setattr("daemon.workflow.preload.prepare", counting)
    plain_node = _node(tmp_path / "plain", preload=False, processes=1)
    assert plain_node.context.preloader is None
    uid = _archive(plain_node, multi["ct"] + [multi["sr"]])
    plain = analyze_study(plain_node.context, uid)
    assert plain is not None and len(calls) == 1

    node = _node(tmp_path / "preload", processes=1)
    assert node.context.preloader is not None
    _archive(node, multi["ct"] + [multi["sr"]])
    node.context.preloader.released({uid})  # the association release
    result = analyze_study(node.context, uid)
    assert result is not None
    assert len(calls) == 2  # the preload's; the analysis used it instead of computing the stages again
    assert str(result.report.SOPInstanceUID) == str(plain.report.SOPInstanceUID)
    assert _findings(result) == _findings(plain)
    assert result.assessment.category == plain.assessment.category
    for n in (plain_node, node):
        n.engine.dispose()


def test_a_slice_that_arrives_after_the_preload_is_analysed(multi: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    node = _node(tmp_path, processes=1)
    uid = _archive(node, multi["ct"][1:] + [multi["sr"]])  # one slice missing at the release
    node.context.preloader.released({uid})
    _archive(node, multi["ct"][:1])  # late: before the analysis starts
    result = analyze_study(node.context, uid)
    assert result is not None
    assert len(result.ct_datasets) == len(multi["ct"])  # all 96, not the 95 preloaded
    node.engine.dispose()


def test_sr_and_seg_are_queued_before_the_key_images_and_a_crash_between_delivers_each_once(
    multi: dict,  # type: ignore[type-arg]
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    node = _node(tmp_path, preload=False, processes=1)
    uid = _archive(node, multi["ct"] + [multi["sr"]])
    queued_before: list[set[str]] = []

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):  # type: ignore[no-untyped-def]
        with node.engine.connect() as conn:
            queued_before.append({r.sop_instance_uid for r in conn.execute(select(outbox.c.sop_instance_uid))})
        raise Crash  # the process dies while rendering the key images

    monkeypatch.setattr("daemon.workflow.study.build_extras", crash)
    with pytest.raises(Crash):
        analyze_study(node.context, uid)
    (sr_and_seg,) = queued_before
    assert len(sr_and_seg) == 2  # the SR and its SEG were on their way before the key images were rendered
    assert (
        state.current(node.engine, uid).state == state.AnalysisState.RUNNING
    )  # not done: its lease runs out and it is analysed again
    monkeypatch.undo()

    # after the lease: analysed again, the same SR and SEG (rows not doubled), the key images and PDF added
    rows = state.interrupted(node.engine, all_running=True)
    assert rows == [uid]
    state.requeue(node.engine, rows)
    result = analyze_study(node.context, uid)
    assert result is not None and result.extra_objects
    with node.engine.connect() as conn:
        uids = [r.sop_instance_uid for r in conn.execute(select(outbox.c.sop_instance_uid))]
    assert len(uids) == len(set(uids)) == 2 + len(result.extra_objects)
    assert sr_and_seg <= set(uids)
    assert str(result.report.SOPInstanceUID) in sr_and_seg  # the same SR, not a second one
    assert state.current(node.engine, uid).state == state.AnalysisState.DONE
    node.engine.dispose()


def _counting_reads(monkeypatch) -> tuple[list[str], Callable]:  # type: ignore[no-untyped-def,type-arg]
    """The paths the preloader reads from the archive from now on, and the real dcmread."""
    import daemon.workflow.preload as preload

    read: list[str] = []
    real = preload.dcmread

    def counting(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        read.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(preload, "dcmread", counting)
    return read, real


def test_ct_instances_parsed_as_they_arrive_are_not_read_again(multi: dict, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def,type-arg]
    node = _node(tmp_path, processes=1)
    uid = ""
    for p in multi["ct"] + [multi["sr"]]:  # what the SCP does: archive, then hand the bytes to the hook
        data = Path(p).read_bytes()
        stored = node.archive.store(data, calling_ae=None)
        uid = stored.study_uid
        node.context.preloader.stored(
            uid, str(dcmread(p, stop_before_pixels=True).SOPClassUID), stored.sop_instance_uid, data
        )
    read, real = _counting_reads(monkeypatch)
    node.context.preloader.released({uid})
    files = study_files(node.engine, node.archive, uid)
    got = node.context.preloader.take(uid, files.ct_paths + files.seed_paths)
    assert got is not None and len(got.datasets) == len(multi["ct"])
    assert [p for p in read if isinstance(p, str) and p.endswith(".dcm")] == [str(files.seed_paths[0])]  # the SR only
    node.engine.dispose()


def test_a_retrieved_prior_is_taken_from_what_was_parsed_as_it_arrived(
    multi: dict, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def,type-arg]
    """A prior's CT arriving by C-MOVE is parsed (and decoded) as it arrives; the comparison takes those
    datasets instead of reading the 300 files again, and reads what was not parsed."""
    from daemon.storage.queries import best_ct_series_paths

    node = _node(tmp_path, processes=1)
    uid = ""
    for p in multi["ct"][1:]:  # the first instance was not parsed ahead (e.g. over the memory bound)
        data = Path(p).read_bytes()
        stored = node.archive.store(data, calling_ae="ORTHANC")
        uid = stored.study_uid
        node.context.preloader.stored(uid, CT_IMAGE_STORAGE, stored.sop_instance_uid, data)
    node.archive.store(Path(multi["ct"][0]).read_bytes(), calling_ae="ORTHANC")
    read, real = _counting_reads(monkeypatch)
    paths = best_ct_series_paths(node.engine, node.archive, uid)
    datasets = node.context.preloader.read_study(uid, paths)
    assert [ds.SOPInstanceUID for ds in datasets] == [Path(p).stem for p in paths]
    first = dcmread(multi["ct"][0]).SOPInstanceUID
    assert [Path(p).stem for p in read] == [first]  # only the one not parsed is read from the archive
    some = datasets[len(datasets) // 2]
    assert (some.pixel_array == real(paths[len(datasets) // 2]).pixel_array).all()
    assert node.context.preloader.read_study(uid, paths[:1]) and len(read) == 2  # taken once: then read again
    node.engine.dispose()


def test_received_bytes_waiting_to_be_parsed_are_bounded(multi: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """A sender faster than the parser cannot pile its instances up in memory: beyond the bound an
    instance is not parsed ahead (the analysis reads it from the archive), and the bound frees again."""
    import threading

    node = _node(tmp_path, processes=1)
    preloader = node.context.preloader
    preloader._arrivals.put(None)  # the parser stops: a parser far behind a fast sender
    preloader._parser.join(5)
    assert not preloader._parser.is_alive()
    paths = multi["ct"][:3]
    data = [Path(p).read_bytes() for p in paths]
    preloader.max_pending_bytes = len(data[0]) + len(data[1]) // 2  # room for the first only
    uids = []
    for p, d in zip(paths, data):
        ds = dcmread(p, stop_before_pixels=True)
        uids.append(str(ds.SOPInstanceUID))
        preloader.stored(str(ds.StudyInstanceUID), str(ds.SOPClassUID), uids[-1], d)
    assert preloader._pending_bytes == len(data[0])  # the second and third were not queued
    preloader._parser = threading.Thread(target=preloader._parse_arrivals, daemon=True)
    preloader._parser.start()
    preloader._wait_parsed()
    assert preloader._pending_bytes == 0
    parsed = preloader._take_parsed(str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID))
    assert list(parsed) == uids[:1]
    node.engine.dispose()


def _never_returns(position):  # type: ignore[no-untyped-def]
    import time

    time.sleep(3600)  # a child stuck on a lock another thread held at the fork


def test_measuring_processes_that_never_return_do_not_hold_the_study(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import daemon.analysis.findings as findings
    import daemon.workflow.parallel as parallel

    monkeypatch.setattr(parallel, "_measure", _never_returns)
    monkeypatch.setattr(parallel, "CHILDREN_TIMEOUT_S", 1.0)
    monkeypatch.setattr(parallel, "CHILDREN_TIMEOUT_PER_SEED_S", 0.0)
    monkeypatch.setattr(findings, "measure_seed", lambda image, p, lungs: ("measured here", None, tuple(p)))
    positions = [(0.0, 0.0, 0.0), (1.0, 2.0, 3.0)]
    assert parallel.process_map(2)(None, None, positions) == [("measured here", None, p) for p in positions]


def test_priors_retrieved_at_the_release_are_waited_for_before_the_analysis_asks_the_pacs(
    multi: dict,
    tmp_path: Path,
    monkeypatch,  # type: ignore[type-arg]
) -> None:
    """With a [pacs], the release starts the retrieval of the patient's priors beside the preload; the
    analysis asks the PACS only once that retrieval has ended (it then finds the priors in the archive)."""
    import threading
    import time

    import daemon.workflow.study as study

    node = _node(tmp_path, processes=1)
    preloader = node.context.preloader
    uid = _archive(node, multi["ct"] + [multi["sr"]])
    started, ended = threading.Event(), threading.Event()
    asked: list[tuple[str, bool]] = []

    def prefetch(study_uid: str) -> None:
        started.set()
        time.sleep(0.5)  # a retrieval that takes its time
        ended.set()

    def fetch_or_wait(engine, archive, pacs, study_uid, **kwargs):  # type: ignore[no-untyped-def]
        asked.append((study_uid, ended.is_set()))
        return []

    preloader.prefetch = prefetch
    monkeypatch.setattr(study, "fetch_or_wait", fetch_or_wait)
    preloader.released({uid})
    assert started.wait(5)
    result = analyze_study(node.context, uid)
    assert result is not None
    assert asked == [(uid, True)]

    # a failed retrieval is only logged: the wait returns, the analysis asks the PACS itself
    failed = threading.Event()

    def failing(study_uid: str) -> None:
        failed.set()
        raise ConnectionError("PACS away")

    preloader.prefetch = failing
    preloader.released({uid})
    preloader.wait_prefetch(uid)
    assert failed.is_set()
    preloader.wait_prefetch("1.2.3.4")  # none asked for: returns at once
    node.engine.dispose()


def test_priors_are_retrieved_from_the_first_ct_image_and_a_retrieved_prior_retrieves_none(
    multi: dict,  # type: ignore[type-arg]
    tmp_path: Path,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """The retrieval starts with the study's first CT image (the prior arrives while the rest of the study
    does), once per study; an earlier study of the patient arriving then (the prior itself, by C-MOVE)
    does not send the PACS looking for its own priors."""
    import datetime as dt

    import daemon.workflow.priors as priors
    from daemon.settings import PACSSettings

    node = _node(tmp_path, processes=1)
    preloader = node.context.preloader
    asked: list[str] = []
    started = threading.Event()

    def prefetch(study_uid: str) -> None:
        asked.append(study_uid)
        started.set()

    preloader.prefetch = prefetch
    data = [Path(p).read_bytes() for p in multi["ct"][:2]]
    first = node.archive.store(data[0], calling_ae="PACS")
    uid = first.study_uid
    preloader.stored(uid, CT_IMAGE_STORAGE, first.sop_instance_uid, data[0])
    assert started.wait(5) and asked == [uid]  # before the release, before the seeds
    second = node.archive.store(data[1], calling_ae="PACS")
    preloader.stored(uid, CT_IMAGE_STORAGE, second.sop_instance_uid, data[1])
    preloader.released({uid})
    preloader.wait_prefetch(uid)
    assert asked == [uid]  # once: the retrieval that started is the one the analysis waits for

    # the prior arrives: older than a study of the patient in the index, it retrieves nothing itself
    prior = dcmread(multi["ct"][0])
    prior.StudyInstanceUID, prior.SeriesInstanceUID, prior.SOPInstanceUID = "1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1"
    prior.StudyDate = (dt.date.fromisoformat(str(node_study_date(node, uid))) - dt.timedelta(days=365)).strftime(
        "%Y%m%d"
    )
    buffer = io.BytesIO()
    prior.save_as(buffer, enforce_file_format=True)
    node.archive.store(buffer.getvalue(), calling_ae="PACS")
    pacs = PACSSettings(ae_title="PACS", host="127.0.0.1", port=1)
    queried: list[str] = []
    monkeypatch.setattr(priors, "query_pacs", lambda *a, **kw: queried.append(kw["patient_id"]) or [])
    for study_uid in ("1.2.3.1", uid):
        priors.prefetch_priors(
            node.engine, node.archive, pacs, study_uid, calling_ae="NODULED", lookback_years=10, max_priors=2
        )
    assert queried == [str(prior.PatientID)]  # the current study's priors only
    node.engine.dispose()


def node_study_date(node, study_uid: str):  # type: ignore[no-untyped-def]
    from daemon.storage.queries import study_patient

    return study_patient(node.engine, study_uid).study_date


def test_a_retrieved_prior_is_loaded_ahead_and_the_analysis_uses_it(multi: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    """Once the priors are retrieved (while the study is being segmented) they are loaded and lung-masked
    there and then; the analysis's priors are those very exams.  Not before the seeds are in."""
    import datetime as dt

    from daemon.storage.queries import study_patient
    from daemon.workflow.study import load_priors_ahead, prior_exams

    node = _node(tmp_path, processes=1)
    ctx = node.context
    uid = _archive(node, multi["ct"])
    date = study_patient(node.engine, uid).study_date
    for p in multi["ct"]:  # the same patient's exam of a year before
        ds = dcmread(p)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.1", "1.2.3.1.1"
        ds.SOPInstanceUID = f"1.2.3.1.1.{ds.InstanceNumber}"
        ds.StudyDate = ds.SeriesDate = (date - dt.timedelta(days=365)).strftime("%Y%m%d")
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        node.archive.store(buffer.getvalue(), calling_ae="PACS")
    assert load_priors_ahead(ctx, uid) == {}  # no seeds yet: not analysed now
    _archive(node, [multi["sr"]])
    loaded = load_priors_ahead(ctx, uid)
    assert list(loaded) == ["1.2.3.1"]
    _, exam = loaded["1.2.3.1"]
    assert exam.image is not None and exam.lungs is not None and len(exam.ct_datasets) == len(multi["ct"])
    (used,) = prior_exams(ctx, uid, loaded)
    assert used.image is exam.image and used.lungs is exam.lungs
    (fresh,) = prior_exams(ctx, uid)
    assert fresh.image is None and fresh == used  # the same exam, loaded by the comparison itself
    node.engine.dispose()


def test_priors_held_loaded_are_bounded_the_oldest_go(tmp_path: Path) -> None:
    """Priors loaded ahead for studies no analysis here takes (a burst, or workers elsewhere) are not held
    without bound: beyond ``max_entries`` the oldest go, and their analysis loads them itself."""
    node = _node(tmp_path, processes=1)
    preloader = node.context.preloader
    preloader.max_entries = 2
    preloader.prefetch = lambda study_uid: {study_uid: "loaded"}
    for uid in ("1.2.3.1", "1.2.3.2", "1.2.3.3"):
        preloader.stored(uid, CT_IMAGE_STORAGE, f"{uid}.1", b"not parsed")
        time.sleep(0.2)  # one after the other, as studies arrive
    preloader._fetcher.submit(lambda: None).result(5)  # the fetches before it are done
    assert preloader.wait_prefetch("1.2.3.1") is None  # dropped: the analysis retrieves and loads itself
    assert preloader.wait_prefetch("1.2.3.2") == {"1.2.3.2": "loaded"}
    assert preloader.wait_prefetch("1.2.3.3") == {"1.2.3.3": "loaded"}
    node.engine.dispose()
