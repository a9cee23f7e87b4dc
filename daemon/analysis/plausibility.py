"""Is this a CT a report can be made on? (pure)  Implausible images fail the study with the reason.

One slice of random pixel data in a series was segmented as a 75 mm "benign calcification" and
reported as Category 1.  Two checks, both cheap:

- every slice continues its neighbours: a slice whose mean absolute difference to each of its
  neighbours is far above that of the rest of the series (corrupted, random or foreign pixel
  data) makes the series unusable;
- a segmented nodule is nodule-sized: a mean diameter above :data:`MAX_NODULE_MEAN_DIAMETER_MM`
  is a segmentation that leaked (a lung nodule is at most 30 mm; beyond is a mass the reader
  reports, not volumetry).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from daemon.analysis.errors import AnalysisError
from dicom_sr.findings import NoduleFinding

MAX_NODULE_MEAN_DIAMETER_MM = 60.0
_MIN_JUMP_HU = 200.0  # a slice-to-slice mean difference below this is never implausible
_JUMP_FACTOR = 4.0  # ... nor one below this many times the series' median


def check_slices(volume_hu: np.ndarray, datasets: Sequence[Dataset]) -> None:
    """Raise :class:`AnalysisError` for a slice that does not continue its neighbours. ``volume_hu``: (z, y, x)."""
    n = volume_hu.shape[0]
    if n < 3:
        return
    step = max(1, volume_hu.shape[1] // 128)  # every 4th row and column of a 512 matrix is plenty
    sub = volume_hu[:, ::step, ::step].astype(np.float32)
    diffs = np.abs(np.diff(sub, axis=0)).mean(axis=(1, 2))  # diffs[k]: between slices k and k+1
    limit = max(_MIN_JUMP_HU, _JUMP_FACTOR * float(np.median(diffs)))
    for k in range(n):
        around = [diffs[k - 1]] if k > 0 else []
        around += [diffs[k]] if k < n - 1 else []
        if around and min(around) > limit:
            uid = datasets[k].get("SOPInstanceUID", "?") if k < len(datasets) else "?"
            raise AnalysisError(
                f"CT slice {k + 1} of {n} (instance {uid}) does not continue its neighbours (mean difference "
                f"{min(around):.0f} HU, {float(np.median(diffs)):.0f} HU between the other slices): corrupted or "
                "random pixel data; not analysed"
            )


def check_findings(findings: Sequence[NoduleFinding]) -> None:
    """Raise :class:`AnalysisError` for a segmentation no nodule can have."""
    for f in findings:
        m = f.measurement
        if m is not None and m.mean_diameter_mm > MAX_NODULE_MEAN_DIAMETER_MM:
            raise AnalysisError(
                f"the segmentation of {f.tracking_id or 'a nodule'} is implausible: mean diameter "
                f"{m.mean_diameter_mm:.0f} mm (a lung nodule is at most 30 mm); check the images at the mark"
            )
