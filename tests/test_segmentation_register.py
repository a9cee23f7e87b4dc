"""Registration of a prior CT to the current one and nodule correspondence (segmentation.register).

Phantom pairs with a known repositioning (shift, rotation) and breathing
deformation between scans: the current truth centroid of each nodule, mapped
into the prior, must land within 2 mm of that nodule's prior truth centroid;
matching must pair every nodule by its tracking UID and find the new and the
resolved ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from segmentation.io import image_from_array
from segmentation.lungs import lung_mask
from segmentation.register import (
    NoduleMatch,
    Registration,
    RegistrationError,
    find_in_prior,
    match_nodules,
    register,
)
from test_images import generate_case

pytestmark = pytest.mark.timeout(120)


def _image(study) -> sitk.Image:
    return image_from_array(study.hu, study.origin_lps_mm, study.spacing_mm)


@pytest.fixture(scope="module")
def growth():
    """The `growth` case (baseline + 12 months, N4 new, N5 resolved), registered once with lung masks."""
    prior_study, current_study = generate_case("growth", size="small", seed=0, keep_clean=False)
    prior, current = _image(prior_study), _image(current_study)
    prior_lungs, current_lungs = lung_mask(prior), lung_mask(current)
    reg = register(current, prior, current_lungs=current_lungs, prior_lungs=prior_lungs)
    return {
        "prior_study": prior_study,
        "current_study": current_study,
        "prior": prior,
        "current": current,
        "prior_lungs": prior_lungs,
        "current_lungs": current_lungs,
        "reg": reg,
    }


@pytest.fixture(scope="module")
def slow_growth():
    """The `slow-growth` case: third round registered to the second (the largest shift between rounds)."""
    studies = generate_case("slow-growth", size="small", seed=0, keep_clean=False)
    reg = register(_image(studies[2]), _image(studies[1]))  # lung masks computed inside
    return {"prior_study": studies[1], "current_study": studies[2], "reg": reg}


def _pairs(prior_study, current_study):
    by_uid = {n["tracking_uid"]: n for n in prior_study.nodules}
    return [(n, by_uid[n["tracking_uid"]]) for n in current_study.nodules if n["tracking_uid"] in by_uid]


@pytest.mark.parametrize("case", ["growth", "slow_growth"])
def test_mapped_centroids_land_within_2_mm_of_the_prior_truth(case, request):
    data = request.getfixturevalue(case)
    reg: Registration = data["reg"]
    pairs = _pairs(data["prior_study"], data["current_study"])
    assert len(pairs) >= 2
    for cur, pri in pairs:
        unregistered_mm = np.linalg.norm(np.subtract(cur["centroid_lps_mm"], pri["centroid_lps_mm"]))
        assert unregistered_mm > 10.0  # the studies really are misaligned
        mapped = reg.current_to_prior(cur["centroid_lps_mm"])
        error_mm = np.linalg.norm(np.subtract(mapped, pri["centroid_lps_mm"]))
        assert error_mm < 2.0, f"{cur['id']}: mapped centroid {error_mm:.2f} mm from the prior truth"


@pytest.mark.parametrize("case", ["growth", "slow_growth"])
def test_prior_to_current_inverts_the_mapping(case, request):
    data = request.getfixturevalue(case)
    reg: Registration = data["reg"]
    assert reg.stages == ("rigid", "affine", "bspline")
    assert reg.seconds > 0 and np.isfinite(reg.metric_value)
    for cur, pri in _pairs(data["prior_study"], data["current_study"]):
        back = reg.prior_to_current(reg.current_to_prior(cur["centroid_lps_mm"]))
        assert np.linalg.norm(np.subtract(back, cur["centroid_lps_mm"])) < 0.01
        into_current = reg.prior_to_current(pri["centroid_lps_mm"])
        assert np.linalg.norm(np.subtract(into_current, cur["centroid_lps_mm"])) < 2.0


def test_match_nodules_pairs_by_identity_and_finds_new_and_resolved(growth):
    current, prior = growth["current_study"].nodules, growth["prior_study"].nodules
    matches = match_nodules(
        [n["centroid_lps_mm"] for n in current], [n["centroid_lps_mm"] for n in prior], growth["reg"]
    )
    by_status: dict[str, list[NoduleMatch]] = {}
    for m in matches:
        by_status.setdefault(m.status, []).append(m)
    for m in by_status["matched"]:
        assert current[m.current_index]["tracking_uid"] == prior[m.prior_index]["tracking_uid"]
        assert m.distance_mm is not None and m.distance_mm < 2.0
    prior_uids = {n["tracking_uid"] for n in prior}
    current_uids = {n["tracking_uid"] for n in current}
    assert len(by_status["matched"]) == len(prior_uids & current_uids) == 3
    assert [current[m.current_index]["id"] for m in by_status["new"]] == ["N4"]
    assert [prior[m.prior_index]["id"] for m in by_status["resolved"]] == ["N5"]
    assert all(m.prior_index is None and m.distance_mm is None for m in by_status["new"])


@pytest.mark.parametrize("size_aware", [False, True])
def test_find_in_prior_resegments_at_the_mapped_seed(growth, size_aware):
    reg = growth["reg"]
    for cur, pri in _pairs(growth["prior_study"], growth["current_study"]):  # N1 grew x4, N3 shrank to 55 %
        found = find_in_prior(
            growth["prior"],
            reg.current_to_prior(cur["seed_lps_mm"]),
            prior_lungs=growth["prior_lungs"],
            expected_volume_mm3=cur["volume_mm3"] if size_aware else None,
        )
        assert found is not None, cur["id"]
        assert np.linalg.norm(np.subtract(found.centroid_lps_mm, pri["centroid_lps_mm"])) < 1.5
        assert found.volume_mm3 == pytest.approx(pri["volume_mm3"], rel=0.25)


def test_find_in_prior_searches_the_neighbourhood_when_the_point_misses(growth):
    reg = growth["reg"]
    cur, pri = next((c, p) for c, p in _pairs(growth["prior_study"], growth["current_study"]) if c["id"] == "N2")
    mapped = np.asarray(reg.current_to_prior(cur["centroid_lps_mm"]))
    radius_mm = (3 * pri["volume_mm3"] / (4 * np.pi)) ** (1 / 3)
    missed = mapped + np.array([0.0, 0.0, radius_mm + 3.0])  # 3 mm beyond the nodule surface
    found = find_in_prior(
        growth["prior"], missed, prior_lungs=growth["prior_lungs"], expected_volume_mm3=cur["volume_mm3"]
    )
    assert found is not None
    assert np.linalg.norm(np.subtract(found.centroid_lps_mm, pri["centroid_lps_mm"])) < 1.5
    assert find_in_prior(growth["prior"], missed, prior_lungs=growth["prior_lungs"], search_radius_mm=1.0) is None


def test_find_in_prior_returns_none_where_the_nodule_did_not_exist(growth):
    new = next(n for n in growth["current_study"].nodules if n["id"] == "N4")
    mapped = growth["reg"].current_to_prior(new["centroid_lps_mm"])
    assert find_in_prior(growth["prior"], mapped, prior_lungs=growth["prior_lungs"]) is None


def test_linear_registration_only_when_not_deformable(growth):
    reg = register(
        growth["current"],
        growth["prior"],
        current_lungs=growth["current_lungs"],
        prior_lungs=growth["prior_lungs"],
        deformable=False,
    )
    assert reg.stages == ("rigid", "affine")
    for cur, pri in _pairs(growth["prior_study"], growth["current_study"]):
        assert np.linalg.norm(np.subtract(reg.current_to_prior(cur["centroid_lps_mm"]), pri["centroid_lps_mm"])) < 3.0


def test_registration_error_when_the_prior_shows_no_lung(growth):
    soft_tissue = image_from_array(np.full((40, 64, 64), 45.0, dtype=np.float32), (0.0, 0.0, 0.0), (3.0, 3.0, 3.0))
    with pytest.raises(RegistrationError, match="prior image shows no lung"):
        register(growth["current"], soft_tissue, current_lungs=growth["current_lungs"])


def test_registration_error_for_a_single_slice_prior(growth):
    thin = image_from_array(np.full((1, 64, 64), -850.0, dtype=np.float32), (0.0, 0.0, 0.0), (3.0, 3.0, 3.0))
    with pytest.raises(RegistrationError, match="too thin"):
        register(growth["current"], thin, current_lungs=growth["current_lungs"])


class _Shift:
    """A stand-in registration: current -> prior is a pure translation."""

    def __init__(self, shift_mm):
        self.shift = np.asarray(shift_mm, dtype=float)

    def current_to_prior(self, p):
        return tuple(np.asarray(p, dtype=float) + self.shift)


def test_match_nodules_minimises_total_distance_not_greedy():
    # current A is nearest to prior X, but taking that pair would leave B with nothing within reach;
    # the optimal assignment is A-Y, B-X.
    current = [(0.0, 0.0, 0.0), (-6.0, 0.0, 0.0)]
    prior = [(-2.0, 0.0, 0.0), (5.0, 0.0, 0.0)]
    matches = match_nodules(current, prior, _Shift((0.0, 0.0, 0.0)), max_distance_mm=6.0)
    assert [(m.current_index, m.prior_index, m.status) for m in matches] == [(0, 1, "matched"), (1, 0, "matched")]
    assert matches[0].distance_mm == pytest.approx(5.0)


def test_match_nodules_respects_max_distance_and_applies_the_mapping():
    current = [(10.0, 0.0, 0.0), (50.0, 0.0, 0.0)]
    prior = [(30.0, 0.0, 0.0), (100.0, 0.0, 0.0)]
    matches = match_nodules(current, prior, _Shift((20.0, 0.0, 0.0)), max_distance_mm=10.0)
    assert [(m.current_index, m.prior_index, m.status) for m in matches] == [
        (0, 0, "matched"),
        (1, None, "new"),
        (None, 1, "resolved"),
    ]
    assert match_nodules([], prior, _Shift((0, 0, 0)))[0].status == "resolved"
    assert [m.status for m in match_nodules(current, [], _Shift((0, 0, 0)))] == ["new", "new"]


def test_registration_recovers_a_larger_rotation_and_table_offset(growth):
    """The prior re-sampled with 5 degrees more rotation, and its frame moved 60 mm along the table."""
    extra = sitk.Euler3DTransform()
    extra.SetCenter(tuple(np.mean([n["centroid_lps_mm"] for n in growth["prior_study"].nodules], axis=0)))
    extra.SetRotation(0.0, np.deg2rad(3.0), np.deg2rad(4.0))  # 5 degrees about an oblique axis
    rotated = sitk.Resample(growth["prior"], growth["prior"], extra, sitk.sitkLinear, -1000.0)
    table_mm = np.array([0.0, 0.0, 60.0])
    rotated.SetOrigin(tuple(np.add(rotated.GetOrigin(), table_mm)))
    reg = register(growth["current"], rotated)
    inverse = extra.GetInverse()
    for cur, pri in _pairs(growth["prior_study"], growth["current_study"]):
        expected = np.asarray(inverse.TransformPoint(tuple(pri["centroid_lps_mm"]))) + table_mm
        assert np.linalg.norm(np.subtract(reg.current_to_prior(cur["centroid_lps_mm"]), expected)) < 2.0


def test_the_translation_starts_on_images_smoothed_once_match_itk_smoothing_each_level(growth):
    """The translation stage runs on images smoothed once per registration; SimpleITK's own level smoothing
    (sigma 2 voxels) gives the same translation, so the speed-up changes no result."""
    import segmentation.register as r

    fixed, moving = r._working_image(growth["current"], "current"), r._working_image(growth["prior"], "prior")
    fixed_mask = r._dilate(r._working_lungs(fixed, growth["current"], None, "current"), r.MASK_MARGIN_MM)
    moving_mask = r._dilate(r._working_lungs(moving, growth["prior"], None, "prior"), r.MASK_MARGIN_MM)
    images = r._Images.of(fixed, moving, fixed_mask, moving_mask)
    ours, _ = r._run(images, sitk.TranslationTransform(3, (4.0, -3.0, 2.0)), None, kind="translation")

    reference = sitk.TranslationTransform(3, (4.0, -3.0, 2.0))
    reg = r._method(fixed_mask, moving_mask, "translation")
    reg.SetSmoothingSigmasPerLevel([r.COARSE_SIGMA_VOXELS])  # ITK smooths the unsmoothed images itself
    reg.SetInitialTransform(reference, inPlace=True)
    reg.Execute(fixed, moving)
    assert np.allclose(ours.GetOffset(), reference.GetOffset(), atol=1e-6)
    assert np.linalg.norm(reference.GetOffset()) > 0.5  # it did move
