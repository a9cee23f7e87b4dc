"""Nodule growth of NLCSP note 6: percent volume change, VDT, and the growth status.

Note 6 (volumetry preferred; mean diameter when volumetry is not possible):

============== ============================================ ==========================================
status         volumetry                                    mean diameter
============== ============================================ ==========================================
growing        increase > 25 % and VDT < 600 days            increase > 1.5 mm, 24 months or less
slowly growing increase > 25 % and VDT > 600 days, on more   increase > 1.5 mm over more than 24 months
               than one scan interval                       (no scan-interval condition)
stable         change between -25 % and +25 %, or increase   change between -1.5 mm and +1.5 mm
               > 25 % with VDT > 600 days but not slow growth
decreased      decrease of 25 % or more                     decrease of 1.5 mm or more
============== ============================================ ==========================================

"The earliest scan available should be used as the comparison study to establish
initial change ... When there is trajectory change, the scan on which the nodule has
last demonstrated the previous trajectory should be used as the new comparison study."
:func:`assess_growth` walks the scans in date order and implements both sentences; the
choices it makes are written in ``nlcsp/INTERPRETATION.md`` (G1-G7).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from nlcsp.common import (
    DIAMETER_LIMIT_MM,
    EPS,
    percent_volume_change,
    volume_doubling_time_days,
)
from nlcsp.dates import months_between

__all__ = ["Scan", "assess_growth", "classify_change", "percent_volume_change", "volume_doubling_time_days"]

GROWTH_PCT = 25.0  # note 5a / 6: -25 % .. +25 % is within measurement error
VDT_LIMIT_DAYS = 600.0
DIAMETER_GROWING_MONTHS = 24.0
_EPS = EPS  # nlcsp.common: one tolerance for both protocols

Status = Literal["growing", "slowly-growing", "stable", "decreased"]
Method = Literal["volume", "diameter"]
UP: frozenset[str] = frozenset({"growing", "slowly-growing"})


class MissingMeasurement(ValueError):
    """Two scans share no measurement (volume on both, or mean diameter on both)."""


@dataclass(frozen=True)
class Scan:
    """One measurement of the nodule at one date (the current exam or a prior)."""

    date: dt.date
    volume_mm3: float | None = None
    mean_diameter_mm: float | None = None
    pre_screening: bool = False


@dataclass(frozen=True)
class Change:
    """The change between two scans of the same nodule, and its note-6 status."""

    earlier: Scan
    later: Scan
    intervals: int  # scan intervals spanned (1 = consecutive scans)
    method: Method
    status: Status
    days: int
    months: float
    volume_change_pct: float | None
    vdt_days: float | None  # only when the volume increased
    diameter_change_mm: float | None
    reason: str


def classify_change(earlier: Scan, later: Scan, intervals: int = 1, *, volumetry: bool = True) -> Change:
    """The note-6 status of ``later`` against ``earlier``.

    Volumetry when both scans have a volume (and ``volumetry`` is allowed), otherwise
    the mean diameter (note 5b; note 11f for cysts).  By volumetry "slowly growing" needs
    the comparison to span more than one scan interval, the same change over a single
    interval is "stable" (INTERPRETATION G3); the mean-diameter column has no such
    condition (decision 4).
    """
    days = (later.date - earlier.date).days
    if days <= 0:
        raise ValueError(f"scan of {later.date} is not after the comparison scan of {earlier.date}")
    months = months_between(earlier.date, later.date)
    pct = vdt = dchange = None
    if earlier.mean_diameter_mm is not None and later.mean_diameter_mm is not None:
        dchange = later.mean_diameter_mm - earlier.mean_diameter_mm
    if volumetry and earlier.volume_mm3 is not None and later.volume_mm3 is not None:
        pct = percent_volume_change(earlier.volume_mm3, later.volume_mm3)
        raw_vdt = volume_doubling_time_days(earlier.volume_mm3, later.volume_mm3, days)
        vdt = raw_vdt if (later.volume_mm3 > earlier.volume_mm3 and math.isfinite(raw_vdt)) else None
        what = f"volume {earlier.volume_mm3:g} -> {later.volume_mm3:g} mm3 ({pct:+.1f} %"
        what += f", VDT {vdt:.0f} days)" if vdt is not None else ")"
        what += f" over {days} days"
        if pct <= -GROWTH_PCT + _EPS:
            status, rule = "decreased", "decrease of 25% or more"
        elif pct > GROWTH_PCT + _EPS:
            assert vdt is not None
            if vdt < VDT_LIMIT_DAYS:
                status, rule = "growing", "increase > 25% and VDT < 600 days"
            elif intervals > 1:
                status, rule = (
                    "slowly-growing",
                    (f"increase > 25% and VDT >= 600 days, on more than one scan interval ({intervals})"),
                )
            else:
                status, rule = (
                    "stable",
                    "increase > 25% and VDT >= 600 days over a single scan interval: not slow growth",
                )
        else:
            status, rule = "stable", "change between -25% and +25%"
        return Change(
            earlier,
            later,
            intervals,
            "volume",
            cast(Status, status),
            days,
            months,
            pct,
            vdt,
            dchange,
            f"{what}: {rule}",
        )
    if dchange is None:
        raise MissingMeasurement(
            f"scans of {earlier.date} and {later.date} share no measurement"
            + (" (volume_mm3 or mean_diameter_mm on both)" if volumetry else " (mean_diameter_mm on both, note 11f)")
        )
    what = (
        f"mean diameter {earlier.mean_diameter_mm:g} -> {later.mean_diameter_mm:g} mm ({dchange:+.1f} mm)"
        f" over {months:.1f} months"
    )
    if dchange <= -DIAMETER_LIMIT_MM + _EPS:
        status, rule = "decreased", "decrease of 1.5 mm or more"
    elif dchange > DIAMETER_LIMIT_MM + _EPS:
        if months <= DIAMETER_GROWING_MONTHS + _EPS:
            status, rule = "growing", "increase of more than 1.5 mm, 24 months or less"
        else:
            # note 6, mean-diameter column: "Increase of more than 1.5mm, over more than 24 months" -- no
            # scan-interval condition (that is the volumetry column's); INTERPRETATION decision 4
            status, rule = "slowly-growing", "increase of more than 1.5 mm over more than 24 months"
    else:
        status, rule = "stable", "change between -1.5 mm and +1.5 mm"
    return Change(
        earlier,
        later,
        intervals,
        "diameter",
        cast(Status, status),
        days,
        months,
        None,
        None,
        dchange,
        f"{what}: {rule}",
    )


@dataclass(frozen=True)
class GrowthAssessment:
    """The note-6 status of the current scan, the comparison it was measured against,
    and since when the nodule has been stable or decreased (for stepped management)."""

    status: Status
    change: Change  # current scan against the comparison scan
    comparison: Scan
    stable_since: Scan | None  # None unless status is stable or decreased
    trajectory: tuple[str, ...]  # each comparison switch, in words


def _switches(previous: Status, step: Status, cumulative: Status) -> bool:
    """Has the trajectory changed (note 6)?  ``previous``: status of the last scan
    against the comparison; ``step``: last scan -> current scan; ``cumulative``:
    comparison -> current scan (INTERPRETATION G2)."""
    if previous == "growing":
        return step in ("stable", "decreased")
    if previous == "slowly-growing":
        return step == "decreased" or cumulative not in UP
    if previous == "stable":
        return step == "growing"
    # previous == "decreased"
    return step == "growing" or cumulative != "decreased"


def _stable_or_decreased(earlier: Scan, later: Scan, intervals: int, volumetry: bool) -> bool:
    try:
        return classify_change(earlier, later, intervals, volumetry=volumetry).status in ("stable", "decreased")
    except MissingMeasurement:
        return False


def assess_growth(scans: Sequence[Scan], *, volumetry: bool = True) -> GrowthAssessment:
    """Note 6 over a nodule's history; ``scans`` in date order, the current scan last.

    The comparison starts at the earliest scan and moves to the scan on which the
    nodule last showed its previous trajectory whenever the trajectory changes.
    """
    if len(scans) < 2:
        raise ValueError("assess_growth needs the current scan and at least one prior")
    for a, b in zip(scans, scans[1:]):
        if not a.date < b.date:
            raise ValueError(f"scans must be in strictly increasing date order ({a.date} then {b.date})")
    c = 0
    trajectory: list[str] = []
    previous: Change | None = None
    for k in range(1, len(scans)):
        cumulative = classify_change(scans[c], scans[k], k - c, volumetry=volumetry)
        if previous is not None and k - 1 > c:
            step = classify_change(scans[k - 1], scans[k], 1, volumetry=volumetry)
            if _switches(previous.status, step.status, cumulative.status):
                trajectory.append(
                    f"trajectory change on {scans[k].date}: {previous.status} until {scans[k - 1].date}, then"
                    f" {step.status}; comparison moves from {scans[c].date} to {scans[k - 1].date}"
                )
                c = k - 1
                cumulative = step
        previous = cumulative
    assert previous is not None
    stable_since = None
    if previous.status in ("stable", "decreased"):
        stable_since = scans[c]
        for j in range(0, c + 1):
            if all(_stable_or_decreased(scans[j], scans[m], m - j, volumetry) for m in range(j + 1, len(scans))):
                stable_since = scans[j]
                break
    return GrowthAssessment(previous.status, previous, scans[c], stable_since, tuple(trajectory))
