"""Scale-out: the index in PostgreSQL, the queue in Redis, analyses in a separate ``noduled worker``.

Real servers (Debian packages), bound to 127.0.0.1, started by the test.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from daemon.storage.schema import assessments, instances
from tests.integration.test_pipeline_orthanc import analysis_state, ct_and, storescu, wait_for
from tests.support.servers import NodedWorker, PostgresServer, RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def scaleout_servers(tmp_path: Path):  # type: ignore[no-untyped-def]
    pg = PostgresServer().start()
    redis = RedisServer(tmp_path / "redis").start()
    yield pg, redis
    redis.stop()
    pg.stop()


def test_worker_process_analyses_from_redis_queue_into_postgresql(
    noduled_server, scaleout_servers, tmp_path, dcmtk
) -> None:  # type: ignore[no-untyped-def]
    from test_images import render_single_nodule, write_study

    pg, redis = scaleout_servers
    study = render_single_nodule("solid", 8.0, seed=11)
    paths = write_study(study, tmp_path / "study")
    node = noduled_server(
        {
            "database": {"url": pg.url},
            "queue": {"redis_url": redis.url, "workers": 0},  # the node only receives; the worker analyses
            "analysis": {"stable_age_s": 1.0},
            # no key images / PDF: the worker adopts this [report] from the index (it sets none of its own)
            "report": {"key_images": False, "pdf": False},
        }
    )
    worker = NodedWorker(node).start()
    try:
        assert storescu(node.port, ct_and(paths, "sr")).wait(timeout=120) == 0
        wait_for(lambda: analysis_state(node, study.study_uid).get("state") == "done", 90, "the worker's analysis")
    finally:
        worker.stop()
    assert f"study {study.study_uid} analysed" in worker.log()
    assert "analysed" not in node.log()  # the node itself ran no analysis
    engine = create_engine(pg.url)
    with engine.connect() as conn:
        assert conn.execute(
            select(assessments.c.category).where(assessments.c.study_uid == study.study_uid)
        ).scalar_one()
        n_instances = len(conn.execute(select(instances.c.id)).all())
    assert n_instances == len(paths["ct"]) + 1 + 2  # CT + seed SR + our SR and SEG
    engine.dispose()
    status = subprocess.run(
        [node.proc.args[0], "status", "--json", "--config", str(node.config_path)], capture_output=True, text=True
    )
    assert status.returncode == 0


# ----------------------------------------------------------------- issue 18: no report lost under scale-out
def _state_in(engine, study_uid: str) -> str | None:  # type: ignore[no-untyped-def]
    from daemon.storage.schema import analyses

    with engine.connect() as conn:
        return conn.execute(select(analyses.c.state).where(analyses.c.study_uid == study_uid)).scalar_one_or_none()


def _delivered_once(engine, pacs, study_uid: str) -> None:  # type: ignore[no-untyped-def]
    from daemon.storage.schema import outbox
    from tests.integration.test_pipeline_orthanc import SEG_CLASS, SR_CLASS, reports_in

    objects = wait_for(
        lambda: (r := reports_in(pacs, study_uid)) and SR_CLASS in r and SEG_CLASS in r and r,
        60,
        f"SR and SEG of {study_uid} in Orthanc",
    )
    assert len(objects[SR_CLASS]) == 1 and len(objects[SEG_CLASS]) == 1

    def rows() -> list[str]:
        with engine.connect() as conn:
            return sorted(conn.execute(select(outbox.c.state).where(outbox.c.study_uid == study_uid)).scalars().all())

    wait_for(
        lambda: rows() == ["delivered", "delivered"], 20, "the outbox rows marked delivered"
    )  # SR + SEG, one row each
    with engine.connect() as conn:
        assert len(conn.execute(select(assessments.c.id).where(assessments.c.study_uid == study_uid)).all()) == 1


def test_no_report_lost_worker_without_destinations_killed_worker_and_redis_restart(  # type: ignore[no-untyped-def]
    noduled_server, scaleout_servers, orthanc, tmp_path, dcmtk
) -> None:
    import time

    from test_images import render_single_nodule, write_study
    from tests.support.servers import write_toml

    pg, redis = scaleout_servers
    pacs = orthanc()
    node = noduled_server(
        {
            "database": {"url": pg.url},
            "queue": {"redis_url": redis.url, "workers": 0},  # serve only receives (and delivers)
            "analysis": {"stable_age_s": 1.0},
            "destinations": [{"ae_title": pacs.aet, "host": "127.0.0.1", "port": pacs.dicom_port}],
            "delivery": {"retry_initial_s": 0.5, "retry_max_s": 1.0},
            "report": {"key_images": False, "pdf": False},  # SR + SEG only; the workers adopt it from the index
        }
    )
    # the workers' configuration has no [[destinations]]: they use the ones serve published in the index
    worker_config = write_toml(
        tmp_path / "worker.toml",
        {
            "storage": {"data_dir": str(node.data_dir), "min_free_disk_mb": 0},
            "database": {"url": pg.url},
            "queue": {"redis_url": redis.url},
            "http": {"enabled": False},
        },
    )
    engine = create_engine(pg.url)
    studies = [render_single_nodule("solid", 8.0, seed=s) for s in (21, 22, 23)]
    paths = [write_study(st, tmp_path / f"study{k}") for k, st in enumerate(studies)]
    first = NodedWorker(node, config_path=worker_config, name="worker-a").start()
    second = NodedWorker(node, config_path=worker_config, name="worker-b")
    try:
        # 1. a worker killed while it analyses: another one takes the study over within 60 s
        assert storescu(node.port, ct_and(paths[0], "sr")).wait(timeout=120) == 0
        wait_for(lambda: _state_in(engine, studies[0].study_uid) == "running", 60, "the first worker's analysis", 0.05)
        first.kill()
        killed_at = time.monotonic()
        second.start()
        wait_for(lambda: _state_in(engine, studies[0].study_uid) == "done", 90, "the study taken over")
        taken_over_s = time.monotonic() - killed_at
        print(f"killed worker's study done {taken_over_s:.1f} s after the kill")
        assert taken_over_s < 60, taken_over_s
        _delivered_once(engine, pacs, studies[0].study_uid)

        # 2. Redis restarted without persistence while two studies wait in it
        second.stop()
        for p in paths[1:]:
            assert storescu(node.port, ct_and(p, "sr")).wait(timeout=120) == 0
        wait_for(lambda: all(_state_in(engine, st.study_uid) == "queued" for st in studies[1:]), 30, "both queued")
        redis.stop()
        redis.start()  # empty: the jobs are gone, the index still says "queued"
        second = NodedWorker(node, config_path=worker_config, name="worker-c").start()
        restarted_at = time.monotonic()
        for st in studies[1:]:
            wait_for(lambda st=st: _state_in(engine, st.study_uid) == "done", 120, "a study whose job was lost")
            _delivered_once(engine, pacs, st.study_uid)
        print(f"both lost jobs analysed and delivered {time.monotonic() - restarted_at:.1f} s after the Redis restart")
    finally:
        first.stop()
        second.stop()
        engine.dispose()
    assert "Traceback" not in node.log()
