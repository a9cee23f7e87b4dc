"""The running node: wires settings, index, archive, SCP, queue, pipeline, outbox and health."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from huey.exceptions import RetryTask
from sqlalchemy import Connection

from daemon.analysis.protocol import SiteDefaults
from daemon.network.scp import StorageSCP
from daemon.ops import metrics
from daemon.settings import Settings
from daemon.storage.archive import Archive
from daemon.storage.db import open_index
from daemon.workflow import shared_config, state
from daemon.workflow.jobs import RETRIES, RETRY_DELAY_S, JobQueue, make_huey
from daemon.workflow.parallel import default_processes, process_map
from daemon.workflow.preload import LoadedPriors, Preloader
from daemon.workflow.priors import WaitingForPriors
from daemon.workflow.stability import StabilityMonitor
from daemon.workflow.state import StudyBusy
from daemon.workflow.study import NodeContext, PermanentError, analyze_study, load_priors_ahead

if TYPE_CHECKING:
    from daemon.ops.health import HealthServer

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The node cannot start; the message is one line naming the key (no traceback for the operator)."""


def _open_data_dir(settings: Settings) -> None:
    import tempfile

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.data_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise StartupError(
            f"[storage] data_dir = {settings.data_dir} is not usable: {exc.strerror or type(exc).__name__}"
        ) from None


def _open_index(url: str):  # type: ignore[no-untyped-def]
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return open_index(url)
    except (SQLAlchemyError, OSError) as exc:
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except Exception:
            shown = "(unparsable)"
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise StartupError(f"cannot open the index database [database] url = {shown}: {first}") from None


class Node:
    """Everything ``noduled serve`` runs, started and stopped as one.

    ``workers`` analysis threads run inside the node (``[queue] workers``);
    with ``workers = 0`` the analyses are left to ``noduled worker``
    processes sharing the queue and the index.
    """

    def __init__(self, settings: Settings, *, serve_dicom: bool = True) -> None:
        from daemon.workflow.outbox import Outbox, RetryPolicy

        _open_data_dir(settings)
        self.engine = _open_index(settings.database_url)
        if serve_dicom:  # the receiving node's configuration is the one its workers use
            shared_config.publish(self.engine, settings)
        else:
            settings = shared_config.adopt(self.engine, settings)
        self.settings = settings
        self.archive = Archive(settings.archive_dir, self.engine, min_free_disk_mb=settings.storage.min_free_disk_mb)
        self.scp = StorageSCP(settings.scp, self.archive) if serve_dicom else None
        d = settings.delivery
        self.outbox = Outbox(
            self.engine,
            settings.archive_dir,
            settings.destinations,
            calling_ae=settings.scp.ae_title,
            policy=RetryPolicy(initial_s=d.retry_initial_s, max_s=d.retry_max_s, max_age_s=d.max_age_days * 86400),
            commitment_timeout_s=d.commitment_timeout_s,
        )
        if self.scp is not None:
            self.scp.on_commitment = self.outbox.record_commitment
        self.context = NodeContext(
            engine=self.engine,
            archive=self.archive,
            site=SiteDefaults(settings.site.family_history_lung_cancer, settings.site.emphysema),
            enqueue_delivery=self._enqueue_delivery,
            lookback_years=settings.analysis.lookback_years,
            key_images=settings.report.key_images,
            pdf_report=settings.report.pdf,
            max_priors=int(settings.analysis.max_priors),
            screening_description_regex=settings.analysis.screening_description_regex,
            pacs=settings.pacs,
            ae_title=settings.scp.ae_title,
            protocol=settings.analysis.protocol,
            audit_protocol=settings.analysis.audit_protocol,
            measure_map=process_map(settings.analysis.processes or default_processes()),
            wake_delivery=self.outbox.wake,
        )
        # stages 1-3 during the study-complete wait: where the SCP and the workers share a process
        if self.scp is not None and settings.queue.workers > 0 and settings.analysis.preload:
            self.context.preloader = Preloader(
                self.engine,
                self.archive,
                measure_map=self.context.measure_map,
                prefetch=self._prefetch_priors if settings.pacs is not None else None,
                max_entries=settings.queue.workers,
            )
        self.queue = JobQueue(make_huey(settings.data_dir, settings.queue.redis_url), self.run_analysis)
        self.monitor = StabilityMonitor(
            self.engine,
            self.queue.enqueue,
            stable_age_s=settings.analysis.stable_age_s,
            require_seeds=settings.analysis.require_seeds,
            release_quiet_s=settings.analysis.release_quiet_s,
            queue_depth=self.queue.depth,
        )
        from daemon.workflow.outbox import destination_key
        from daemon.workflow.probe import DestinationProbe

        self.probe = DestinationProbe(
            self.engine,
            self.outbox,
            [destination_key(x) for x in settings.destinations],
            calling_ae=settings.scp.ae_title,
            down_alert_s=d.destination_down_alert_s,
        )
        if self.scp is not None:
            self.scp.on_released = self._released  # study complete on association release
            if self.context.preloader is not None:
                self.scp.on_stored = self.context.preloader.stored  # CT parsed while the rest arrives
        self.health: HealthServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------- analysis
    def warm_up(self) -> None:
        """Imports and highdicom's tables, so the first study is not slower (workers only).

        Before the SCP listens, not beside it: the node's memory when it starts accepting is then its
        working set, and what it grows by afterwards is what the senders make it hold (the receive
        attack and fuzz checks measure exactly that)."""
        from daemon.workflow.warmup import warm_up

        warm_up()

    def _released(self, study_uids: set[str]) -> None:
        if self.context.preloader is not None:
            self.context.preloader.released(study_uids)
        self.monitor.released(study_uids)

    def _prefetch_priors(self, study_uid: str) -> LoadedPriors:
        """The study's priors retrieved from the PACS, then loaded ahead when its seeds are in already."""
        from daemon.workflow.priors import prefetch_priors

        ctx = self.context
        if ctx.pacs is None:
            return {}
        prefetch_priors(
            ctx.engine,
            ctx.archive,
            ctx.pacs,
            study_uid,
            calling_ae=ctx.ae_title,
            lookback_years=ctx.lookback_years,
            max_priors=ctx.max_priors,
        )
        t0 = time.perf_counter()
        loaded = load_priors_ahead(ctx, study_uid)
        if loaded:
            metrics.STAGE_SECONDS.labels("preload_priors").observe(time.perf_counter() - t0)
        return loaded

    def _enqueue_delivery(self, sop_uid: str, study_uid: str, relative_path: str, conn: Connection) -> None:
        self.outbox.enqueue(sop_uid, study_uid, relative_path, conn=conn)

    def run_analysis(self, study_uid: str, attempt: int = 1) -> None:
        """One analysis job; permanent errors mark the study failed, transient ones are retried."""
        try:
            result = analyze_study(self.context, study_uid, require_seeds=self.settings.analysis.require_seeds)
        except PermanentError as exc:
            self._failed(study_uid, str(exc))
            return
        except StudyBusy:
            # expected (a duplicate wake-up, a restart): not an error, no traceback; the job comes back in 5 s
            log.info("study %s is being analysed by another worker; trying again later", study_uid)
            raise RetryTask(delay=RETRY_DELAY_S) from None
        except WaitingForPriors as exc:
            log.warning("study %s: %s (will try again)", study_uid, exc)
            return
        except Exception as exc:
            if attempt > RETRIES:
                log.error("study %s: attempt %d failed, giving up", study_uid, attempt, exc_info=True)
                self._failed(study_uid, f"gave up after {attempt} attempts: {type(exc).__name__}: {exc}")
                return
            log.warning("study %s: attempt %d failed (%s: %s), will retry", study_uid, attempt, type(exc).__name__, exc)
            raise
        if result is not None:
            metrics.STUDIES_ANALYSED.labels("done").inc()
            self.outbox.wake()  # its rows are committed now

    def _failed(self, study_uid: str, reason: str) -> None:
        log.warning("study %s: analysis failed: %s", study_uid, reason)
        metrics.STUDIES_ANALYSED.labels("failed").inc()
        state.failed(self.engine, study_uid, reason)

    # ------------------------------------------------------------ lifecycle
    def _loop(self, name: str, body, interval_s: float, *, wakeup=None, next_s=None) -> None:  # type: ignore[no-untyped-def]
        def run() -> None:
            while not self._stop.is_set():
                try:
                    body()
                except Exception:
                    log.exception("%s: unexpected error (continuing)", name)
                wait_s = next_s(interval_s) if next_s is not None else interval_s
                if wakeup is not None:
                    wakeup.wait(wait_s)
                else:
                    self._stop.wait(wait_s)

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def start(self) -> None:
        recovered = self.archive.recover()
        if recovered["partial_files_removed"] or recovered["unacknowledged_rows_removed"]:
            log.warning(
                "recovered from an interrupted run: %(partial_files_removed)d partial files removed, "
                "%(unacknowledged_rows_removed)d unacknowledged index rows removed",
                recovered,
            )
        if recovered.get("lost_rows_removed") or recovered.get("quarantined") or recovered.get("orphans_indexed"):
            log.warning(
                "archive check at start-up: %(lost_rows_removed)d acknowledged instances have no (intact) file and "
                "were taken out of the index (send them again from the PACS; 'noduled verify' lists them), "
                "%(orphans_indexed)d files without index rows indexed, %(quarantined)d files moved to archive/.quarantine",
                recovered,
            )
        if self.settings.queue.redis_url:
            self.queue.wait_reachable(self.settings.queue.redis_url)
        self.queue.start_workers(self.settings.queue.workers)
        if self.settings.queue.workers > 0:
            self.warm_up()
        self.monitor.resume(all_running=self.queue.single_process)
        if self.scp is not None:
            self.scp.start()
        tick = min(1.0, max(0.1, self.settings.analysis.stable_age_s / 4))
        self._loop("stability", self.monitor.tick, tick, wakeup=self.monitor.wakeup, next_s=self.monitor.next_tick_s)
        self._loop("retention", self.purge_tick, self.settings.storage.purge_interval_s)
        t = threading.Thread(target=self.outbox.run, args=(self._stop,), name="delivery", daemon=True)
        t.start()
        self._threads.append(t)
        t = threading.Thread(
            target=self.probe.run,
            args=(self._stop,),
            kwargs={"interval_s": self.settings.delivery.probe_interval_s},
            name="destination-probe",
            daemon=True,
        )
        t.start()
        self._threads.append(t)
        if self.settings.http.enabled:
            self._start_health()

    def purge_tick(self) -> None:
        """Apply the retention policy once (:mod:`daemon.storage.retention`): age, then the disk high-water mark."""
        from daemon.storage.retention import purge

        st = self.settings.storage
        result = purge(
            self.engine,
            self.settings.archive_dir,
            self.settings.data_dir,
            now=state.utcnow(),
            retention_days=st.retention_days,
            high_water_mark_percent=st.high_water_mark_percent,
            low_water_mark_percent=st.low_water_mark_percent,
        )
        if result.studies:
            metrics.STUDIES_PURGED.inc(len(result.studies))
            metrics.PURGED_BYTES.inc(result.bytes_freed)
            log.info(
                "retention: %d studies purged, %d files, %.1f MB freed (disk was %.1f %% full)",
                len(result.studies),
                result.files_deleted,
                result.bytes_freed / 1e6,
                result.disk_used_percent,
            )

    def _start_health(self) -> None:
        from daemon.ops.health import HealthServer, standard_checks

        checks = standard_checks(
            scp=self.scp,
            engine=self.engine,
            data_dir=self.settings.data_dir,
            min_free_disk_mb=self.settings.storage.min_free_disk_mb,
            queue_ping=self.queue.ping,
            outbox=self.outbox,
        )
        checks["destinations"] = self.probe.health
        from daemon.storage.retention import archive_bytes

        gauges = {
            "noduled_destinations_down": lambda: float(self.probe.down_count()),
            "noduled_archive_bytes": lambda: float(archive_bytes(self.engine)),
            "noduled_queue_depth": lambda: float(self.queue.depth()),
            "noduled_outbox_pending": lambda: float(self.outbox.pending_count()),  # one COUNT, not the summary
        }
        from daemon.storage.integrity import health_check

        checks["archive"] = health_check(self.archive)
        self.health = HealthServer(self.settings.http.host, self.settings.http.port, checks, gauges)
        try:
            self.health.start()  # logs where it listens
        except OSError as exc:
            host, port = self.settings.http.host, self.settings.http.port
            raise OSError(f"cannot listen on {host}:{port} (http.host, http.port): {exc.strerror or exc}") from None

    def stop(self) -> None:
        if self.scp is not None:
            self.scp.stop()
        self._stop.set()
        self.monitor.wakeup.set()
        self.outbox.wake()
        self.queue.stop_workers()
        if self.context.preloader is not None:
            self.context.preloader.close()
        if self.health is not None:
            self.health.stop()
        for t in self._threads:
            t.join(timeout=10)
        self.engine.dispose()

    def wait(self) -> None:
        self._stop.wait()
