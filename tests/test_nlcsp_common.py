"""nlcsp.common: the arithmetic both protocol engines share."""

from __future__ import annotations

import math

import pytest

from nlcsp.common import (
    Size,
    at_least,
    mean_diameter_mm,
    more_than,
    percent_volume_change,
    round_mm,
    sphere_diameter_mm,
    sphere_volume_mm3,
    volume_doubling_time_days,
)


def test_mean_diameter_each_axis_and_the_mean_to_0_1_mm():
    # "measure both the long and short axis to one decimal point in mm, and report mean nodule diameter to one
    # decimal point" (NLCSP note 5b; Lung-RADS v2022 the same)
    assert mean_diameter_mm(7.24, 5.36) == 6.3  # 7.2 and 5.4 -> 6.3
    assert mean_diameter_mm(6.0, 5.5) == 5.8  # 5.75 rounds half up
    assert round_mm(5.25) == 5.3 and round_mm(5.96) == 6.0


def test_more_than_and_at_least_with_the_float_tolerance():
    assert not more_than(7.3 - 5.8, 1.5) and more_than(7.4 - 5.8, 1.5)
    assert at_least(5.8 - 4.3, 1.5) and not at_least(1.4, 1.5)


def test_sphere_equivalents_are_the_protocol_brackets():
    # 4/6/8/10/15/30 mm <-> 34/113/268/524/1,767/14,137 mm3
    for d, v in ((4, 34), (6, 113), (8, 268), (10, 524), (15, 1767), (30, 14137)):
        assert round(sphere_volume_mm3(d)) == v
        assert sphere_diameter_mm(sphere_volume_mm3(d)) == pytest.approx(d)


def test_half_open_thresholds():
    assert Size(5.99, "mm", "x").below((113, 6)) and not Size(6.0, "mm", "x").below((113, 6))
    assert Size(112.9, "mm3", "x").below((113, 6)) and not Size(113, "mm3", "x").below((113, 6))


def test_vdt_and_percent_change():
    assert percent_volume_change(100, 150) == pytest.approx(50.0)
    assert volume_doubling_time_days(100, 200, 365) == pytest.approx(365.0)
    assert volume_doubling_time_days(100, 100, 365) == math.inf
    with pytest.raises(ValueError, match="must be > 0"):
        volume_doubling_time_days(0, 100, 365)
