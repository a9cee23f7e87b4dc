"""What the first analysis of a node process would otherwise pay: imports and highdicom's tables.

The analysis imports SimpleITK, SciPy, highdicom and the report builders lazily, and highdicom
reads its IOD/module tables (JSON, several MB) the first time it builds a SEG or an SR: about a
second on this machine, paid by the first study after every start.  :func:`warm_up` does that at
start-up, before the node accepts work (``noduled serve`` with workers, ``noduled worker``), so the
first study is as fast as the next ones.  Failures are ignored: the analysis imports what it
needs itself.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

_MODULES = (
    "SimpleITK",
    "scipy.ndimage",
    "highdicom",
    "segmentation.io",
    "segmentation.production",
    "segmentation.characterize",
    "dicom_sr.seeds",
    "dicom_sr.read_report",
    "dicom_sr.report",
    "dicom_sr.seg",
    "dicom_sr.key_images",
    "dicom_sr.pdf_report",
)


def warm_up() -> float:
    """Import the analysis modules and load highdicom's standard tables; returns the seconds it took."""
    t0 = time.perf_counter()
    for name in _MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the analysis reports a missing module itself
            log.debug("warm-up: %s not imported (%s)", name, exc)
    try:  # highdicom's lru-cached tables (read on the first SEG/SR otherwise)
        from highdicom import _standard_utils as tables

        for fn in ("get_sop_class_iod_map", "get_iod_module_map", "get_module_attribute_map"):
            getattr(tables, fn)()
    except Exception as exc:  # another highdicom version: the first SEG/SR loads them itself
        log.debug("warm-up: highdicom tables not loaded (%s)", exc)
    seconds = time.perf_counter() - t0
    log.debug("warm-up took %.1f s", seconds)
    return seconds
