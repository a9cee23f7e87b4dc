"""Lung-RADS v2022 growth, on the mean diameter.

* **Growth**: "an increase in mean diameter of more than 1.5 mm within a 12-month period
  (exactly 1.5 mm is not growth)" -- against the earliest prior at most 12 months before
  the exam (INTERPRETATION G1).
* **Slow growth**: "growth over multiple screening exams that does not meet the > 1.5 mm in
  12 months rule" -- an increase of more than 1.5 mm against the earliest prior, which is
  more than 12 months before the exam (INTERPRETATION G2).
* Otherwise **stable** or **decreased** (a decrease of 1.5 mm or more) against the most
  recent prior; Lung-RADS manages both alike.

Sizes are mean diameters rounded to 0.1 mm; a time point with a volume only uses the
diameter of the sphere of that volume (INTERPRETATION S2).  The arithmetic and the
boundary conventions are :mod:`nlcsp.common`'s, shared with the NLCSP engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from nlcsp.common import (
    DIAMETER_LIMIT_MM,
    at_least,
    more_than,
    round_mm,
    sphere_diameter_mm,
)
from nlcsp.dates import months_between

WINDOW_MONTHS = 12.0
GrowthStatus = Literal["growing", "slowly-growing", "stable", "decreased"]


class MissingMeasurement(ValueError):
    """A time point has neither a mean diameter nor a volume."""


@dataclass(frozen=True)
class Point:
    """One measurement of a nodule (or of its solid component) at one date."""

    date: dt.date
    mean_diameter_mm: float | None = None
    volume_mm3: float | None = None


def size_mm(p: Point) -> tuple[float, str] | None:
    """The mean diameter to 0.1 mm, else the sphere-equivalent diameter of the volume (INTERPRETATION S2)."""
    if p.mean_diameter_mm is not None:
        return round_mm(p.mean_diameter_mm), "mean diameter"
    if p.volume_mm3 is not None:
        return round_mm(sphere_diameter_mm(p.volume_mm3)), "sphere-equivalent diameter of the volume"
    return None


def change_mm(a: Point, b: Point) -> float:
    """Mean-diameter change from ``a`` to ``b`` (mm): both mean diameters when both have one, else both
    sphere-equivalent diameters when both have a volume, else whichever each has."""
    if a.mean_diameter_mm is not None and b.mean_diameter_mm is not None:
        return round_mm(b.mean_diameter_mm) - round_mm(a.mean_diameter_mm)
    if a.volume_mm3 is not None and b.volume_mm3 is not None:
        return round_mm(sphere_diameter_mm(b.volume_mm3)) - round_mm(sphere_diameter_mm(a.volume_mm3))
    sa, sb = size_mm(a), size_mm(b)
    if sa is None or sb is None:
        raise MissingMeasurement(f"no size on {a.date if sa is None else b.date}")
    return sb[0] - sa[0]


@dataclass(frozen=True)
class Growth:
    status: GrowthStatus
    comparison: dt.date
    change_mm: float
    months: float
    reason: str


def assess_growth(priors: Sequence[Point], current: Point) -> Growth:
    """Growth, slow growth, stable or decreased of ``current`` against ``priors`` (in date order)."""
    if size_mm(current) is None:
        raise MissingMeasurement(f"the exam of {current.date} has no mean diameter or volume")
    measured = [p for p in priors if size_mm(p) is not None]
    if not measured:
        raise MissingMeasurement("no prior has a mean diameter or volume")
    window = [p for p in measured if months_between(p.date, current.date) <= WINDOW_MONTHS + 1e-9]
    if window:
        p = window[0]
        d = change_mm(p, current)
        months = months_between(p.date, current.date)
        if more_than(d, DIAMETER_LIMIT_MM):
            return Growth(
                "growing",
                p.date,
                d,
                months,
                f"mean diameter {d:+.1f} mm since {p.date} ({months:.1f}"
                " months): an increase of more than 1.5 mm within a 12-month period",
            )
    first = measured[0]
    months = months_between(first.date, current.date)
    d = change_mm(first, current)
    if months > WINDOW_MONTHS + 1e-9 and more_than(d, DIAMETER_LIMIT_MM):
        return Growth(
            "slowly-growing",
            first.date,
            d,
            months,
            f"mean diameter {d:+.1f} mm since {first.date}"
            f" ({months:.1f} months), not > 1.5 mm within 12 months: slow growth",
        )
    last = measured[-1]
    d = change_mm(last, current)
    months = months_between(last.date, current.date)
    if at_least(-d, DIAMETER_LIMIT_MM):
        return Growth("decreased", last.date, d, months, f"mean diameter {d:+.1f} mm since {last.date}: decreased")
    return Growth(
        "stable",
        last.date,
        d,
        months,
        f"mean diameter {d:+.1f} mm since {last.date} ({months:.1f} months): stable (no increase of more than 1.5 mm)",
    )
