"""Longitudinal cases: the same patient on different dates, nodules with known volumes, VDTs and motion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from test_images import generate_case
from test_images.motion import Motion
from tests.support.phantoms import generated_case


def _motion(truth) -> Motion:
    m = truth["motion"]
    return Motion(tuple(m["rotation_deg_xyz"]), tuple(m["translation_mm"]), tuple(m["breathing_mm"]))


@pytest.fixture(scope="module")
def growth():
    return generated_case("growth", "small", seed=0)  # rendered once per process (tests/support/phantoms.py)


def test_same_patient_different_dates(growth):
    base, follow = growth
    assert base.patient["id"] == follow.patient["id"] and base.patient["birth_date"] == follow.patient["birth_date"]
    assert follow.study_date > base.study_date and base.study_uid != follow.study_uid
    assert base.frame_of_reference_uid != follow.frame_of_reference_uid


def test_growth_statuses_and_vdt(growth):
    base, follow = growth
    by_id = {n["id"]: n for n in follow.nodules}
    days = (follow.study_date - base.study_date).days
    assert by_id["N1"]["growth"]["status"] == "growing"
    prior = by_id["N1"]["growth"]["priors"][0]
    b1 = next(n for n in base.nodules if n["id"] == "N1")
    assert prior["prior_volume_mm3"] == b1["volume_mm3"]
    vdt = days * math.log(2) / math.log(by_id["N1"]["volume_mm3"] / b1["volume_mm3"])
    assert vdt == pytest.approx(180.0, rel=1e-6)  # the case's stated VDT
    assert by_id["N2"]["growth"]["status"] == "stable"
    assert by_id["N3"]["growth"]["status"] == "decreased"
    assert by_id["N4"]["growth"]["status"] == "new" and "N4" not in {n["id"] for n in base.nodules}
    assert "N5" not in by_id and [r["id"] for r in follow.truth["resolved_nodules"]] == ["N5"]
    for n in follow.nodules:
        old = next((b for b in base.nodules if b["id"] == n["id"]), None)
        if old is not None:
            assert old["tracking_uid"] == n["tracking_uid"]


def test_known_motion_maps_nodules_between_studies(growth):
    """Registration truth: body-frame positions agree; the rigid + breathing motion is really applied."""
    base, follow = growth
    mb, mf = _motion(base.truth), _motion(follow.truth)
    assert not mf.is_identity
    for n in follow.nodules:
        old = next((b for b in base.nodules if b["id"] == n["id"]), None)
        if old is None:
            continue
        predicted = mf.to_scan(mb.to_body(np.asarray(old["centroid_lps_mm"])[None]))[0]
        assert np.linalg.norm(predicted - np.asarray(n["centroid_lps_mm"])) < 0.05
        assert np.linalg.norm(np.asarray(old["centroid_lps_mm"]) - np.asarray(n["centroid_lps_mm"])) > 5.0
        # and the image shows the nodule where the truth says
        k, j, i = np.rint(follow.lps_to_voxel(n["centroid_lps_mm"])).astype(int)
        assert follow.clean_hu[k, j, i] > -200


def test_truth_only_mode_gives_the_same_truth(growth):
    fast = generate_case("growth", "small", seed=0, images=False)
    assert [s.nodules for s in fast] == [s.nodules for s in growth]
    assert fast[0].hu.size == 0 and fast[0].truth["images"] is False


def test_slow_growth_three_time_points():
    studies = generate_case("slow-growth", "small", seed=1, images=False)
    assert len(studies) == 3 and len({s.patient["id"] for s in studies}) == 1
    vols = [next(n for n in s.nodules if n["id"] == "N1")["volume_mm3"] for s in studies]
    days = [(s.study_date - studies[0].study_date).days for s in studies]
    assert vols[2] / vols[0] > 1.25  # more than 25 % over two intervals
    vdt = days[2] * math.log(2) / math.log(vols[2] / vols[0])
    assert vdt > 600
    for s in studies[1:]:
        n1 = next(n for n in s.nodules if n["id"] == "N1")
        assert all(p["vdt_days"] > 600 for p in n1["growth"]["priors"])


def test_ggn_growth_develops_a_solid_core():
    studies = generate_case("ggn-growth", "small", seed=2, images=False)
    ps = [next(n for n in s.nodules if n["id"] == "N2") for s in studies]
    assert [p["composition"] for p in ps] == ["part-solid"] * 3
    assert ps[0]["solid_volume_mm3"] < ps[1]["solid_volume_mm3"] < ps[2]["solid_volume_mm3"]
    ggn = [next(n for n in s.nodules if n["id"] == "N1") for s in studies]
    assert ggn[0]["volume_mm3"] < ggn[2]["volume_mm3"] and ggn[2]["solid_volume_mm3"] == 0.0
