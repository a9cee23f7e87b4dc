"""nlcsp.growth: percent volume change, VDT, and the growth status of note 6."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlcsp.growth import (
    MissingMeasurement,
    Scan,
    assess_growth,
    classify_change,
    percent_volume_change,
    volume_doubling_time_days,
)

D = dt.date


# ------------------------------------------------------------------ arithmetic


def test_percent_and_vdt_worked_example():
    # 100 -> 200 mm3 in 365 days: +100 %, VDT = 365 * ln2 / ln2 = 365 days
    assert percent_volume_change(100, 200) == pytest.approx(100.0)
    assert volume_doubling_time_days(100, 200, 365) == pytest.approx(365.0)
    # 100 -> 150 mm3 in 182 days: VDT = 182 ln2 / ln1.5 = 311.1 days
    assert volume_doubling_time_days(100, 150, 182) == pytest.approx(182 * math.log(2) / math.log(1.5))
    assert volume_doubling_time_days(100, 150, 182) == pytest.approx(311.13, abs=0.01)


def test_vdt_of_shrinking_and_unchanged_nodules():
    assert volume_doubling_time_days(200, 100, 100) == pytest.approx(-100.0)  # halving time
    assert volume_doubling_time_days(100, 100, 100) == math.inf


@given(st.floats(1, 50_000), st.floats(-90, 900))
def test_percent_change_round_trip(v1, pct):
    v2 = v1 * (1 + pct / 100)
    assert percent_volume_change(v1, v2) == pytest.approx(pct, abs=1e-6)


@given(st.floats(1, 50_000), st.floats(10, 5000), st.floats(30, 3000))
def test_vdt_round_trip(v1, vdt, days):
    # a nodule with doubling time vdt grows to v1 * 2 ** (days / vdt) in `days` days
    v2 = v1 * 2 ** (days / vdt)
    assert volume_doubling_time_days(v1, v2, days) == pytest.approx(vdt, rel=1e-6)


@given(st.floats(1, 1000), st.floats(1.01, 10), st.integers(1, 2000))
def test_vdt_falls_as_growth_quickens(v1, ratio, days):
    assert volume_doubling_time_days(v1, v1 * ratio * 1.1, days) < volume_doubling_time_days(v1, v1 * ratio, days)


@pytest.mark.parametrize("args", [(0, 10, 100), (10, -1, 100), (10, 20, 0)])
def test_invalid_arguments(args):
    with pytest.raises(ValueError):
        volume_doubling_time_days(*args)


# ------------------------------------------------------------------ note 6 table, volumetry


def vol(date, v):
    return Scan(date, volume_mm3=v)


@pytest.mark.parametrize(
    "v1, v2, days, intervals, status",
    [
        # "Growing: Increase greater than 25% and VDT < 600 days"
        (100, 150, 182, 1, "growing"),  # +50 %, VDT 311
        # "Slowly growing: Increase greater than 25% and VDT > 600 days, on more than one scan interval"
        (100, 140, 1096, 3, "slowly-growing"),  # +40 % over 3 years, VDT 2258
        # "Stable: ... increase from baseline greater than 25% and VDT>600 days but not slow growth"
        (100, 140, 1096, 1, "stable"),  # same change over a single interval (decision 4)
        # "Stable: Change between -25% and +25%"
        (100, 125, 90, 1, "stable"),  # exactly +25 % is not "greater than 25%"
        (100, 76, 90, 1, "stable"),
        # "Decreased: Decrease of 25% or more"
        (100, 75, 90, 1, "decreased"),
        (100, 40, 365, 2, "decreased"),
    ],
)
def test_note6_volumetry(v1, v2, days, intervals, status):
    change = classify_change(vol(D(2020, 1, 1), v1), vol(D(2020, 1, 1) + dt.timedelta(days=days), v2), intervals)
    assert change.method == "volume"
    assert change.status == status


def test_vdt_exactly_600_days_is_not_growing():
    days = 600
    v2 = 100 * 2 ** (days / 600.0)  # VDT exactly 600 days
    change = classify_change(vol(D(2020, 1, 1), 100), vol(D(2020, 1, 1) + dt.timedelta(days=days), v2), 2)
    assert change.status == "slowly-growing"


# ------------------------------------------------------------------ note 6 table, mean diameter (note 5b)


def diam(date, d):
    return Scan(date, mean_diameter_mm=d)


@pytest.mark.parametrize(
    "d1, d2, start, end, intervals, status",
    [
        # "Growing: Increase of more than 1.5mm, 24 months or less"
        (5.8, 7.4, D(2024, 6, 1), D(2026, 6, 1), 2, "growing"),  # +1.6 mm over exactly 24 months
        (5.8, 7.3, D(2025, 6, 1), D(2026, 6, 1), 1, "stable"),  # +1.5 mm is not "more than 1.5mm"
        # "Slowly growing: Increase of more than 1.5mm, over more than 24 months"
        (5.8, 7.4, D(2024, 5, 31), D(2026, 6, 1), 2, "slowly-growing"),
        # no "more than one scan interval" in the diameter column (corrected decision 4): one interval is enough
        (5.8, 7.4, D(2024, 5, 31), D(2026, 6, 1), 1, "slowly-growing"),
        # "Stable: Change of between -1.5mm and +1.5mm"
        (6.0, 4.6, D(2025, 6, 1), D(2026, 6, 1), 1, "stable"),
        # "Decreased: Decrease of 1.5 mm or more"
        (6.0, 4.5, D(2025, 6, 1), D(2026, 6, 1), 1, "decreased"),
    ],
)
def test_note6_mean_diameter(d1, d2, start, end, intervals, status):
    change = classify_change(diam(start, d1), diam(end, d2), intervals)
    assert change.method == "diameter"
    assert change.status == status


def test_volume_is_preferred_and_diameter_used_when_a_volume_is_missing_on_either_side():
    a = Scan(D(2025, 6, 1), volume_mm3=100, mean_diameter_mm=5.8)
    b = Scan(D(2026, 6, 1), volume_mm3=110, mean_diameter_mm=7.5)  # volume: stable; diameter: +1.7 mm
    assert classify_change(a, b).status == "stable"
    assert classify_change(a, b).method == "volume"
    b_no_volume = Scan(D(2026, 6, 1), mean_diameter_mm=7.5)
    assert classify_change(a, b_no_volume).status == "growing"
    assert classify_change(a, b_no_volume).method == "diameter"
    with pytest.raises(MissingMeasurement, match="share no measurement"):
        classify_change(Scan(D(2025, 6, 1), volume_mm3=100), Scan(D(2026, 6, 1), mean_diameter_mm=6))


def test_cysts_use_diameter_only_when_volumetry_is_off():
    # note 11f: "Volumetry for atypical pulmonary cysts is not currently recommended"
    a = Scan(D(2025, 6, 1), volume_mm3=100, mean_diameter_mm=10.0)
    b = Scan(D(2026, 6, 1), volume_mm3=300, mean_diameter_mm=11.0)
    assert classify_change(a, b, volumetry=False).status == "stable"


# ------------------------------------------------------------------ comparison scan and trajectory (note 6)


def test_earliest_scan_is_the_comparison_so_slow_growth_is_not_missed():
    # each interval +12 % (within error), but +40 % against the earliest scan over 3 intervals
    scans = [vol(D(2023, 6, 1), 100), vol(D(2024, 6, 1), 112), vol(D(2025, 6, 1), 125), vol(D(2026, 6, 1), 140)]
    g = assess_growth(scans)
    assert g.status == "slowly-growing"
    assert g.comparison.date == D(2023, 6, 1)
    assert g.change.intervals == 3


def test_growth_followed_by_stability_moves_the_comparison():
    # "growth followed by stability": compare with the scan on which growth was last shown
    scans = [vol(D(2025, 3, 1), 100), vol(D(2025, 6, 1), 200), vol(D(2025, 9, 1), 210)]
    g = assess_growth(scans)
    assert g.status == "stable"
    assert g.comparison.date == D(2025, 6, 1)
    assert g.stable_since.date == D(2025, 6, 1)
    assert g.trajectory  # the switch is explained


def test_slow_growth_followed_by_decrease():
    scans = [vol(D(2022, 6, 1), 100), vol(D(2024, 6, 1), 120), vol(D(2025, 6, 1), 140), vol(D(2026, 6, 1), 90)]
    g = assess_growth(scans)
    assert g.status == "decreased"
    assert g.comparison.date == D(2025, 6, 1)


def test_stability_followed_by_fast_growth_is_measured_from_the_last_stable_scan():
    scans = [vol(D(2024, 6, 1), 100), vol(D(2025, 6, 1), 105), vol(D(2026, 6, 1), 200)]
    g = assess_growth(scans)
    assert g.status == "growing"  # +90 % in a year from 105 (VDT 389 d); against 2024 it would be VDT 788 d
    assert g.comparison.date == D(2025, 6, 1)


def test_regrowth_after_decrease():
    scans = [vol(D(2024, 6, 1), 200), vol(D(2025, 6, 1), 100), vol(D(2025, 12, 1), 160)]
    g = assess_growth(scans)
    assert g.status == "growing"
    assert g.comparison.date == D(2025, 6, 1)


def test_stable_since_is_the_earliest_scan_of_the_stable_run():
    scans = [vol(D(2023, 6, 1), 100), vol(D(2024, 6, 1), 200), vol(D(2025, 6, 1), 190), vol(D(2026, 6, 1), 205)]
    g = assess_growth(scans)
    assert g.status == "stable" and g.stable_since.date == D(2024, 6, 1)
    decreased_then_stable = [vol(D(2023, 6, 1), 200), vol(D(2024, 6, 1), 100), vol(D(2026, 6, 1), 105)]
    g = assess_growth(decreased_then_stable)
    assert g.status == "decreased" and g.stable_since.date == D(2023, 6, 1)


def test_scans_must_be_in_date_order():
    with pytest.raises(ValueError, match="increasing date order"):
        assess_growth([vol(D(2026, 1, 1), 1), vol(D(2025, 1, 1), 1)])


@given(
    st.floats(20, 5000),
    st.lists(st.floats(0.5, 2.0), min_size=1, max_size=4),
    st.floats(1.0, 3.0),
)
def test_more_growth_at_the_last_scan_never_reads_as_less_growth(v0, ratios, extra):
    # same history, the current volume larger: status never moves from growing to stable/decreased
    scans = [vol(D(2020, 1, 1) + dt.timedelta(days=180 * i), v0 * r) for i, r in enumerate([1.0, *ratios[:-1]])]
    last = D(2020, 1, 1) + dt.timedelta(days=180 * len(scans))
    small = assess_growth([*scans, vol(last, v0 * ratios[-1])])
    large = assess_growth([*scans, vol(last, v0 * ratios[-1] * extra)])
    order = {"decreased": 0, "stable": 1, "slowly-growing": 2, "growing": 2}
    if small.comparison == large.comparison:
        assert order[large.status] >= order[small.status]
