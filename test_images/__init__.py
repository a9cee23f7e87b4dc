"""Deterministic synthetic low-dose chest CT studies with exact ground truth.

Public API::

    from test_images import generate_case, render_single_nodule, write_study, PhantomStudy

- ``generate_case(name, size="small", seed=0, **params)`` -> list[PhantomStudy] (date order)
- ``render_single_nodule(kind, diameter_mm, *, noise_sd_hu, spacing_mm, seed, **shape)`` -> PhantomStudy
- ``write_study(study, out_dir)`` -> dict of written paths (CT series, seed SR, seed GSPS, seeds.json)
- ``list_cases()`` -> [(name, description)]

Ground truth is computed from the analytic shapes (see :mod:`test_images.shapes`).
"""

from typing import Any

from test_images.cases import generate_case, list_cases
from test_images.single import render_single_nodule
from test_images.study import PhantomStudy


def write_study(study: PhantomStudy, out_dir: Any) -> dict[str, Any]:
    """Write ``study`` as DICOM (CT series, seed SR, seed GSPS) plus seeds.json under ``out_dir``; returns paths."""
    from test_images.dicom_out import write_study as _write

    return _write(study, out_dir)


__all__ = ["PhantomStudy", "generate_case", "list_cases", "render_single_nodule", "write_study"]
