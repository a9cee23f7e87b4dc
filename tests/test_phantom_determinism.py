"""Same seed, same study: arrays, UIDs and written bytes are identical; another seed differs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from test_images import generate_case, render_single_nodule, write_study


def test_single_nodule_is_deterministic_in_the_seed():
    a = render_single_nodule("lobulated", 8.0, seed=11)
    b = render_single_nodule("lobulated", 8.0, seed=11)
    c = render_single_nodule("lobulated", 8.0, seed=12)
    assert np.array_equal(a.hu, b.hu) and a.nodules == b.nodules and a.study_uid == b.study_uid
    assert not np.array_equal(a.hu, c.hu) and a.study_uid != c.study_uid
    assert a.nodules[0]["volume_mm3"] != c.nodules[0]["volume_mm3"]  # a different random shape


def test_case_is_deterministic_and_written_bytes_are_identical(tmp_path):
    kw = dict(size="small", seed=3, n_slices=24)
    (a,) = generate_case("no-nodules", **kw)
    (b,) = generate_case("no-nodules", **kw)
    assert np.array_equal(a.hu, b.hu)
    assert (a.study_uid, a.series_uid, a.patient) == (b.study_uid, b.series_uid, b.patient)
    pa = write_study(a, tmp_path / "a")
    pb = write_study(b, tmp_path / "b")
    files = [pa["ct"][0], pa["ct"][-1], pa["sr"], pa["gsps"], pa["seeds_json"], pa["truth"]]
    twins = [pb["ct"][0], pb["ct"][-1], pb["sr"], pb["gsps"], pb["seeds_json"], pb["truth"]]
    for fa, fb in zip(files, twins):
        assert Path(fa).read_bytes() == Path(fb).read_bytes(), fa
    (c,) = generate_case("no-nodules", size="small", seed=4, n_slices=24)
    assert not np.array_equal(a.hu, c.hu) and c.patient["id"] != a.patient["id"]
