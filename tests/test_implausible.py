"""Issue 18 point 6 (the flow helper's part): implausible CT, two acquisitions in one series, "study busy".

On the single-nodule phantom: one slice replaced by random pixel data must fail with the reason
(it was reported as a 75 mm benign calcification, Category 1); a series holding two sweeps is
analysed on one of them (it failed as "gantry tilt 87.1 degrees"); a study busy in another worker
is retried without an ERROR traceback.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from daemon.analysis.chain import AnalysisError, AnalysisInputs, analyze


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    """One 8 mm solid nodule (the phantom of tests/test_analysis.py)."""
    from test_images import render_single_nodule, write_study

    study = render_single_nodule("solid", 8.0, seed=3)
    return {"study": study, "paths": write_study(study, tmp_path_factory.mktemp("single"))}


def _cts(single: dict) -> list:  # type: ignore[type-arg]
    return [dcmread(p) for p in single["paths"]["ct"]]


def test_a_slice_of_random_pixel_data_fails_the_study_with_the_reason(single: dict) -> None:
    cts = _cts(single)
    k = len(cts) // 2
    noise = np.random.default_rng(0).integers(0, 4095, size=cts[k].pixel_array.shape)
    cts[k].PixelData = noise.astype(cts[k].pixel_array.dtype).tobytes()
    with pytest.raises(AnalysisError, match=r"does not continue its neighbours .*corrupted or random pixel data"):
        analyze(AnalysisInputs(study_datasets=cts, seed_objects=[dcmread(single["paths"]["sr"])]))


def test_a_segmentation_larger_than_any_nodule_fails() -> None:
    from daemon.analysis.plausibility import check_findings

    leaked = SimpleNamespace(tracking_id="Nodule 1", measurement=SimpleNamespace(mean_diameter_mm=75.3))
    with pytest.raises(AnalysisError, match="segmentation of Nodule 1 is implausible: mean diameter 75 mm"):
        check_findings([leaked])  # type: ignore[list-item]
    check_findings([SimpleNamespace(tracking_id="Nodule 2", measurement=SimpleNamespace(mean_diameter_mm=28.0))])  # type: ignore[list-item]


def test_two_acquisitions_in_one_series_are_analysed_on_the_marked_one(single: dict) -> None:
    cts = _cts(single)
    sr = dcmread(single["paths"]["sr"])
    alone = analyze(AnalysisInputs(study_datasets=cts, seed_objects=[sr])).assessment
    second = []
    for ds in cts:
        ds.AcquisitionNumber = 1
        again = copy.deepcopy(ds)
        again.SOPInstanceUID = generate_uid()
        again.AcquisitionNumber = 2
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        again.ImagePositionPatient = [x + 15.0, y, z + 0.4]  # a second sweep, table moved
        second.append(again)
    result = analyze(AnalysisInputs(study_datasets=cts + second, seed_objects=[sr]))
    a = result.assessment
    assert a.category == alone.category and len(a.findings) == 1
    assert any(
        "2 acquisitions over the same range" in n and "analysed acquisition 1" in n and "reader marked" in n
        for n in a.notes
    )


def test_study_busy_is_retried_without_an_error_traceback(tmp_path: Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from huey.exceptions import RetryTask

    import daemon.node as node_module
    from daemon.settings import Settings
    from daemon.workflow.state import StudyBusy

    settings = Settings(storage={"data_dir": str(tmp_path)}, http={"enabled": False}, scp={"port": 11199})
    node = node_module.Node(settings)

    def busy(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise StudyBusy("1.2.3")

    monkeypatch.setattr(node_module, "analyze_study", busy)
    with caplog.at_level(logging.INFO), pytest.raises(RetryTask):
        node.run_analysis("1.2.3", attempt=1)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert "being analysed by another worker" in caplog.text
    node.engine.dispose()
