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

With a ``[pacs]`` to ask, the patient's priors are retrieved from the study's first CT image on,
while the rest of it arrives (``prefetch``: :func:`daemon.workflow.priors.prefetch_priors`, which
leaves out a study older than another of the patient's: a prior arriving by that retrieval); the
analysis waits for that retrieval to end before it asks the PACS itself, and then finds the
priors in the archive (and takes their images as the parser read them: :meth:`Preloader.read_study`).

Apart from the prefetched priors (stored as any retrieved instance is), nothing is written: the
preload reads the archive and the index and holds its result in memory only, so a crash loses
nothing but the head start.  In-process only: ``noduled worker``
processes elsewhere (``[queue] redis_url``) analyse as before.  At most ``max_entries`` results
are held (one per worker); a result not taken within ``max_age_s`` is dropped.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import Engine

from daemon.analysis.chain import AnalysisInputs, PreparedSeries, prepare
from daemon.analysis.comparison import PriorExam
from daemon.analysis.sop_classes import CT_IMAGE_STORAGE
from daemon.ops import metrics
from daemon.storage.archive import Archive
from daemon.storage.queries import predecessor_report, study_files
from segmentation.io import decode_ahead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preloaded:
    files: tuple[str, ...]  # the CT and seed files it was computed from (the job compares its own list)
    datasets: list[Dataset]  # the CT images read (with pixel data)
    prepared: PreparedSeries


#: what the prefetch returns: prior study -> (the CT files it was loaded from, the exam with its series loaded
#: and lung-masked); empty or None when nothing was loaded ahead
LoadedPriors = dict[str, tuple[tuple[str, ...], PriorExam]]

_T = TypeVar("_T")


@dataclass
class _Entry(Generic[_T]):
    future: Future[_T]
    started: float


def _drop_older(held: dict[str, _Entry[_T]], started_before: float) -> None:
    for uid, entry in list(held.items()):
        if entry.started < started_before:
            del held[uid]


class Preloader:
    """Stages 1-3 of released studies, computed ahead in background threads (one per held result)."""

    def __init__(
        self,
        engine: Engine,
        archive: Archive,
        *,
        measure_map: Callable | None = None,  # type: ignore[type-arg]
        prefetch: Callable[[str], LoadedPriors | None] | None = None,  # retrieves a study's priors (and loads them)
        max_entries: int = 2,
        max_age_s: float = 120.0,
        max_parsed: int = 1000,  # CT instances held parsed and decoded (about 1 MB each at 512 x 512: ~3 full studies)
        max_pending_bytes: int = 256 * 1024 * 1024,  # instances received and not yet parsed
    ) -> None:
        self.engine, self.archive = engine, archive
        self.measure_map = measure_map
        self.max_entries = max(1, max_entries)
        self.max_age_s = max_age_s
        self._entries: dict[str, _Entry[Preloaded | None]] = {}
        self._lock = threading.Lock()
        # CT instances parsed as they arrive: study -> SOP Instance UID -> dataset (what the preload reads first)
        self._parsed: dict[str, dict[str, Dataset]] = {}
        self._touched: dict[str, float] = {}
        self._parsed_count = 0
        self.max_parsed = max_parsed
        # a sender faster than the parser (or one that never stops) must not pile received bytes up in memory:
        # beyond max_pending_bytes an instance is not parsed ahead (its analysis reads it from the archive)
        self.max_pending_bytes = max_pending_bytes
        self._pending_bytes = 0
        # (study, SOP Instance UID, bytes) to parse, an Event to set once everything before it is parsed, None: stop
        self._arrivals: queue.SimpleQueue[tuple[str, str, bytes] | threading.Event | None] = queue.SimpleQueue()
        self._parser = threading.Thread(target=self._parse_arrivals, name="preload-parse", daemon=True)
        self._parser.start()
        self._pool = ThreadPoolExecutor(max_workers=self.max_entries, thread_name_prefix="preload")
        self.prefetch = prefetch
        self._prefetches: dict[str, _Entry[LoadedPriors | None]] = {}
        self._fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")  # one retrieval at a time

    def stored(self, study_uid: str, sop_class_uid: str, sop_instance_uid: str, data: bytes) -> None:
        """The SCP's hook for each new instance: a CT image is parsed in the background while the rest arrive."""
        if sop_class_uid != CT_IMAGE_STORAGE:
            return
        with self._lock:
            self._start_prefetch(study_uid, time.monotonic())  # the first CT image: while the rest arrives
            if self._pending_bytes + len(data) > self.max_pending_bytes:
                return
            self._pending_bytes += len(data)
        self._arrivals.put((study_uid, sop_instance_uid, data))

    def _parse_arrivals(self) -> None:
        while (item := self._arrivals.get()) is not None:
            if isinstance(item, threading.Event):
                item.set()
                continue
            study_uid, sop_uid, data = item
            with self._lock:
                self._pending_bytes -= len(data)
            try:
                ds = dcmread(io.BytesIO(data))
            except Exception:  # the preload reads the archived file (and the analysis reports what is wrong)
                continue
            decode_ahead(ds)  # the load at the release then only copies
            now = time.monotonic()
            with self._lock:
                for uid, at in list(self._touched.items()):  # studies nobody preloaded (no seeds yet ...)
                    if now - at > self.max_age_s:
                        self._parsed_count -= len(self._parsed.pop(uid, {}))
                        del self._touched[uid]
                if self._parsed_count >= self.max_parsed:
                    continue  # a burst larger than memory should hold: read from the archive later
                self._parsed.setdefault(study_uid, {})[sop_uid] = ds
                self._parsed_count += 1
                self._touched[study_uid] = now

    def read_study(self, study_uid: str, paths: Iterable[Path]) -> list[Dataset]:
        """The CT instances of ``study_uid`` at ``paths`` (archive files, named by SOP Instance UID): those
        parsed as they arrived (a prior just retrieved) are taken from memory, decoded; the others read."""
        with self._lock:
            arriving = study_uid in self._touched
        if arriving:  # the last instances of a retrieval may still be in the parser's queue
            self._wait_parsed()
        parsed = self._take_parsed(study_uid)
        return [parsed.get(Path(p).stem) or dcmread(p) for p in paths]

    def _take_parsed(self, study_uid: str) -> dict[str, Dataset]:
        with self._lock:
            parsed = self._parsed.pop(study_uid, {})
            self._touched.pop(study_uid, None)
            self._parsed_count -= len(parsed)
        return parsed

    def released(self, study_uids: Iterable[str]) -> None:
        """The SCP's release hook: preload each study (in the background; returns at once)."""
        now = time.monotonic()
        with self._lock:
            _drop_older(self._entries, now - self.max_age_s)
            _drop_older(self._prefetches, now - self.max_age_s)
            for study_uid in study_uids:
                # started by its first CT image, unless this association carried none (seeds sent later)
                self._start_prefetch(study_uid, now)
                if study_uid not in self._entries and len(self._entries) >= self.max_entries:
                    continue  # the workers are behind: this study is loaded by its analysis
                self._entries[study_uid] = _Entry(self._pool.submit(self._run, study_uid), now)

    def _start_prefetch(self, study_uid: str, now: float) -> None:
        """Retrieve (and load) the study's priors in the background, once (the caller holds the lock)."""
        if self.prefetch is not None and study_uid not in self._prefetches:
            self._prefetches[study_uid] = _Entry(self._fetcher.submit(self._fetch, study_uid), now)

    def _fetch(self, study_uid: str) -> LoadedPriors | None:
        t0 = time.perf_counter()
        result = self.prefetch(study_uid)  # type: ignore[misc]
        metrics.STAGE_SECONDS.labels("preload_fetch_priors").observe(time.perf_counter() - t0)
        if result:
            self._bound_loaded_priors()
        return result

    def _bound_loaded_priors(self) -> None:
        """Room for one more study's priors held loaded: at most ``max_entries`` (the studies of a burst, or
        of workers elsewhere, that no analysis here took); the oldest go, their analyses load them."""
        with self._lock:
            held = sorted(
                (entry.started, uid)
                for uid, entry in self._prefetches.items()
                if entry.future.done() and entry.future.exception() is None and entry.future.result()
            )
            for _, uid in held[: max(0, len(held) - self.max_entries + 1)]:
                del self._prefetches[uid]

    def wait_prefetch(self, study_uid: str) -> LoadedPriors | None:
        """Until the priors of ``study_uid`` retrieved as it arrived are in the archive (at once when none
        were asked for); what ``prefetch`` returned (the priors loaded ahead), or None.  A retrieval that
        failed is only logged: the analysis asks the PACS itself."""
        with self._lock:
            entry = self._prefetches.pop(study_uid, None)
        if entry is None:
            return None
        try:
            return entry.future.result(timeout=self.max_age_s)
        except Exception as exc:
            log.debug("study %s: priors not prefetched (%s: %s)", study_uid, type(exc).__name__, exc)
            return None

    def _run(self, study_uid: str) -> Preloaded | None:
        t0 = time.perf_counter()
        files = study_files(self.engine, self.archive, study_uid)
        if not files.ct_paths or not files.seed_paths:
            return None
        seeds = _seed_objects(files.seed_paths)
        if not seeds:
            return None
        predecessor = predecessor_report(self.engine, self.archive, study_uid)
        self._wait_parsed()
        parsed = self._take_parsed(study_uid)
        datasets = [parsed.get(uid) or dcmread(p) for uid, p in zip(files.ct_uids, files.ct_paths, strict=True)]
        metrics.STAGE_SECONDS.labels("preload_read").observe(time.perf_counter() - t0)
        inputs = AnalysisInputs(study_datasets=datasets, seed_objects=seeds, predecessor=predecessor)
        prepared = prepare(inputs, measure_map=self.measure_map)
        for stage, seconds in prepared.timings_s.items():
            metrics.STAGE_SECONDS.labels(f"preload_{stage}").observe(seconds)
        log.debug("study %s: preloaded in %.1f s", study_uid, time.perf_counter() - t0)
        return Preloaded(tuple(str(p) for p in files.ct_paths + files.seed_paths), datasets, prepared)

    def take(self, study_uid: str, paths: Iterable[str | Path]) -> Preloaded | None:
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
            self._prefetches.pop(study_uid, None)

    def _wait_parsed(self, timeout_s: float = 10.0) -> None:
        """Until the instances that arrived before the release are parsed (the queue is short by then)."""
        marker = threading.Event()
        self._arrivals.put(marker)
        marker.wait(timeout_s)

    def close(self) -> None:
        self._arrivals.put(None)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._fetcher.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self._entries.clear()
            self._prefetches.clear()
            self._parsed.clear()
            self._parsed_count = 0


def _seed_objects(paths: list) -> list[Dataset]:  # type: ignore[type-arg]
    from dicom_sr.seeds import is_seed_object

    out: list[Dataset] = []
    for path in paths:
        ds = dcmread(path)
        if is_seed_object(ds):
            out.append(ds)
    return out


__all__ = ["Preloaded", "Preloader"]
