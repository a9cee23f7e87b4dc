"""HTTP health and metrics endpoints of the node (DESIGN §4, §5).

- ``GET /healthz``: runs every check at request time; 200 and
  ``{"status": "ok", "checks": {name: {"ok": true, "detail": "..."}}}`` when
  all pass, 503 with ``"status": "unhealthy"`` when any fails, or
  ``"status": "degraded"`` when only "degrading" checks fail (the node works,
  but e.g. a destination has been down too long: reports wait).
- ``GET /metrics``: Prometheus text exposition of :data:`daemon.ops.metrics.REGISTRY`
  plus the gauges given to :class:`HealthServer` (``noduled_queue_depth``,
  ``noduled_outbox_pending``, ...), each read at scrape time.
- anything else: 404.

Neither endpoint carries patient data: checks report states and counts,
metrics are counters and gauges.  The server binds to 127.0.0.1 by default.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from sqlalchemy import Engine, text

from daemon.ops.metrics import REGISTRY

log = logging.getLogger(__name__)

# generate_latest() writes the classic text format, version 0.0.4, which every
# Prometheus understands (newer clients default the constant to 1.0.0).
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"

Check = Callable[[], tuple[bool, str]]

GAUGE_HELP = {
    "noduled_queue_depth": "Analysis jobs waiting in the queue.",
    "noduled_outbox_pending": "Objects waiting in the outbox for delivery to a destination.",
    "noduled_destinations_down": "Destinations whose last C-ECHO probe failed.",
    "noduled_archive_bytes": "Bytes of the instance files in the archive (purged files not counted).",
}


def _describe_error(exc: BaseException) -> str:
    """An exception as one short line (the first line of its message)."""
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = message[0] if message else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _or_nan(name: str, read: Callable[[], float]) -> Callable[[], float]:
    """``read``, or NaN (Prometheus' "no value") when it cannot be read: a scrape never fails on a gauge."""

    def value() -> float:
        try:
            return float(read())
        except Exception as exc:
            log.debug("gauge %s could not be read: %s", name, _describe_error(exc))
            return math.nan

    return value


def run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check; a check that raises counts as failed with the error as detail."""
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks.items():
        try:
            ok, detail = check()
        except Exception as exc:
            ok, detail = False, _describe_error(exc)
        results[name] = {"ok": bool(ok), "detail": str(detail)}
    return all(r["ok"] for r in results.values()), results


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "noduled"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                ok, results = run_checks(self.server.checks)
                failing = {name for name, r in results.items() if not r["ok"]}
                status = "ok" if ok else ("degraded" if failing <= self.server.degrading else "unhealthy")
                body = json.dumps({"status": status, "checks": results}, indent=1).encode()
                self._reply(200 if ok else 503, "application/json", body)
            elif path == "/metrics":
                body = generate_latest(REGISTRY) + generate_latest(self.server.gauge_registry)
                self._reply(200, CONTENT_TYPE_TEXT, body)
            else:
                self._reply(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")
        except BrokenPipeError:
            pass

    def _reply(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server signature)
        log.debug("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    checks: Mapping[str, Check]
    degrading: frozenset[str]
    gauge_registry: CollectorRegistry


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """``/healthz`` and ``/metrics`` on ``host:port`` (port 0 = any free port), in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Mapping[str, Check],
        gauges: Mapping[str, Callable[[], float]] | None = None,
        *,
        degrading: frozenset[str] = frozenset({"destinations"}),
    ) -> None:
        self.host = host or "127.0.0.1"
        self.degrading = frozenset(degrading)  # checks whose failure makes the node "degraded", not "unhealthy"
        self._requested_port = port
        self.checks = dict(checks)
        self.gauge_registry = CollectorRegistry()
        for name, read in (gauges or {}).items():  # read at scrape time
            gauge = Gauge(name, GAUGE_HELP.get(name, f"{name} (read at scrape time)."), registry=self.gauge_registry)
            gauge.set_function(_or_nan(name, read))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread; raises OSError when the port is taken."""
        if self._server is not None:
            return
        cls = _Server6 if ":" in self.host else _Server
        server = cls((self.host, self._requested_port), _Handler)
        server.checks = self.checks
        server.degrading = self.degrading
        server.gauge_registry = self.gauge_registry
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.25}, name="health-http", daemon=True
        )
        self._thread.start()
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    @property
    def port(self) -> int:
        """The bound port (the actual one when 0 was asked for)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])


def standard_checks(
    *,
    scp: Any,
    engine: Engine,
    data_dir: Path,
    min_free_disk_mb: int,
    queue_ping: Callable[[], None] | None,
    outbox: Any = None,
) -> dict[str, Check]:
    """The node's checks: ``scp``, ``database``, ``disk``, and ``queue`` / ``outbox`` when given.

    ``scp`` is anything with ``.running`` (:class:`daemon.network.scp.StorageSCP`);
    ``queue_ping`` raises when the queue is unreachable.  ``outbox`` (a
    :class:`daemon.workflow.outbox.Outbox`) adds an informational check: deliveries
    waiting for a destination that is down do not make the node unhealthy
    (they are retried), so it fails only when the outbox cannot be read; its
    detail says how many objects wait and since when, and how many expired.
    """

    def scp_check() -> tuple[bool, str]:
        settings = getattr(scp, "settings", None)
        where = f" as {settings.ae_title} on {settings.bind_host}:{settings.port}" if settings is not None else ""
        return (True, f"listening{where}") if scp.running else (False, f"not listening{where}")

    def database_check() -> tuple[bool, str]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True, f"reachable ({engine.dialect.name})"

    def disk_check() -> tuple[bool, str]:
        free_mb = shutil.disk_usage(data_dir).free // (1024 * 1024)
        detail = f"{free_mb} MB free in {data_dir} (threshold {min_free_disk_mb} MB)"
        return free_mb > min_free_disk_mb, detail

    checks: dict[str, Check] = {"scp": scp_check, "database": database_check, "disk": disk_check}
    if queue_ping is not None:

        def queue_check() -> tuple[bool, str]:
            queue_ping()
            return True, "reachable"

        checks["queue"] = queue_check
    if outbox is not None:

        def outbox_check() -> tuple[bool, str]:
            summary = outbox.summary(recent_errors=0)
            since = f" (oldest since {summary['oldest_pending']})" if summary["oldest_pending"] else ""
            committing = summary.get("awaiting_commitment") or 0
            waiting = f" ({committing} stored, awaiting commitment)" if committing else ""
            return True, (
                f"{summary['pending']} pending{waiting}{since}, {summary['delivered']} delivered, {summary['expired']} expired"
            )

        checks["outbox"] = outbox_check
    return checks
