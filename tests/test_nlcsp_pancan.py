"""nlcsp.pancan: the PanCan (Brock) full model with spiculation, and the baseline risk bands."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlcsp.pancan import baseline_category_for_risk, pancan_risk, pancan_risk_pct


# Published check values of the issue (McWilliams et al. 2013, model 2b), to 4 decimals.
@pytest.mark.parametrize(
    "kwargs, expected_pct",
    [
        (dict(age_years=55, female=False, max_axial_diameter_mm=4, composition="solid", nodule_count=4), 0.0920),
        (
            dict(
                age_years=68,
                female=True,
                family_history_lung_cancer=True,
                max_axial_diameter_mm=10,
                composition="solid",
                upper_lobe=True,
                nodule_count=2,
            ),
            14.5887,
        ),
        (
            dict(
                age_years=80,
                female=True,
                family_history_lung_cancer=True,
                emphysema=True,
                max_axial_diameter_mm=30,
                composition="part-solid",
                upper_lobe=True,
                nodule_count=1,
                spiculated=True,
            ),
            91.5359,
        ),
    ],
)
def test_published_check_values(kwargs, expected_pct):
    assert round(pancan_risk_pct(**kwargs), 4) == expected_pct


def test_risk_is_a_fraction_and_pct_is_percent():
    kwargs = dict(age_years=62, female=True, max_axial_diameter_mm=10, nodule_count=4)
    assert pancan_risk_pct(**kwargs) == pytest.approx(100 * pancan_risk(**kwargs))
    # at the model's centre (62 y, 10 mm, count 4, male, solid, no other factor): logit = intercept
    import math

    centre = pancan_risk(age_years=62, female=False, max_axial_diameter_mm=10, nodule_count=4)
    assert centre == pytest.approx(1 / (1 + math.exp(6.7892 + 5.3854 * (1.0 - 1.58113883))), rel=1e-12)


def test_each_factor_moves_the_risk_the_published_way():
    base = dict(age_years=62, female=False, max_axial_diameter_mm=8, nodule_count=2)
    r0 = pancan_risk(**base)
    assert pancan_risk(**{**base, "female": True}) > r0
    assert pancan_risk(**{**base, "family_history_lung_cancer": True}) > r0
    assert pancan_risk(**{**base, "emphysema": True}) > r0
    assert pancan_risk(**{**base, "upper_lobe": True}) > r0
    assert pancan_risk(**{**base, "spiculated": True}) > r0
    assert pancan_risk(**{**base, "composition": "part-solid"}) > r0
    assert pancan_risk(**{**base, "composition": "non-solid"}) < r0  # -0.1276
    assert pancan_risk(**{**base, "nodule_count": 6}) < r0  # more nodules, lower risk per nodule (3c)
    assert pancan_risk(**{**base, "age_years": 75}) > r0


@given(st.floats(0.5, 80), st.floats(0.5, 80))
def test_risk_never_falls_with_size(d1, d2):
    small, large = sorted((d1, d2))
    kw = dict(age_years=60, female=True, nodule_count=1)
    assert pancan_risk(max_axial_diameter_mm=small, **kw) <= pancan_risk(max_axial_diameter_mm=large, **kw)


@pytest.mark.parametrize(
    "risk_pct, category",
    [
        (0.0, "1"),
        (1.4999, "1"),
        (1.5, "2"),
        (5.9999, "2"),
        (6.0, "3"),
        (9.9999, "3"),
        (10.0, "4"),
        (29.9999, "4"),
        (30.0, "5"),
        (99.0, "5"),
    ],
)
def test_baseline_bands_of_the_table(risk_pct, category):
    # Baseline table: <1.5 -> 1; 1.5 to <6 -> 2; 6 to <10 -> 3; 10 to <30 -> 4; >=30 -> 5
    assert baseline_category_for_risk(risk_pct)[0] == category


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_axial_diameter_mm=0), "max_axial_diameter_mm"),
        (dict(nodule_count=0), "nodule_count"),
        (dict(composition="mixed"), "composition"),
    ],
)
def test_invalid_inputs_are_named(kwargs, message):
    args = dict(age_years=60, female=True, max_axial_diameter_mm=5, nodule_count=1, **{})
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        pancan_risk(**args)
