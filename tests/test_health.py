"""daemon.ops.health: /healthz and /metrics served over real HTTP on loopback."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from daemon.ops import metrics
from daemon.ops.health import HealthServer, standard_checks
from daemon.storage.db import open_index


def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    """(status code, content type, body) of GET ``path``; HTTP errors are returned, not raised."""
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as rsp:
            return rsp.status, rsp.headers["Content-Type"], rsp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def serve():  # type: ignore[no-untyped-def]
    started: list[HealthServer] = []

    def make(checks, gauges=None) -> HealthServer:  # type: ignore[no-untyped-def]
        server = HealthServer("127.0.0.1", 0, checks, gauges)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


class FakeSCP:
    running = True


def test_healthz_ok_when_every_check_passes(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve({"scp": lambda: (True, "listening"), "database": lambda: (True, "reachable")})
    code, ctype, body = get(server, "/healthz")
    assert code == 200 and ctype.startswith("application/json")
    assert json.loads(body) == {
        "status": "ok",
        "checks": {"scp": {"ok": True, "detail": "listening"}, "database": {"ok": True, "detail": "reachable"}},
    }


def test_healthz_503_names_the_failing_check(serve) -> None:  # type: ignore[no-untyped-def]
    def broken_queue() -> tuple[bool, str]:
        raise ConnectionError("redis at 127.0.0.1:6379 refused the connection")

    server = serve({"scp": lambda: (True, "listening"), "disk": lambda: (False, "12 MB free"), "queue": broken_queue})
    code, _, body = get(server, "/healthz")
    assert code == 503
    doc = json.loads(body)
    assert doc["status"] == "unhealthy"
    assert doc["checks"]["scp"]["ok"] is True
    assert doc["checks"]["disk"] == {"ok": False, "detail": "12 MB free"}
    assert doc["checks"]["queue"]["ok"] is False and "refused the connection" in doc["checks"]["queue"]["detail"]


def test_a_destination_down_too_long_is_degraded_and_a_broken_node_still_unhealthy(serve) -> None:  # type: ignore[no-untyped-def]
    down = (False, "PACS@10.0.0.5:104 DOWN for 310 s (alert after 120 s): connection refused by 10.0.0.5:104")
    server = serve({"scp": lambda: (True, "listening"), "destinations": lambda: down})
    code, _, body = get(server, "/healthz")
    doc = json.loads(body)
    assert code == 503 and doc["status"] == "degraded"
    assert doc["checks"]["destinations"] == {"ok": False, "detail": down[1]}
    both = serve({"scp": lambda: (False, "not listening"), "destinations": lambda: down})
    code, _, body = get(both, "/healthz")
    assert code == 503 and json.loads(body)["status"] == "unhealthy"


def test_checks_are_run_at_request_time(serve) -> None:  # type: ignore[no-untyped-def]
    state = {"up": True}
    server = serve({"scp": lambda: (state["up"], "listening" if state["up"] else "stopped")})
    assert get(server, "/healthz")[0] == 200
    state["up"] = False
    assert get(server, "/healthz")[0] == 503
    state["up"] = True
    assert get(server, "/healthz")[0] == 200


def test_metrics_exposes_the_registry_and_gauges_read_at_scrape_time(serve) -> None:  # type: ignore[no-untyped-def]
    metrics.INSTANCES_RECEIVED.labels("stored").inc(0)  # make sure the labelled series exists
    metrics.DELIVERIES.labels("delivered").inc(0)
    depth = {"queue": 3.0, "outbox": 7.0}
    server = serve(
        {"scp": lambda: (True, "")},
        {"noduled_queue_depth": lambda: depth["queue"], "noduled_outbox_pending": lambda: depth["outbox"]},
    )
    code, ctype, body = get(server, "/metrics")
    assert code == 200 and ctype.startswith("text/plain") and "version=0.0.4" in ctype
    for name, kind in (
        ("noduled_instances_received_total", "counter"),
        ("noduled_associations_rejected_total", "counter"),
        ("noduled_studies_analysed_total", "counter"),
        ("noduled_stage_duration_seconds", "histogram"),
        ("noduled_deliveries_total", "counter"),
    ):
        assert f"# TYPE {name} {kind}\n" in body, name
    assert 'noduled_instances_received_total{outcome="stored"}' in body
    assert "# TYPE noduled_queue_depth gauge" in body
    assert "\nnoduled_queue_depth 3.0\n" in body
    assert "\nnoduled_outbox_pending 7.0\n" in body

    before = _sample(body, 'noduled_deliveries_total{outcome="delivered"}')
    metrics.DELIVERIES.labels("delivered").inc(2)
    depth["outbox"] = 0.0
    body = get(server, "/metrics")[2]
    assert _sample(body, 'noduled_deliveries_total{outcome="delivered"}') == before + 2
    assert "\nnoduled_outbox_pending 0.0\n" in body


def _sample(body: str, series: str) -> float:
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not in /metrics")


def test_a_gauge_that_cannot_be_read_is_nan_not_fatal(serve) -> None:  # type: ignore[no-untyped-def]
    def broken() -> float:
        raise RuntimeError("queue unreachable")

    server = serve({}, {"noduled_queue_depth": broken, "noduled_outbox_pending": lambda: 1})
    code, _, body = get(server, "/metrics")
    assert code == 200
    assert "\nnoduled_queue_depth NaN\n" in body and "\nnoduled_outbox_pending 1.0\n" in body


def test_other_paths_are_404(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve({})
    for path in ("/", "/health", "/metrics/x", "/healthz/../etc/passwd"):
        assert get(server, path)[0] == 404, path
    assert get(server, "/healthz?verbose=1")[0] == 200


def test_binds_to_loopback_only() -> None:
    server = HealthServer("127.0.0.1", 0, {})
    server.start()
    try:
        assert server._server is not None and server._server.server_address[0] == "127.0.0.1"
        assert server.port > 0
    finally:
        server.stop()


# ------------------------------------------------------------ standard checks


def test_standard_checks_pass_on_a_healthy_node(tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    pings = []
    checks = standard_checks(
        scp=FakeSCP(), engine=engine, data_dir=tmp_path, min_free_disk_mb=1, queue_ping=lambda: pings.append(1)
    )
    try:
        assert set(checks) == {"scp", "database", "disk", "queue"}
        results = {name: check() for name, check in checks.items()}
    finally:
        engine.dispose()
    assert all(ok for ok, _ in results.values()), results
    assert "MB free" in results["disk"][1] and pings == [1]


def test_standard_checks_fail_each_for_its_own_reason(tmp_path: Path, serve) -> None:  # type: ignore[no-untyped-def]
    class StoppedSCP:
        running = False

    def queue_down() -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    free_mb = shutil.disk_usage(tmp_path).free // (1024 * 1024)
    engine = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'index.sqlite'}")  # directory does not exist
    checks = standard_checks(
        scp=StoppedSCP(), engine=engine, data_dir=tmp_path, min_free_disk_mb=free_mb + 10_000, queue_ping=queue_down
    )
    server = serve(checks)
    code, _, body = get(server, "/healthz")
    engine.dispose()
    assert code == 503
    doc = json.loads(body)["checks"]
    assert doc["scp"]["ok"] is False and "not listening" in doc["scp"]["detail"]
    assert doc["database"]["ok"] is False and "unable to open database file" in doc["database"]["detail"]
    assert doc["disk"]["ok"] is False and f"threshold {free_mb + 10_000} MB" in doc["disk"]["detail"]
    assert doc["queue"]["ok"] is False and "Connection refused" in doc["queue"]["detail"]


def test_no_queue_check_without_a_queue(tmp_path: Path) -> None:
    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    try:
        checks = standard_checks(scp=FakeSCP(), engine=engine, data_dir=tmp_path, min_free_disk_mb=0, queue_ping=None)
    finally:
        engine.dispose()
    assert set(checks) == {"scp", "database", "disk"}


def test_outbox_check_reports_counts_without_failing_on_pending(tmp_path: Path) -> None:
    import datetime as dt

    from daemon.settings import Destination
    from daemon.workflow.outbox import Outbox

    engine = open_index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    t0 = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
    box = Outbox(engine, tmp_path, [Destination(ae_title="PACS", host="127.0.0.1", port=4242)], clock=lambda: t0)
    try:
        box.enqueue("1.2.3.4", "1.2.3", "1.2.3/1.2.3.5/1.2.3.4.dcm")
        checks = standard_checks(
            scp=FakeSCP(), engine=engine, data_dir=tmp_path, min_free_disk_mb=0, queue_ping=None, outbox=box
        )
        ok, detail = checks["outbox"]()
    finally:
        engine.dispose()
    assert ok is True
    assert detail == "1 pending (oldest since 2026-06-01T08:00:00+00:00), 0 delivered, 0 expired"
