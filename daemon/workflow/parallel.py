"""Seeds measured in parallel processes (``[analysis] processes``): the nodules of a study are independent.

:func:`process_map` is a ``measure_map`` for :func:`daemon.analysis.findings.segment_seeds`: it
forks ``processes`` children that inherit the CT volume and the lung mask (copy-on-write, nothing
is pickled but the seed positions and the measurements), each measures its share of the seeds
with :func:`daemon.analysis.findings.measure_seed`, and the results come back in seed order, so
the findings are the same as measured one by one.  Fork only (Linux); where fork is not
available, or a child fails to start, the seeds are measured in this process.  ITK runs one
thread in each child (the children are the parallelism).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

#: the children's results are waited for this long (plus per seed) at most, then the seeds are measured here
CHILDREN_TIMEOUT_S = 120.0
CHILDREN_TIMEOUT_PER_SEED_S = 30.0

_inherited: tuple[Any, Any] | None = None  # (image, lungs), set just before the fork
_fork_lock = threading.Lock()  # one fork at a time: each takes the (image, lungs) of its own study


def default_processes() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _measure(position: Sequence[float]) -> tuple[Any, str | None, Any]:
    from daemon.analysis.findings import measure_seed

    assert _inherited is not None
    image, lungs = _inherited
    return measure_seed(image, position, lungs)


def _child_init() -> None:
    import signal

    # the node's handlers (SIGTERM: stop the node) are not the child's: the parent ends it
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    except Exception:  # pragma: no cover - SimpleITK is a dependency
        pass


def process_map(processes: int):  # type: ignore[no-untyped-def]
    """A ``measure_map`` using up to ``processes`` forked processes (1: in this process)."""

    def measure_map(image: Any, lungs: Any, positions: Sequence[Sequence[float]]) -> list[tuple[Any, str | None, Any]]:
        from daemon.analysis.findings import measure_seed

        n = min(processes, len(positions))
        if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            return [measure_seed(image, p, lungs) for p in positions]
        global _inherited
        with _fork_lock:
            _inherited = (image, lungs)
            try:
                pool = multiprocessing.get_context("fork").Pool(n, initializer=_child_init)
            except OSError as exc:
                log.warning("cannot start %d measuring processes (%s); measuring in this process", n, exc)
                return [measure_seed(image, p, lungs) for p in positions]
            finally:
                _inherited = None  # the children have their copy; this process keeps no reference
        timeout_s = CHILDREN_TIMEOUT_S + CHILDREN_TIMEOUT_PER_SEED_S * len(positions)
        try:
            results = pool.map_async(_measure, [tuple(float(v) for v in p) for p in positions], chunksize=1).get(
                timeout_s
            )
        except multiprocessing.TimeoutError:
            # a child forked while another thread held a lock it then needs never returns: the study must not
            # wait for it (its lease is kept alive by this process's heartbeat) -- measure here instead
            pool.terminate()
            log.warning("measuring processes gave no result in %.0f s; measuring in this process", timeout_s)
            return [measure_seed(image, p, lungs) for p in positions]
        except BaseException:
            pool.terminate()
            raise
        pool.close()  # the children exit once the (done) tasks are out
        pool.join()
        return list(results)

    return measure_map
