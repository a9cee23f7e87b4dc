"""Load and segment a study while its study-complete wait runs (``[analysis] preload``).

When the association that carried a study is released, the study is not ready yet: it becomes
ready ``release_quiet_s`` later if nothing else arrives (:mod:`daemon.workflow.stability`).  The
:class:`Preloader` uses that time: it reads the study's CT images and seed objects from the
archive and runs stages 1-3 of the chain (:func:`daemon.analysis.chain.prepare`: seeds, load,
segment) in a background thread of the node.  The analysis job
(:func:`daemon.workflow.study.analyze_study`) takes the result when it was computed from the
same seed objects, CT images and predecessor report it analyses (the chain checks the key) and
waits for it when it is still being computed; anything else (more instances came, another
seed object, a failed preload) and the job computes the stages itself, as without preload.

Nothing is written: the preload reads the archive and the index and holds its result in
memory only, so a crash loses nothing but the head start.  In-process only: ``noduled worker``
processes elsewhere (``[queue] redis_url``) analyse as before.  At most ``max_entries`` results
are held (one per worker); a result not taken within ``max_age_s`` is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset

from daemon.analysis.chain import AnalysisInputs, PreparedSeries, prepare
from daemon.ops import metrics
from daemon.storage.archive import Archive
from daemon.storage.queries import predecessor_report, study_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preloaded:
    files: tuple[str, ...]  # the CT and seed files it was computed from (the job compares its own list)
    datasets: list[Dataset]  # the CT images read (with pixel data)
    prepared: PreparedSeries


@dataclass
class _Entry:
    future: Future[Preloaded | None]
    started: float


class Preloader:
    """Stages 1-3 of released studies, computed ahead in background threads (one per held result)."""

    def __init__(
        self,
        engine,  # type: ignore[no-untyped-def]
        archive: Archive,
        *,
        measure_map: Callable | None = None,  # type: ignore[type-arg]
        max_entries: int = 2,
        max_age_s: float = 120.0,
    ) -> None:
        self.engine, self.archive = engine, archive
        self.measure_map = measure_map
        self.max_entries = max(1, max_entries)
        self.max_age_s = max_age_s
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.max_entries, thread_name_prefix="preload")

    def released(self, study_uids: Iterable[str]) -> None:
        """The SCP's release hook: preload each study (in the background; returns at once)."""
        now = time.monotonic()
        with self._lock:
            for uid, entry in list(self._entries.items()):
                if now - entry.started > self.max_age_s:
                    del self._entries[uid]
            for study_uid in study_uids:
                if study_uid not in self._entries and len(self._entries) >= self.max_entries:
                    continue  # the workers are behind: this study is loaded by its analysis
                self._entries[study_uid] = _Entry(self._pool.submit(self._run, study_uid), now)

    def _run(self, study_uid: str) -> Preloaded | None:
        t0 = time.perf_counter()
        files = study_files(self.engine, self.archive, study_uid)
        if not files.ct_paths or not files.seed_paths:
            return None
        seeds = _seed_objects(files.seed_paths)
        if not seeds:
            return None
        predecessor = predecessor_report(self.engine, self.archive, study_uid)
        datasets = [dcmread(p) for p in files.ct_paths]
        metrics.STAGE_SECONDS.labels("preload_read").observe(time.perf_counter() - t0)
        inputs = AnalysisInputs(study_datasets=datasets, seed_objects=seeds, predecessor=predecessor)
        prepared = prepare(inputs, measure_map=self.measure_map)
        for stage, seconds in prepared.timings_s.items():
            metrics.STAGE_SECONDS.labels(f"preload_{stage}").observe(seconds)
        log.debug("study %s: preloaded in %.1f s", study_uid, time.perf_counter() - t0)
        return Preloaded(tuple(str(p) for p in files.ct_paths + files.seed_paths), datasets, prepared)

    def take(self, study_uid: str, paths: Iterable[str]) -> Preloaded | None:
        """The preloaded stages of ``study_uid`` if they were computed from exactly these files (waiting
        for them when they are still being computed); else None (the job computes them itself)."""
        with self._lock:
            entry = self._entries.pop(study_uid, None)
        if entry is None:
            return None
        try:
            preloaded = entry.future.result(timeout=self.max_age_s)
        except Exception as exc:  # the analysis computes (and reports) it itself
            log.debug("study %s: preload failed (%s: %s)", study_uid, type(exc).__name__, exc)
            return None
        if preloaded is None or preloaded.files != tuple(str(p) for p in paths):
            return None
        return preloaded

    def discard(self, study_uid: str) -> None:
        """Drop what was preloaded for ``study_uid`` (its job did not need it)."""
        with self._lock:
            self._entries.pop(study_uid, None)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._entries.clear()


def _seed_objects(paths: list) -> list[Dataset]:  # type: ignore[type-arg]
    from dicom_sr.seeds import is_seed_object

    out = []
    for path in paths:
        ds = dcmread(path)
        if is_seed_object(ds):
            out.append(ds)
    return out


__all__ = ["Preloaded", "Preloader"]
