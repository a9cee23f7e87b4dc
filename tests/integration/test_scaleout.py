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


def test_worker_process_analyses_from_redis_queue_into_postgresql(noduled_server, scaleout_servers, tmp_path, dcmtk) -> None:  # type: ignore[no-untyped-def]
    from test_images import render_single_nodule, write_study

    pg, redis = scaleout_servers
    study = render_single_nodule("solid", 8.0, seed=11)
    paths = write_study(study, tmp_path / "study")
    node = noduled_server(
        {
            "database": {"url": pg.url},
            "queue": {"redis_url": redis.url, "workers": 0},  # the node only receives; the worker analyses
            "analysis": {"stable_age_s": 1.0},
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
        assert conn.execute(select(assessments.c.category).where(assessments.c.study_uid == study.study_uid)).scalar_one()
        n_instances = len(conn.execute(select(instances.c.id)).all())
    assert n_instances == len(paths["ct"]) + 1 + 2  # CT + seed SR + our SR and SEG
    engine.dispose()
    status = subprocess.run([node.proc.args[0], "status", "--json", "--config", str(node.config_path)], capture_output=True, text=True)
    assert status.returncode == 0
